// AgentIngest: the collector's per-stream protocol rules, on raw bytes as they come off the wire,
// against a real SQLite store in a temporary directory.
#include <cstdlib>
#include <filesystem>

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
  AgentIngest ingest(*store_, std::string("web-1"), "peer");
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
  AgentIngest ingest(*store_, std::string("web-1"), "peer");
  auto hello = ingest.on_message(hello_bytes("web-2"), kNow);
  ASSERT_FALSE(hello);
  EXPECT_EQ(hello.error().code, EACCES);
  EXPECT_TRUE(store_->list_agents().value().empty());  // nothing registered
  // Without a certificate (--insecure) the hello is trusted.
  AgentIngest insecure(*store_, std::nullopt, "peer");
  EXPECT_TRUE(insecure.on_message(hello_bytes("web-2"), kNow));
}

TEST_F(AgentIngestTest, OrderAndShapeAreEnforced) {
  AgentIngest ingest(*store_, std::nullopt, "peer");
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
  AgentIngest ingest(*store_, std::nullopt, "peer", limits);
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

TEST_F(AgentIngestTest, DroppedRangesMustPrecedeTheirReport) {
  AgentIngest ingest(*store_, std::nullopt, "peer");
  ASSERT_TRUE(ingest.on_message(hello_bytes("web-1"), kNow));
  auto dropped = [&](uint64_t sequence, uint64_t first, uint64_t last) {
    v1::AgentMessage message;
    message.mutable_report()->set_sequence(sequence);
    auto* range = message.mutable_report()->mutable_reports_dropped()->add_ranges();
    range->set_first(first);
    range->set_last(last);
    return ingest.on_message(message.SerializeAsString(), kNow);
  };
  EXPECT_TRUE(dropped(10, 2, 9));
  EXPECT_TRUE(dropped(10, 2, 10));                           // a marker under the last sequence it replaced
  EXPECT_EQ(dropped(10, 2, 11).error().code, EINVAL);        // cannot drop what comes after it
  EXPECT_EQ(dropped(10, 5, 4).error().code, EINVAL);         // inverted
  EXPECT_EQ(dropped(10, 0, 3).error().code, EINVAL);         // sequences start at 1
  EXPECT_EQ(dropped(10, 1, UINT64_MAX).error().code, EINVAL);  // a hostile range that would swallow everything
}

TEST_F(AgentIngestTest, WelcomeCarriesPendingCommandsAndTheKillSwitch) {
  AgentIngest first(*store_, std::nullopt, "peer");
  ASSERT_TRUE(first.on_message(hello_bytes("web-1"), kNow));
  v1::Command command;
  command.set_command_id("01CMD");
  command.mutable_set_mode()->set_mode(v1::MODE_OBSERVE);
  ASSERT_TRUE(store_->add_command({"web-1", command}));
  ASSERT_TRUE(store_->set_fleet_mode(v1::MODE_OBSERVE));
  AgentIngest again(*store_, std::nullopt, "peer");
  auto hello = again.on_message(hello_bytes("web-1"), kNow);
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->welcome->required_mode(), v1::MODE_OBSERVE);
  ASSERT_EQ(hello->commands.size(), 1u);
  EXPECT_EQ(hello->commands[0].command_id(), "01CMD");
}

}  // namespace
}  // namespace nhiguard::collector
