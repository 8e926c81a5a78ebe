// The collector's SQLite ReportStore on a real file in a temporary directory: idempotent ingest,
// cumulative acks over gaps and declared drops, per-outbox sequence spaces, action state history,
// the command queue and the fleet mode, and that all of it survives closing and reopening.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include "sqlite_side_connection.h"
#include "store/open_report_store.h"
#include "store/sqlite_report_store.h"
#include "temp_dir.h"

namespace nhiguard::collector {
namespace {

constexpr int64_t kNow = 1'800'000'000'000'000'000;
constexpr const char* kHandle = "rb_01M817TFR2MH3X8ZQCFFZ5NYEY";

class CollectorStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (root_.path() / "db" / "collector.db").string();  // "db" does not exist yet
    reopen();
  }

  void reopen() {
    store_.reset();
    auto store = SqliteReportStore::open(path_);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
  }

  AgentSession hello(const std::string& agent, const std::string& outbox, uint64_t highest = 0,
                     uint64_t lowest_pending = 0) {
    AgentHello in;
    in.agent_id = agent;
    in.peer = "ipv4:127.0.0.1:5000";
    in.hello.set_agent_id(agent);
    in.hello.set_hostname(agent);
    in.hello.set_agent_version("0.1.0");
    in.hello.set_mode(v1::MODE_POLICY);
    in.hello.set_outbox_id(outbox);
    in.hello.set_highest_sequence(highest);
    in.hello.set_lowest_pending_sequence(lowest_pending);
    in.now_ns = kNow;
    auto session = store_->open_session(in);
    EXPECT_TRUE(session) << session.error().message;
    return session.value_or(AgentSession{});
  }

  static IngestRecord record(const std::string& agent, const std::string& outbox, v1::Report report) {
    IngestRecord r;
    r.agent_id = agent;
    r.outbox_id = outbox;
    r.received_at_ns = kNow;
    report.SerializeToString(&r.raw);
    r.report = std::move(report);
    return r;
  }

  static IngestRecord event(const std::string& agent, const std::string& outbox, uint64_t sequence) {
    v1::Report report;
    report.set_sequence(sequence);
    report.set_created_at_unix_ns(kNow - 1000);
    report.mutable_credential_access()->set_event_id("ev" + std::to_string(sequence));
    report.mutable_credential_access()->mutable_credential()->set_path("/root/.aws/credentials");
    return record(agent, outbox, std::move(report));
  }

  static IngestRecord action_update(const std::string& agent, uint64_t sequence, v1::ActionState from,
                                    v1::ActionState to, const std::string& command_id = "") {
    v1::Report report;
    report.set_sequence(sequence);
    auto* update = report.mutable_action_update();
    auto* action = update->mutable_action();
    action->set_handle(kHandle);
    action->set_action(v1::ACTION_KIND_BLOCK_EGRESS);
    action->set_state(to);
    action->set_rule("manual");
    action->set_reason("token read by curl");
    action->set_created_at_unix_ns(kNow - 5000);
    action->set_expires_at_unix_ns(kNow + 900'000'000'000);
    action->set_updated_at_unix_ns(kNow + static_cast<int64_t>(sequence));
    action->mutable_target()->set_cgroup_path("/system.slice/payments.service");
    auto* change = update->mutable_change();
    if (from != v1::ACTION_STATE_UNSPECIFIED) change->set_from_state(from);
    change->set_to_state(to);
    change->set_ledger_sequence(static_cast<int64_t>(sequence));
    change->set_actor(command_id.empty() ? "agent" : "collector");
    change->set_command_id(command_id);
    return record(agent, "ob1", std::move(report));
  }

  StoreOutcome store(std::vector<IngestRecord> records) {
    auto outcome = store_->store_reports(records);
    EXPECT_TRUE(outcome) << outcome.error().message;
    return outcome.value_or(StoreOutcome{});
  }

  static uint64_t ack_of(const StoreOutcome& outcome, const std::string& agent, const std::string& outbox) {
    for (const auto& ack : outcome.acks) {
      if (ack.agent_id == agent && ack.outbox_id == outbox) return ack.acked_through;
    }
    ADD_FAILURE() << "no ack for " << agent << "/" << outbox;
    return 0;
  }

  testing::TempDir root_{"nhiguard-collector-store"};
  std::string path_;
  std::unique_ptr<SqliteReportStore> store_;  // declared after root_: closed before it is removed
};

TEST_F(CollectorStoreTest, FileIsPrivate) {
  struct stat st{};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CollectorStoreTest, IngestIsIdempotentPerAgentOutboxAndSequence) {
  EXPECT_EQ(hello("web-1", "ob1").acked_through, 0u);
  auto first = store({event("web-1", "ob1", 1), event("web-1", "ob1", 2), event("web-1", "ob1", 3)});
  EXPECT_EQ(first.stored, 3u);
  EXPECT_EQ(first.duplicates, 0u);
  EXPECT_EQ(ack_of(first, "web-1", "ob1"), 3u);

  // A retry after a lost ack resends 2 and 3, with 4 new.
  auto retry = store({event("web-1", "ob1", 2), event("web-1", "ob1", 3), event("web-1", "ob1", 4)});
  EXPECT_EQ(retry.stored, 1u);
  EXPECT_EQ(retry.duplicates, 2u);
  EXPECT_EQ(ack_of(retry, "web-1", "ob1"), 4u);
  EXPECT_EQ(store_->count_reports("web-1").value(), 4u);

  // The same sequence from another agent is another report.
  hello("web-2", "ob1");
  auto other = store({event("web-2", "ob1", 1)});
  EXPECT_EQ(other.stored, 1u);
  EXPECT_EQ(store_->count_reports("web-2").value(), 1u);
}

TEST_F(CollectorStoreTest, AckIsTheHighestContiguousSequence) {
  hello("web-1", "ob1");
  auto gap = store({event("web-1", "ob1", 1), event("web-1", "ob1", 2), event("web-1", "ob1", 4)});
  EXPECT_EQ(ack_of(gap, "web-1", "ob1"), 2u);  // 3 is missing: 4 must not be acked yet
  auto filled = store({event("web-1", "ob1", 3)});
  EXPECT_EQ(ack_of(filled, "web-1", "ob1"), 4u);
}

TEST_F(CollectorStoreTest, DeclaredDropsAreCountedAndLetTheAckAdvance) {
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1)});
  v1::Report dropped;
  dropped.set_sequence(5);
  auto* body = dropped.mutable_reports_dropped();
  auto* range = body->add_ranges();
  range->set_first(2);
  range->set_last(4);
  body->set_count(3);
  body->set_reason("outbox full");
  auto outcome = store({record("web-1", "ob1", dropped)});
  EXPECT_EQ(ack_of(outcome, "web-1", "ob1"), 5u);
  auto agents = store_->list_agents();
  ASSERT_TRUE(agents);
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_EQ((*agents)[0].reports_dropped(), 3u);
  EXPECT_EQ((*agents)[0].reports_stored(), 2u);
}

TEST_F(CollectorStoreTest, ADropMarkerUnderItsLastSequenceLetsTheAckAdvance) {
  // The agent's outbox replaced reports 2..4 by one marker sent as report 4.
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1)});
  v1::Report marker;
  marker.set_sequence(4);
  auto* range = marker.mutable_reports_dropped()->add_ranges();
  range->set_first(2);
  range->set_last(4);
  marker.mutable_reports_dropped()->set_count(3);
  auto outcome = store({record("web-1", "ob1", marker)});
  EXPECT_EQ(ack_of(outcome, "web-1", "ob1"), 4u);
  auto next = store({event("web-1", "ob1", 5)});
  EXPECT_EQ(ack_of(next, "web-1", "ob1"), 5u);
  auto agents = store_->list_agents();
  ASSERT_TRUE(agents);
  EXPECT_EQ((*agents)[0].reports_dropped(), 3u);
}

TEST_F(CollectorStoreTest, HelloRecordsWhatAnEarlierCollectorAckedAsLost) {
  // The agent's outbox holds 10..12; 1..9 were acked by a collector whose database is gone.
  auto session = hello("web-1", "ob1", 12, 10);
  EXPECT_EQ(session.acked_through, 9u);
  EXPECT_EQ(session.gap_recorded, 9u);
  auto outcome = store({event("web-1", "ob1", 10)});
  EXPECT_EQ(ack_of(outcome, "web-1", "ob1"), 10u);
  // An empty outbox: everything up to highest was acked.
  EXPECT_EQ(hello("web-2", "obX", 7, 0).acked_through, 7u);
}

TEST_F(CollectorStoreTest, ANewOutboxStartsANewSequenceSpace) {
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1), event("web-1", "ob1", 2)});
  // The agent's state was wiped: a new outbox counts from 1 again, and nothing is a duplicate.
  EXPECT_EQ(hello("web-1", "ob2").acked_through, 0u);
  auto outcome = store({event("web-1", "ob2", 1)});
  EXPECT_EQ(outcome.stored, 1u);
  EXPECT_EQ(ack_of(outcome, "web-1", "ob2"), 1u);
  EXPECT_EQ(store_->count_reports("web-1").value(), 3u);
  // The listing's counter (kept per outbox) agrees with the rows, duplicates not counted.
  store({event("web-1", "ob2", 1)});
  auto agents = store_->list_agents();
  ASSERT_TRUE(agents);
  EXPECT_EQ((*agents)[0].reports_stored(), 3u);
  // And the old outbox keeps its own watermark.
  EXPECT_EQ(hello("web-1", "ob1", 2, 0).acked_through, 2u);
}

TEST_F(CollectorStoreTest, ActionKeepsItsLatestStateAndFullHistory) {
  hello("web-1", "ob1");
  store({action_update("web-1", 1, v1::ACTION_STATE_UNSPECIFIED, v1::ACTION_STATE_ACTIVE)});
  store({action_update("web-1", 2, v1::ACTION_STATE_ACTIVE, v1::ACTION_STATE_ROLLED_BACK, "01CMD")});
  auto action = store_->find_action("", kHandle);
  ASSERT_TRUE(action) << action.error().message;
  EXPECT_EQ(action->agent_id(), "web-1");
  EXPECT_EQ(action->action().state(), v1::ACTION_STATE_ROLLED_BACK);
  EXPECT_EQ(action->action().reason(), "token read by curl");
  ASSERT_EQ(action->history_size(), 2);
  EXPECT_FALSE(action->history(0).has_from_state());
  EXPECT_EQ(action->history(0).to_state(), v1::ACTION_STATE_ACTIVE);
  EXPECT_EQ(action->history(1).from_state(), v1::ACTION_STATE_ACTIVE);
  EXPECT_EQ(action->history(1).command_id(), "01CMD");

  ActionQuery active;
  active.states = {v1::ACTION_STATE_ACTIVE};
  EXPECT_TRUE(store_->list_actions(active).value().empty());
  ActionQuery rolled_back;
  rolled_back.states = {v1::ACTION_STATE_ROLLED_BACK};
  EXPECT_EQ(store_->list_actions(rolled_back).value().size(), 1u);
  EXPECT_EQ(store_->find_action("", "rb_01M817TFR2MH3X8ZQCFFZ5NYEZ").error().code, ENOENT);
  EXPECT_EQ(store_->find_action("web-2", kHandle).error().code, ENOENT);  // web-1's, not web-2's
}

TEST_F(CollectorStoreTest, AHandleClaimedByTwoAgentsIsNotGuessedButEachPairStaysReachable) {
  hello("web-1", "ob1");
  hello("evil", "ob1");
  store({action_update("web-1", 1, v1::ACTION_STATE_UNSPECIFIED, v1::ACTION_STATE_ACTIVE)});
  ASSERT_TRUE(store_->find_action("", kHandle));
  // Another agent reports the same handle (later, as if newer, and rolled back): the bare handle
  // no longer names one action, so a command must not follow it...
  store({action_update("evil", 1, v1::ACTION_STATE_UNSPECIFIED, v1::ACTION_STATE_ROLLED_BACK)});
  auto found = store_->find_action("", kHandle);
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().code, ENOTSUP);
  EXPECT_NE(found.error().message.find("evil, web-1"), std::string::npos) << found.error().message;
  EXPECT_NE(found.error().message.find("--agent"), std::string::npos) << found.error().message;
  // ...but the victim's action is untouched and reachable by (agent, handle).
  auto victim = store_->find_action("web-1", kHandle);
  ASSERT_TRUE(victim) << victim.error().message;
  EXPECT_EQ(victim->agent_id(), "web-1");
  EXPECT_EQ(victim->action().state(), v1::ACTION_STATE_ACTIVE);
  EXPECT_EQ(victim->history_size(), 1);
  auto shadow = store_->find_action("evil", kHandle);
  ASSERT_TRUE(shadow);
  EXPECT_EQ(shadow->action().state(), v1::ACTION_STATE_ROLLED_BACK);
  ActionQuery of_web1;
  of_web1.agent_id = "web-1";
  ASSERT_EQ(store_->list_actions(of_web1).value().size(), 1u);
  EXPECT_EQ(store_->list_actions(of_web1).value()[0].action().state(), v1::ACTION_STATE_ACTIVE);
}

TEST_F(CollectorStoreTest, ACommandResultForACommandNeverSentChangesNoAction) {
  hello("web-1", "ob1");
  store({action_update("web-1", 1, v1::ACTION_STATE_UNSPECIFIED, v1::ACTION_STATE_ACTIVE)});
  v1::Report forged;
  forged.set_sequence(2);
  forged.mutable_command_result()->set_command_id("01NEVERSENT");
  forged.mutable_command_result()->set_status(v1::CommandResult::STATUS_OK);
  auto* claimed = forged.mutable_command_result()->mutable_action();
  claimed->set_handle(kHandle);
  claimed->set_state(v1::ACTION_STATE_ROLLED_BACK);
  auto outcome = store({record("web-1", "ob1", forged)});
  EXPECT_EQ(outcome.stored, 1u);  // kept as a report
  EXPECT_TRUE(outcome.completed_commands.empty());
  EXPECT_EQ(store_->find_action("web-1", kHandle)->action().state(), v1::ACTION_STATE_ACTIVE);
}

TEST_F(CollectorStoreTest, CommandsWaitForTheirResultAndOnlyTheirAgentCompletesThem) {
  hello("web-1", "ob1");
  hello("web-2", "ob1");
  v1::Command command;
  command.set_command_id("01CMD0000000000000000000001");
  command.set_issued_at_unix_ns(kNow);
  command.set_issued_by("operator");
  command.mutable_rollback()->set_handle(kHandle);
  auto queued = store_->add_command({"web-1", command});
  ASSERT_TRUE(queued) << queued.error().message;
  EXPECT_EQ(queued->state(), v1::COMMAND_STATE_PENDING);
  EXPECT_EQ(queued->kind(), "rollback");
  EXPECT_EQ(store_->add_command({"web-1", command}).error().code, EEXIST);

  ASSERT_EQ(store_->undelivered_commands("web-1").value().size(), 1u);
  EXPECT_TRUE(store_->undelivered_commands("web-2").value().empty());
  ASSERT_TRUE(store_->mark_command_sent(command.command_id(), kNow + 1));
  EXPECT_EQ(store_->get_command(command.command_id())->state(), v1::COMMAND_STATE_SENT);
  // Sent but not answered: delivered again after a reconnect.
  EXPECT_EQ(store_->undelivered_commands("web-1").value().size(), 1u);

  v1::Report result;
  result.set_sequence(1);
  result.mutable_command_result()->set_command_id(command.command_id());
  result.mutable_command_result()->set_status(v1::CommandResult::STATUS_OK);
  // web-2 cannot complete web-1's command.
  auto foreign = store({record("web-2", "ob1", result)});
  EXPECT_TRUE(foreign.completed_commands.empty());
  EXPECT_EQ(store_->get_command(command.command_id())->state(), v1::COMMAND_STATE_SENT);

  auto own = store({record("web-1", "ob1", result)});
  ASSERT_EQ(own.completed_commands.size(), 1u);
  auto done = store_->get_command(command.command_id());
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state(), v1::COMMAND_STATE_DONE);
  ASSERT_TRUE(done->has_result());
  EXPECT_EQ(done->result().status(), v1::CommandResult::STATUS_OK);
  EXPECT_TRUE(store_->undelivered_commands("web-1").value().empty());
  EXPECT_EQ(store_->get_command("nope").error().code, ENOENT);
}

TEST_F(CollectorStoreTest, FleetModeReachesAgentsThatConnectLater) {
  EXPECT_EQ(store_->fleet_mode().value(), v1::MODE_UNSPECIFIED);
  EXPECT_EQ(hello("web-1", "ob1").required_mode, v1::MODE_UNSPECIFIED);
  ASSERT_TRUE(store_->set_required_mode("web-1", v1::MODE_OBSERVE));
  EXPECT_EQ(hello("web-1", "ob1").required_mode, v1::MODE_OBSERVE);
  EXPECT_EQ(store_->set_required_mode("ghost", v1::MODE_OBSERVE).error().code, ENOENT);

  ASSERT_TRUE(store_->set_fleet_mode(v1::MODE_OBSERVE));
  reopen();  // the kill switch is durable
  EXPECT_EQ(store_->fleet_mode().value(), v1::MODE_OBSERVE);
  EXPECT_EQ(hello("new-agent", "ob1").required_mode, v1::MODE_OBSERVE);
  ASSERT_TRUE(store_->set_fleet_mode(v1::MODE_UNSPECIFIED));
  EXPECT_EQ(hello("new-agent-2", "ob1").required_mode, v1::MODE_UNSPECIFIED);
}

TEST_F(CollectorStoreTest, EverythingSurvivesReopening) {
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1), event("web-1", "ob1", 2)});
  reopen();
  auto agents = store_->list_agents();
  ASSERT_TRUE(agents);
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_TRUE((*agents)[0].connected());
  EXPECT_EQ((*agents)[0].acked_through_sequence(), 2u);
  // A connection that was replaced (another peer) closing late leaves the newer one connected.
  ASSERT_TRUE(store_->close_session("web-1", "ipv4:127.0.0.1:9999", kNow + 10));
  EXPECT_TRUE(store_->list_agents().value()[0].connected());
  ASSERT_TRUE(store_->close_session("web-1", "ipv4:127.0.0.1:5000", kNow + 10));
  EXPECT_FALSE(store_->list_agents().value()[0].connected());
  EXPECT_EQ(hello("web-1", "ob1", 2, 0).acked_through, 2u);
}

TEST_F(CollectorStoreTest, SchemaOneIsMigratedToTheLatestWithItsCountsFilled) {
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1), event("web-1", "ob1", 2)});
  store_.reset();
  // Turn the file back into schema 1 (before the per-outbox counter and the retention index).
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "DROP INDEX reports_by_kind_received; ALTER TABLE outboxes DROP COLUMN reports_stored; "
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(raw);
  sqlite3_close(raw);
  reopen();
  auto agents = store_->list_agents();
  ASSERT_TRUE(agents) << agents.error().message;
  EXPECT_EQ((*agents)[0].reports_stored(), 2u);
  store({event("web-1", "ob1", 3)});
  EXPECT_EQ(store_->list_agents().value()[0].reports_stored(), 3u);
}

v1::Report drop_marker(uint64_t sequence, std::vector<std::pair<uint64_t, uint64_t>> ranges) {
  v1::Report report;
  report.set_sequence(sequence);
  uint64_t count = 0;
  for (auto [first, last] : ranges) {
    auto* range = report.mutable_reports_dropped()->add_ranges();
    range->set_first(first);
    range->set_last(last);
    count += last - first + 1;
  }
  report.mutable_reports_dropped()->set_count(count);
  return report;
}

TEST_F(CollectorStoreTest, HugeDropTotalsNeitherOverflowTheListingNorTheKillSwitch) {
  // Each outbox's ranges are valid (below 2^63), but an agent has as many outboxes as it says
  // hellos: the total over them passes 2^63, where SQL's SUM fails the whole listing.
  constexpr uint64_t kTop = (uint64_t{1} << 63) - 2;
  for (const char* outbox : {"ob1", "ob2", "ob3"}) {
    hello("evil", outbox);
    auto outcome = store_->store_reports(std::vector{record("evil", outbox, drop_marker(kTop, {{1, kTop}}))});
    ASSERT_TRUE(outcome) << outcome.error().message;
  }
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1)});
  // A row as the collector stored them before ranges were validated (three times [1, 2^62]).
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(sqlite3_exec(raw,
                           "INSERT INTO lost_ranges (agent_id, outbox_id, first, last, source, reason, recorded_at_ns) "
                           "VALUES ('old', 'ob1', 1, 4611686018427387904, 'agent', 'x', 0), "
                           "('old', 'ob1', -5, -1, 'agent', 'x', 0)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(raw);
  }
  ASSERT_EQ(sqlite3_exec(raw, "INSERT INTO agents VALUES ('old', 'old', 'v', 1, 0, 0, 0, 0, 'ob1', 'p')", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);

  auto agents = store_->list_agents();
  ASSERT_TRUE(agents) << agents.error().message;
  ASSERT_EQ(agents->size(), 3u);
  EXPECT_EQ((*agents)[0].agent_id(), "evil");
  EXPECT_EQ((*agents)[0].reports_dropped(), uint64_t{INT64_MAX});  // clamped, not an error
  EXPECT_EQ((*agents)[1].reports_dropped(), uint64_t{INT64_MAX});
  EXPECT_EQ((*agents)[2].agent_id(), "web-1");
  EXPECT_EQ((*agents)[2].reports_dropped(), 0u);
  EXPECT_EQ(store_->agent_ids().value(), (std::vector<std::string>{"evil", "old", "web-1"}));
  ASSERT_TRUE(store_->set_fleet_mode(v1::MODE_OBSERVE));
  EXPECT_EQ(hello("web-1", "ob1").required_mode, v1::MODE_OBSERVE);
}

TEST_F(CollectorStoreTest, ASequenceIsEitherStoredOrDroppedNeverBoth) {
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 1), event("web-1", "ob1", 2), event("web-1", "ob1", 4)});  // 3 missing: acked 2
  // A marker over report 4, which is stored: refused whole, nothing of it kept.
  auto over_stored = store_->store_reports(std::vector{record("web-1", "ob1", drop_marker(5, {{3, 5}}))});
  ASSERT_FALSE(over_stored);
  EXPECT_EQ(over_stored.error().code, EINVAL);
  EXPECT_NE(over_stored.error().message.find("covers report 4"), std::string::npos) << over_stored.error().message;
  EXPECT_NE(over_stored.error().message.find("agent web-1"), std::string::npos);
  // A marker reaching below the acknowledged watermark.
  auto below = store_->store_reports(std::vector{record("web-1", "ob1", drop_marker(6, {{2, 3}, {5, 6}}))});
  ASSERT_FALSE(below);
  EXPECT_EQ(below.error().code, EINVAL);
  EXPECT_EQ(store_->count_reports("web-1").value(), 3u);
  EXPECT_EQ(store_->list_agents().value()[0].reports_dropped(), 0u);
  // The honest marker for 3 lets the ack advance; a late report 3 after it is refused.
  auto honest = store({record("web-1", "ob1", drop_marker(3, {{3, 3}}))});
  EXPECT_EQ(ack_of(honest, "web-1", "ob1"), 4u);
  hello("web-1", "ob1");
  store({event("web-1", "ob1", 5)});
  auto marker = store({record("web-1", "ob1", drop_marker(8, {{7, 8}}))});
  EXPECT_EQ(ack_of(marker, "web-1", "ob1"), 5u);  // 6 missing
  auto late = store_->store_reports(std::vector{event("web-1", "ob1", 7)});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, EINVAL);
  EXPECT_NE(late.error().message.find("report 7 was declared dropped"), std::string::npos) << late.error().message;
}

TEST_F(CollectorStoreTest, RetentionPrunesOldEventsOnlyAndResendsStayDuplicates) {
  hello("web-1", "ob1");
  auto old_event = event("web-1", "ob1", 1);
  old_event.received_at_ns = kNow - 100;
  store({old_event, event("web-1", "ob1", 2),
         action_update("web-1", 3, v1::ACTION_STATE_UNSPECIFIED, v1::ACTION_STATE_ACTIVE)});
  auto pruned = store_->prune_events(kNow - 50, 1000);
  ASSERT_TRUE(pruned) << pruned.error().message;
  EXPECT_EQ(*pruned, 1u);  // only the old event; the newer event and the action update stay
  EXPECT_EQ(store_->count_reports("web-1").value(), 2u);
  EXPECT_TRUE(store_->find_action("", kHandle));
  // A late resend of the pruned report is a duplicate: its sequence is below the watermark.
  auto resent = store({event("web-1", "ob1", 1)});
  EXPECT_EQ(resent.stored, 0u);
  EXPECT_EQ(resent.duplicates, 1u);
  EXPECT_EQ(ack_of(resent, "web-1", "ob1"), 3u);
  EXPECT_EQ(store_->count_reports("web-1").value(), 2u);
  // The batch limit holds.
  auto later = event("web-1", "ob1", 4);
  later.received_at_ns = kNow - 10;
  auto later2 = event("web-1", "ob1", 5);
  later2.received_at_ns = kNow - 10;
  store({later, later2});
  EXPECT_EQ(store_->prune_events(kNow + 1, 1).value(), 1u);
}

// Memory accesses and block device opens are stored under their own kind and event id, and are
// events for retention like accesses and egress.
TEST_F(CollectorStoreTest, MemoryAccessAndBlockDeviceReportsAreStoredAsEvents) {
  hello("web-1", "ob1");
  v1::Report access;
  access.set_sequence(1);
  access.mutable_memory_access()->set_event_id("ev_mem");
  access.mutable_memory_access()->set_how("proc_mem");
  v1::Report device;
  device.set_sequence(2);
  device.mutable_block_device_open()->set_event_id("ev_blk");
  device.mutable_block_device_open()->set_device("/dev/sda");
  auto outcome = store({record("web-1", "ob1", access), record("web-1", "ob1", device)});
  EXPECT_EQ(outcome.stored, 2u);
  EXPECT_EQ(ack_of(outcome, "web-1", "ob1"), 2u);
  // abs() of the smallest integer is an error: the query fails unless both rows are as expected.
  EXPECT_EQ(test_support::execute_sql(path_,
                                      "SELECT CASE WHEN (SELECT COUNT(*) FROM reports WHERE "
                                      "(kind = 'memory_access' AND event_id = 'ev_mem') OR "
                                      "(kind = 'block_device_open' AND event_id = 'ev_blk')) = 2 "
                                      "THEN 1 ELSE abs(-9223372036854775808) END"),
            "");
  EXPECT_EQ(store_->prune_events(kNow + 1, 1000).value(), 2u);
}

TEST_F(CollectorStoreTest, UnknownBodiesAreKeptWhole) {
  hello("web-1", "ob1");
  v1::Report report;
  report.set_sequence(1);
  // A body field number this collector does not know (a newer agent's), as raw wire bytes.
  std::string bytes;
  report.SerializeToString(&bytes);
  bytes += std::string(
      "\xca\x01\x03"
      "abc",
      6);  // field 25, length-delimited, "abc"
  v1::Report parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.body_case(), v1::Report::BODY_NOT_SET);
  IngestRecord r;
  r.agent_id = "web-1";
  r.outbox_id = "ob1";
  r.raw = bytes;
  r.report = parsed;
  auto outcome = store({r});
  EXPECT_EQ(outcome.stored, 1u);
  EXPECT_EQ(ack_of(outcome, "web-1", "ob1"), 1u);
}

TEST(OpenReportStore, NamesWhatIsNotBuiltAndWhatIsMalformed) {
  auto pg = open_report_store("postgresql://collector@db/nhiguard");
  ASSERT_FALSE(pg);
  EXPECT_EQ(pg.error().code, ENOTSUP);
  EXPECT_NE(pg.error().message.find("not built in this version"), std::string::npos);
  auto bad = open_report_store("mysql://x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_EQ(open_report_store("sqlite:").error().code, EINVAL);
}

}  // namespace
}  // namespace nhiguard::collector
