// AgentIngest: the collector's per-stream protocol rules, on raw bytes as they come off the wire,
// against a real SQLite store in a temporary directory.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "ingest/agent_ingest.h"
#include "store/sqlite_report_store.h"
#include "temp_dir.h"

namespace nhiguard::collector {
namespace {

constexpr int64_t kNow = 1'800'000'000'000'000'000;

class AgentIngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteReportStore::open((root_.path() / "c.db").string());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
  }

  static std::string hello_bytes(const std::string& agent, const std::string& outbox = "ob1") {
    v1::AgentMessage message;
    message.mutable_hello()->set_agent_id(agent);
    message.mutable_hello()->set_outbox_id(outbox);
    message.mutable_hello()->set_mode(v1::MODE_POLICY);
    return message.SerializeAsString();
  }
  static std::string report_bytes(uint64_t sequence) {
    v1::AgentMessage message;
    message.mutable_report()->set_sequence(sequence);
    message.mutable_report()->mutable_egress()->set_event_id("e" + std::to_string(sequence));
    return message.SerializeAsString();
  }

  testing::TempDir root_{"nhiguard-ingest"};
  std::unique_ptr<SqliteReportStore> store_;  // declared after root_: closed before it is removed
};

TEST_F(AgentIngestTest, HelloThenReports) {
  AgentIngest ingest(*store_, *store_, std::string("web-1"), "peer");
  auto hello = ingest.on_message(hello_bytes("web-1"), kNow);
  ASSERT_TRUE(hello) << hello.error().message;
  ASSERT_TRUE(hello->welcome);
  EXPECT_EQ(hello->welcome->agent_id(), "web-1");
  EXPECT_EQ(hello->welcome->acked_through_sequence(), 0u);
  EXPECT_EQ(hello->welcome->max_message_bytes(), IngestLimits{}.max_message_bytes);
  auto report = ingest.on_message(report_bytes(1), kNow);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_TRUE(report->record);
  EXPECT_EQ(report->record->agent_id, "web-1");
  EXPECT_EQ(report->record->outbox_id, "ob1");
  EXPECT_EQ(report->record->report.sequence(), 1u);
  v1::Report raw;
  ASSERT_TRUE(raw.ParseFromString(report->record->raw));
  EXPECT_EQ(raw.egress().event_id(), "e1");
}

TEST_F(AgentIngestTest, TheCertificateNamesTheAgent) {
  AgentIngest ingest(*store_, *store_, std::string("web-1"), "peer");
  auto hello = ingest.on_message(hello_bytes("web-2"), kNow);
  ASSERT_FALSE(hello);
  EXPECT_EQ(hello.error().code, EACCES);
  EXPECT_TRUE(store_->list_agents().value().empty());  // nothing registered
  // Without a certificate (--insecure) the hello is trusted.
  AgentIngest insecure(*store_, *store_, std::nullopt, "peer");
  EXPECT_TRUE(insecure.on_message(hello_bytes("web-2"), kNow));
}

TEST_F(AgentIngestTest, OrderAndShapeAreEnforced) {
  AgentIngest ingest(*store_, *store_, std::nullopt, "peer");
  EXPECT_EQ(ingest.on_message(report_bytes(1), kNow).error().code, EINVAL);  // report before hello
  EXPECT_EQ(ingest.on_message(std::string(), kNow).error().code, EINVAL);    // empty message: no body
  EXPECT_EQ(ingest.on_message(hello_bytes(""), kNow).error().code, EINVAL);
  EXPECT_EQ(ingest.on_message(hello_bytes("web-1", ""), kNow).error().code, EINVAL);
  ASSERT_TRUE(ingest.on_message(hello_bytes("web-1"), kNow));
  EXPECT_EQ(ingest.on_message(hello_bytes("web-1"), kNow).error().code, EINVAL);  // second hello
  EXPECT_EQ(ingest.on_message(report_bytes(0), kNow).error().code, EINVAL);
}

TEST_F(AgentIngestTest, MalformedAndOversizedMessagesAreRefused) {
  IngestLimits limits;
  limits.max_message_bytes = 1024;
  AgentIngest ingest(*store_, *store_, std::nullopt, "peer", limits);
  ASSERT_TRUE(ingest.on_message(hello_bytes("web-1"), kNow));
  auto garbage = ingest.on_message(std::string("\x0a\xff\xff\xff\xff\x0f", 6), kNow);
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code, EBADMSG);
  v1::AgentMessage big;
  big.mutable_report()->set_sequence(1);
  big.mutable_report()->mutable_alert()->set_message(std::string(2000, 'x'));
  auto oversized = ingest.on_message(big.SerializeAsString(), kNow);
  ASSERT_FALSE(oversized);
  EXPECT_EQ(oversized.error().code, EMSGSIZE);
}

// A drop marker as bytes: ranges, and a count (the sum of the ranges unless given).
std::string marker_bytes(uint64_t sequence, std::vector<std::pair<uint64_t, uint64_t>> ranges,
                         std::optional<uint64_t> count = std::nullopt) {
  v1::AgentMessage message;
  message.mutable_report()->set_sequence(sequence);
  auto* dropped = message.mutable_report()->mutable_reports_dropped();
  uint64_t sum = 0;
  for (auto [first, last] : ranges) {
    auto* range = dropped->add_ranges();
    range->set_first(first);
    range->set_last(last);
    sum += last - first + 1;  // wraps for hostile input: that is what `count` is then checked against
  }
  dropped->set_count(count.value_or(sum));
  return message.SerializeAsString();
}

TEST_F(AgentIngestTest, DroppedRangesMustPrecedeTheirReport) {
  // Each case on a fresh stream: what a stream accepted raises the floor for the next marker.
  auto dropped = [&](uint64_t sequence, uint64_t first, uint64_t last) {
    AgentIngest ingest(*store_, *store_, std::nullopt, "peer");
    EXPECT_TRUE(ingest.on_message(hello_bytes("web-1"), kNow));
    return ingest.on_message(marker_bytes(sequence, {{first, last}}), kNow);
  };
  EXPECT_TRUE(dropped(10, 2, 9));
  EXPECT_TRUE(dropped(10, 2, 10));                             // a marker under the last sequence it replaced
  EXPECT_EQ(dropped(10, 2, 11).error().code, EINVAL);          // cannot drop what comes after it
  EXPECT_EQ(dropped(10, 5, 4).error().code, EINVAL);           // inverted
  EXPECT_EQ(dropped(10, 0, 3).error().code, EINVAL);           // sequences start at 1
  EXPECT_EQ(dropped(10, 1, UINT64_MAX).error().code, EINVAL);  // a hostile range that would swallow everything
}

TEST_F(AgentIngestTest, HostileDropMarkersAreRefused) {
  constexpr uint64_t k62 = uint64_t{1} << 62;
  auto fresh = [&](uint64_t acked_before = 0) {
    auto ingest = std::make_unique<AgentIngest>(*store_, *store_, std::nullopt, "peer");
    EXPECT_TRUE(ingest->on_message(hello_bytes("web-1", "ob" + std::to_string(acked_before)), kNow));
    return ingest;
  };
  auto code = [](const Result<AgentIngest::Step>& step) { return step ? 0 : step.error().code; };
  // The reported attack: three times [1, 2^62] (their sum overflowed the store's SUM).
  auto three = fresh()->on_message(marker_bytes(kMaxSequence, {{1, k62}, {1, k62}, {1, k62}}), kNow);
  ASSERT_FALSE(three);
  EXPECT_EQ(three.error().code, EINVAL);
  EXPECT_NE(three.error().message.find("dropped range 1-4611686018427387904"), std::string::npos)
      << three.error().message;
  // Overlapping, out of order, a count that is not the sum, no ranges at all.
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(20, {{1, 10}, {5, 12}}), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(20, {{11, 12}, {1, 10}}), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(20, {{1, 10}, {12, 20}}, 3), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(20, {}), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(20, {{1, 10}, {12, 20}}), kNow)), 0);  // disjoint, ascending, summed
  // Sequences and ranges at or above 2^63 (stored in signed 64-bit columns).
  EXPECT_EQ(code(fresh()->on_message(marker_bytes(kMaxSequence + 1, {{1, 2}}), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(report_bytes(kMaxSequence + 1), kNow)), EINVAL);
  EXPECT_EQ(code(fresh()->on_message(report_bytes(kMaxSequence), kNow)), 0);
  // A range over what the stream already sent: a sequence cannot be both sent and dropped.
  auto ingest = fresh();
  ASSERT_TRUE(ingest->on_message(report_bytes(1), kNow));
  ASSERT_TRUE(ingest->on_message(report_bytes(2), kNow));
  EXPECT_EQ(code(ingest->on_message(marker_bytes(4, {{2, 4}}), kNow)), EINVAL);
  EXPECT_EQ(code(ingest->on_message(marker_bytes(4, {{3, 4}}), kNow)), 0);
  // And over what the collector acknowledged before this stream (the Welcome's acked_through).
  std::vector<IngestRecord> stored;
  for (uint64_t s = 1; s <= 5; ++s) {
    IngestRecord r;
    r.agent_id = "web-1";
    r.outbox_id = "obacked";
    r.report.set_sequence(s);
    r.report.mutable_egress()->set_event_id("e" + std::to_string(s));
    r.report.SerializeToString(&r.raw);
    stored.push_back(std::move(r));
  }
  AgentIngest first(*store_, *store_, std::nullopt, "peer");
  ASSERT_TRUE(first.on_message(hello_bytes("web-1", "obacked"), kNow));
  ASSERT_TRUE(store_->store_reports(stored));
  AgentIngest again(*store_, *store_, std::nullopt, "peer");
  auto welcome = again.on_message(hello_bytes("web-1", "obacked"), kNow);
  ASSERT_TRUE(welcome);
  EXPECT_EQ(welcome->welcome->acked_through_sequence(), 5u);
  EXPECT_EQ(code(again.on_message(marker_bytes(7, {{5, 7}}), kNow)), EINVAL);
  EXPECT_EQ(code(again.on_message(marker_bytes(7, {{6, 7}}), kNow)), 0);
}

TEST_F(AgentIngestTest, HelloFieldsAreBounded) {
  auto hello_with = [&](auto edit) {
    v1::AgentMessage message;
    auto* h = message.mutable_hello();
    h->set_agent_id("web-1");
    h->set_outbox_id("ob1");
    edit(*h);
    AgentIngest ingest(*store_, *store_, std::nullopt, "peer");
    auto step = ingest.on_message(message.SerializeAsString(), kNow);
    return step ? 0 : step.error().code;
  };
  EXPECT_EQ(hello_with([](v1::Hello&) {}), 0);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_hostname(std::string(253, 'h')); }), 0);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_hostname(std::string(254, 'h')); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_agent_version(std::string(1 << 20, 'v')); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_trust_domain(std::string(256, 't')); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_outbox_id(std::string(65, 'o')); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_outbox_id("../../x"); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_agent_id("web 1\n"); }), EINVAL);
  EXPECT_EQ(hello_with([](v1::Hello& h) { h.set_highest_sequence(kMaxSequence + 1); }), EINVAL);
  // Refused hellos registered nothing.
  ASSERT_EQ(store_->list_agents().value().size(), 1u);
  EXPECT_EQ(store_->list_agents().value()[0].hostname(), std::string(253, 'h'));
}

TEST_F(AgentIngestTest, WelcomeCarriesPendingCommandsAndTheKillSwitch) {
  AgentIngest first(*store_, *store_, std::nullopt, "peer");
  ASSERT_TRUE(first.on_message(hello_bytes("web-1"), kNow));
  v1::Command command;
  command.set_command_id("01CMD");
  command.mutable_set_mode()->set_mode(v1::MODE_OBSERVE);
  ASSERT_TRUE(store_->add_command({"web-1", command}));
  ASSERT_TRUE(store_->set_fleet_mode(v1::MODE_OBSERVE));
  AgentIngest again(*store_, *store_, std::nullopt, "peer");
  auto hello = again.on_message(hello_bytes("web-1"), kNow);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->welcome->required_mode(), v1::MODE_OBSERVE);
  ASSERT_EQ(hello->commands.size(), 1u);
  EXPECT_EQ(hello->commands[0].command_id(), "01CMD");
}

}  // namespace
}  // namespace nhiguard::collector
