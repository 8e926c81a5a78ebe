// IngestPipeline with the real SQLite store: reports from several streams are committed together and
// each stream gets its own cumulative ack; stop() stores what is still queued; a completed command
// wakes waiting operators; one agent's records that the store refuses cost no other agent its ack;
// the queue is bounded in bytes and makes submitters wait.
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "ingest/ingest_pipeline.h"
#include "server/agent_streams.h"
#include "store/sqlite_report_store.h"
#include "temp_dir.h"

namespace nhiguard::collector {
namespace {

constexpr int64_t kNow = 1'800'000'000'000'000'000;

// The real store, with store_reports() held at a gate until the test opens it: lets a test decide
// what one batch holds and see a submitter wait.
class GatedStore final : public ReportStore {
 public:
  explicit GatedStore(ReportStore& inner) : inner_(inner) {}
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }
  // Blocks until store_reports() is waiting at the closed gate.
  void await_blocked() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_; });
  }

  Result<AgentSession> open_session(const AgentHello& h) override { return inner_.open_session(h); }
  Result<void> close_session(std::string_view a, std::string_view p, int64_t n) override {
    return inner_.close_session(a, p, n);
  }
  Result<StoreOutcome> store_reports(std::span<const IngestRecord> records) override {
    {
      std::unique_lock lock(mutex_);
      waiting_ = true;
      changed_.notify_all();
      changed_.wait(lock, [&] { return open_; });
    }
    return inner_.store_reports(records);
  }
  Result<v1::CommandStatus> add_command(const CommandRecord& r) override { return inner_.add_command(r); }
  Result<std::vector<v1::Command>> undelivered_commands(std::string_view a) override {
    return inner_.undelivered_commands(a);
  }
  Result<void> mark_command_sent(std::string_view c, int64_t n) override { return inner_.mark_command_sent(c, n); }
  Result<v1::CommandStatus> get_command(std::string_view c) override { return inner_.get_command(c); }
  Result<v1::Mode> fleet_mode() override { return inner_.fleet_mode(); }
  Result<void> set_fleet_mode(v1::Mode m) override { return inner_.set_fleet_mode(m); }
  Result<void> set_required_mode(std::string_view a, v1::Mode m) override { return inner_.set_required_mode(a, m); }
  Result<std::vector<v1::AgentSummary>> list_agents() override { return inner_.list_agents(); }
  Result<std::vector<std::string>> agent_ids() override { return inner_.agent_ids(); }
  Result<bool> agent_exists(std::string_view a) override { return inner_.agent_exists(a); }
  Result<std::vector<v1::StoredDecision>> list_decisions(std::string_view a, uint32_t l) override {
    return inner_.list_decisions(a, l);
  }
  Result<std::vector<v1::StoredAction>> list_actions(const ActionQuery& q) override { return inner_.list_actions(q); }
  Result<v1::StoredAction> find_action(std::string_view a, std::string_view h) override {
    return inner_.find_action(a, h);
  }
  Result<uint64_t> count_reports(std::string_view a) override { return inner_.count_reports(a); }
  Result<uint64_t> prune_events(int64_t b, uint32_t m) override { return inner_.prune_events(b, m); }

 private:
  ReportStore& inner_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
  bool waiting_ = false;
};

class IngestPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = SqliteReportStore::open((root_.path() / "c.db").string());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    for (const char* agent : {"web-1", "web-2"}) {
      AgentHello hello;
      hello.agent_id = agent;
      hello.peer = "peer";
      hello.hello.set_agent_id(agent);
      hello.hello.set_outbox_id("ob1");
      ASSERT_TRUE(store_->open_session(hello));
    }
  }

  static IngestRecord record(const std::string& agent, uint64_t sequence) {
    IngestRecord r;
    r.agent_id = agent;
    r.outbox_id = "ob1";
    r.received_at_ns = kNow;
    r.report.set_sequence(sequence);
    r.report.mutable_egress()->set_event_id(agent + std::to_string(sequence));
    r.report.SerializeToString(&r.raw);
    return r;
  }

  // Every ack the stream would send, in order, until it is closed.
  static std::vector<uint64_t> acks_of(AgentStream& stream) {
    stream.close();
    std::vector<uint64_t> acks;
    while (auto message = stream.next()) {
      if (message->has_ack()) acks.push_back(message->ack().acked_through_sequence());
    }
    return acks;
  }

  testing::TempDir root_{"nhiguard-pipeline"};
  std::unique_ptr<SqliteReportStore> store_;
  CommandWaiters waiters_;
};

TEST_F(IngestPipelineTest, EachStreamGetsItsOwnAckAndStopDrainsTheQueue) {
  auto one = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  auto two = std::make_shared<AgentStream>("web-2", "ob1", nullptr);
  {
    IngestPipeline pipeline(*store_, waiters_, {.max_queued = 8, .max_batch = 3});
    for (uint64_t s = 1; s <= 20; ++s) {
      ASSERT_TRUE(pipeline.submit(record("web-1", s), one));
      if (s <= 5) {
        ASSERT_TRUE(pipeline.submit(record("web-2", s), two));
      }
    }
    pipeline.stop();
    EXPECT_FALSE(pipeline.submit(record("web-1", 21), one));  // stopped: refused, not lost silently
    const auto stats = pipeline.stats();
    EXPECT_EQ(stats.stored, 25u);
    EXPECT_EQ(stats.duplicates, 0u);
    EXPECT_EQ(stats.failed_batches, 0u);
    EXPECT_GE(stats.batches, 9u);  // at most 3 reports per transaction
  }
  auto acks_one = acks_of(*one);
  auto acks_two = acks_of(*two);
  ASSERT_FALSE(acks_one.empty());
  ASSERT_FALSE(acks_two.empty());
  EXPECT_EQ(acks_one.back(), 20u);
  EXPECT_EQ(acks_two.back(), 5u);
  EXPECT_TRUE(std::is_sorted(acks_one.begin(), acks_one.end()));
  EXPECT_EQ(store_->count_reports("web-1").value(), 20u);
  EXPECT_EQ(store_->count_reports("web-2").value(), 5u);
}

TEST_F(IngestPipelineTest, AStoredCommandResultWakesWaiters) {
  v1::Command command;
  command.set_command_id("01CMD");
  command.mutable_rollback()->set_handle("rb_01M817TFR2MH3X8ZQCFFZ5NYEY");
  ASSERT_TRUE(store_->add_command({"web-1", command}));
  const uint64_t before = waiters_.generation();
  auto stream = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  IngestPipeline pipeline(*store_, waiters_, {});
  IngestRecord result = record("web-1", 1);
  result.report.mutable_command_result()->set_command_id("01CMD");
  result.report.mutable_command_result()->set_status(v1::CommandResult::STATUS_OK);
  ASSERT_TRUE(pipeline.submit(std::move(result), stream));
  const auto woke = waiters_.wait(before, std::chrono::steady_clock::now() + std::chrono::seconds(10));
  EXPECT_NE(woke, before);
  EXPECT_EQ(store_->get_command("01CMD")->state(), v1::COMMAND_STATE_DONE);
}

TEST_F(IngestPipelineTest, OneAgentsRefusedRecordsCostNoOtherAgentItsAck) {
  // web-2 holds report 2 beyond a gap; its drop marker then claims report 2 was dropped.
  ASSERT_TRUE(store_->store_reports(std::vector{record("web-2", 2)}));
  IngestRecord hostile = record("web-2", 3);
  hostile.report.clear_egress();
  auto* range = hostile.report.mutable_reports_dropped()->add_ranges();
  range->set_first(1);
  range->set_last(3);
  hostile.report.mutable_reports_dropped()->set_count(3);
  hostile.report.SerializeToString(&hostile.raw);

  GatedStore gated(*store_);
  auto good = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  auto bad = std::make_shared<AgentStream>("web-2", "ob1", nullptr);
  IngestPipeline pipeline(gated, waiters_, {});
  ASSERT_TRUE(pipeline.submit(record("web-1", 1), good));
  gated.await_blocked();  // the first batch (web-1's report 1) waits at the gate; the next one fills up
  ASSERT_TRUE(pipeline.submit(record("web-1", 2), good));
  ASSERT_TRUE(pipeline.submit(std::move(hostile), bad));
  ASSERT_TRUE(pipeline.submit(record("web-1", 3), good));
  gated.open();
  pipeline.stop();

  const auto stats = pipeline.stats();
  EXPECT_EQ(stats.failed_batches, 1u);  // the mixed batch did not commit whole...
  EXPECT_EQ(stats.refused_agents, 1u);  // ...web-2's part of it was refused alone
  EXPECT_EQ(acks_of(*good).back(), 3u);
  EXPECT_TRUE(acks_of(*bad).empty());
  EXPECT_TRUE(good->cancel_reason().empty());
  EXPECT_NE(bad->cancel_reason().find("its reports could not be stored"), std::string::npos) << bad->cancel_reason();
  EXPECT_NE(bad->cancel_reason().find("covers report 2"), std::string::npos) << bad->cancel_reason();
  EXPECT_EQ(store_->count_reports("web-1").value(), 3u);
  EXPECT_EQ(store_->count_reports("web-2").value(), 1u);
}

TEST_F(IngestPipelineTest, TheQueueIsBoundedInBytesAndSubmittersWaitNothingLost) {
  auto big = [](uint64_t sequence) {
    IngestRecord r = record("web-1", sequence);
    r.report.mutable_egress()->set_event_id(std::string(100'000, 'x'));
    r.report.SerializeToString(&r.raw);
    return r;
  };
  GatedStore gated(*store_);
  auto stream = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  // Room for two of these records (each counts twice its ~100 KB), far fewer than max_queued.
  IngestPipeline pipeline(gated, waiters_, {.max_queued = 1000, .max_queued_bytes = 450'000, .max_batch = 100});
  ASSERT_TRUE(pipeline.submit(big(1), stream));
  gated.await_blocked();
  ASSERT_TRUE(pipeline.submit(big(2), stream));
  ASSERT_TRUE(pipeline.submit(big(3), stream));
  EXPECT_LE(pipeline.stats().queued_bytes, 450'000u);
  std::atomic<bool> fourth_in = false;
  std::thread submitter([&] {
    EXPECT_TRUE(pipeline.submit(big(4), stream));
    fourth_in = true;
  });
  for (int i = 0; i < 200 && pipeline.stats().waits == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(pipeline.stats().waits, 1u);  // the fourth waits for room instead of growing the queue
  EXPECT_FALSE(fourth_in.load());
  gated.open();
  submitter.join();
  EXPECT_TRUE(fourth_in.load());
  pipeline.stop();
  EXPECT_LE(pipeline.stats().max_queued_bytes_seen, 450'000u);
  EXPECT_EQ(acks_of(*stream).back(), 4u);
  EXPECT_EQ(store_->count_reports("web-1").value(), 4u);
}

}  // namespace
}  // namespace nhiguard::collector
