// IngestPipeline with the real SQLite store: reports from several streams are committed together and
// each stream gets its own cumulative ack; stop() stores what is still queued; a completed command
// wakes waiting operators.
#include <gtest/gtest.h>

#include "server/ingest_pipeline.h"
#include "store/sqlite_report_store.h"
#include "temp_dir.h"

namespace nhiguard::collector {
namespace {

constexpr int64_t kNow = 1'800'000'000'000'000'000;

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

}  // namespace
}  // namespace nhiguard::collector
