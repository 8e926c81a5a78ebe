// The Reporter without a collector: queued reports and the ledger's history reach the outbox
// together, each ledger change exactly once (also across a reopen), and an outbox full of low-value
// reports raises an outbox_full alert behind the drop marker.
#include <stdlib.h>

#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/ulid.h"
#include "reporter/reporter.h"
#include "reporter/wire_records.h"
#include "sqlite_side_connection.h"
#include "temp_dir.h"

namespace nhiguard::reporter {
namespace {

using containment::ActionState;

// Commands never arrive without a collector; the handler only has to exist.
class NoCommands : public CommandHandler {
 public:
  config::AgentMode current_mode() override { return config::AgentMode::policy; }
  v1::CommandResult execute(const v1::Command&) override { return {}; }
  void apply_required_mode(std::optional<config::AgentMode>) override {}
};

class ReporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ledger = ledger::RollbackLedger::open((root_ / "ledger.db").string());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
  }

  std::unique_ptr<Reporter> open_reporter(uint64_t max_bytes = 1 << 20, uint64_t memory_bytes = 64ull << 20) {
    auto reporter = Reporter::open({.outbox_path = (root_ / "outbox.db").string(),
                                    .outbox_max_bytes = max_bytes,
                                    .memory_queue_max_bytes = memory_bytes},
                                   *ledger_, handler_);
    EXPECT_TRUE(reporter) << reporter.error().message;
    return reporter ? std::move(*reporter) : nullptr;
  }
  // Every row in a separate outbox connection (the reporter's is closed first).
  std::vector<StoredReport> rows() {
    auto outbox = Outbox::open({.path = (root_ / "outbox.db").string()});
    EXPECT_TRUE(outbox);
    auto all = (*outbox)->take_for_send(0, 100000, SIZE_MAX);
    EXPECT_TRUE(all);
    return *all;
  }
  std::string record_active() {
    containment::RollbackHandle h;
    h.handle = new_handle_id();
    h.action = containment::ActionKind::block_egress;
    h.state = ActionState::active;
    h.rule = "manual";
    h.created_at_ns = 1;
    h.updated_at_ns = 1;
    EXPECT_TRUE(ledger_->record(h, "nhiguardctl", "e2e"));
    return h.handle;
  }

  testing::TempDir tmp_{"nhiguard-reporter"};
  const std::filesystem::path root_ = tmp_.path();
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  NoCommands handler_;
};

TEST_F(ReporterTest, EventsAndLedgerChangesReachTheOutboxOnce) {
  const auto handle = record_active();
  {
    auto reporter = open_reporter();
    reporter->add(alert_report("ringbuf_drops", "3 dropped", 3));
    reporter->flush();
    reporter->flush();  // nothing new: nothing written
    ASSERT_TRUE(ledger_->transition(handle, ActionState::rolled_back, "collector", "collector command C1: fp"));
    reporter->flush();
    const auto status = reporter->status();
    EXPECT_EQ(status["state"], "disabled");
    EXPECT_EQ(status["outbox"]["last_sequence"], 3);
  }
  auto all = rows();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].report.type, "alert");
  EXPECT_EQ(all[1].report.kind, ReportKind::action_update);
  EXPECT_EQ(all[2].report.kind, ReportKind::action_update);
  v1::Report last;
  ASSERT_TRUE(last.ParseFromString(all[2].report.payload));
  EXPECT_EQ(last.action_update().change().to_state(), v1::ACTION_STATE_ROLLED_BACK);
  EXPECT_EQ(last.action_update().change().command_id(), "C1");

  // A restarted agent does not report the same ledger changes again, only new ones.
  ASSERT_TRUE(ledger_->transition(record_active(), ActionState::rolled_back, "nhiguardctl", "done"));
  {
    auto reporter = open_reporter();
    reporter->flush();
  }
  EXPECT_EQ(rows().size(), 5u);  // the new action's record and rollback
}

TEST_F(ReporterTest, FullOutboxRaisesAnAlertBehindTheDropMarker) {
  auto reporter = open_reporter(4096);
  for (int i = 0; i < 60; ++i) reporter->add(alert_report("filler", std::string(10, 'x'), 0));  // kept: alerts
  Report low;
  low.kind = ReportKind::event;
  low.type = "egress";
  low.payload = std::string(200, 'e');
  low.droppable = true;
  for (int i = 0; i < 20; ++i) reporter->add(low);
  reporter->flush();
  reporter->flush();  // writes the alert queued by the first flush
  reporter.reset();
  bool marker = false;
  bool alert = false;
  for (const auto& row : rows()) {
    marker |= row.report.kind == ReportKind::dropped;
    if (row.report.type == "alert") {
      v1::Report body;
      ASSERT_TRUE(body.ParseFromString(row.report.payload));
      alert |= body.alert().kind() == "outbox_full";
    }
  }
  EXPECT_TRUE(marker);
  EXPECT_TRUE(alert);
}

// A full disk under the outbox: reports that are never dropped wait in memory, but only up to the
// bound; what does not fit is counted by type and reported as one reports_lost alert once the outbox
// takes writes again. Nothing is lost without a count.
TEST_F(ReporterTest, UnwritableOutboxBoundsTheMemoryQueueAndReportsWhatWasLost) {
  constexpr uint64_t kBound = 16 << 10;
  auto reporter = open_reporter(1 << 20, kBound);
  const std::string outbox = (root_ / "outbox.db").string();
  ASSERT_EQ(test_support::execute_sql(outbox,
                                      "CREATE TRIGGER disk_full BEFORE INSERT ON reports "
                                      "BEGIN SELECT RAISE(ABORT, 'simulated full disk'); END;"),
            "");
  constexpr int kDecisions = 200;
  Report low;
  low.kind = ReportKind::event;
  low.type = "egress";
  low.payload = std::string(300, 'e');
  low.droppable = true;
  for (int i = 0; i < kDecisions; ++i) {
    Report decision;
    decision.kind = ReportKind::decision;
    decision.type = "decision";
    decision.payload = std::string(500, 'd');
    reporter->add(decision);
    reporter->add(low);
    reporter->flush();  // refused: everything stays queued
  }
  auto status = reporter->status()["outbox"];
  EXPECT_LE(status["queued_in_memory_bytes"].get<uint64_t>(), kBound);
  const uint64_t lost = status["lost_in_memory"].get<uint64_t>();
  const uint64_t queued = status["queued_in_memory"].get<uint64_t>();
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(queued + lost, static_cast<uint64_t>(kDecisions));  // the low-value reports made room first

  ASSERT_EQ(test_support::execute_sql(outbox, "DROP TRIGGER disk_full"), "");  // space returns
  reporter->flush();
  reporter.reset();
  uint64_t decisions = 0;
  uint64_t reported_lost = 0;
  bool unwritable_alert = false;
  for (const auto& row : rows()) {
    if (row.report.kind == ReportKind::decision) ++decisions;
    if (row.report.type != "alert") continue;
    v1::Report body;
    ASSERT_TRUE(body.ParseFromString(row.report.payload));
    if (body.alert().kind() == "reports_lost") {
      reported_lost += body.alert().count();
      EXPECT_NE(body.alert().message().find("decision"), std::string::npos) << body.alert().message();
    }
    unwritable_alert |= body.alert().kind() == "outbox_unwritable";
  }
  EXPECT_EQ(decisions, queued);
  EXPECT_EQ(reported_lost, lost);
  EXPECT_EQ(decisions + reported_lost, static_cast<uint64_t>(kDecisions));
  EXPECT_TRUE(unwritable_alert);  // the low-value reports dropped on the way are counted too
}

}  // namespace
}  // namespace nhiguard::reporter
