// AgentStream's outgoing queue: acks coalesce to the highest, commands go out once each and in
// order, close() drains or discards; AgentStreams routes commands to the live connection only and
// is the --max-agents bound; PendingHellos closes streams that never say hello; the per-agent
// report rate limit.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server/agent_streams.h"
#include "server/report_rate_limiter.h"

namespace nhiguard::collector {
namespace {

v1::Command command(const std::string& id) {
  v1::Command c;
  c.set_command_id(id);
  c.mutable_rollback()->set_handle("rb_01M817TFR2MH3X8ZQCFFZ5NYEY");
  return c;
}

TEST(AgentStream, AcksCoalesceAndGoBeforeCommands) {
  AgentStream stream("web-1", "ob1", nullptr);
  stream.push_command(command("c1"));
  stream.push_ack(3);
  stream.push_ack(7);
  stream.push_ack(5);  // lower than one already queued: nothing new to say
  auto first = stream.next();
  ASSERT_TRUE(first && first->has_ack());
  EXPECT_EQ(first->ack().acked_through_sequence(), 7u);
  stream.push_ack(7);  // already sent
  auto second = stream.next();
  ASSERT_TRUE(second && second->has_command());
  EXPECT_EQ(second->command().command_id(), "c1");
  EXPECT_EQ(stream.last_acked(), 7u);
}

TEST(AgentStream, ACommandIsQueuedOncePerStream) {
  AgentStream stream("web-1", "ob1", nullptr);
  stream.push_command(command("c1"));
  stream.push_command(command("c2"));
  stream.push_command(command("c1"));  // the hello's list and an operator's delivery overlap
  stream.close();
  std::vector<std::string> sent;
  while (auto message = stream.next()) sent.push_back(message->command().command_id());
  EXPECT_EQ(sent, (std::vector<std::string>{"c1", "c2"}));
}

TEST(AgentStream, CloseWithoutDrainDiscards) {
  AgentStream stream("web-1", "ob1", nullptr);
  stream.push_ack(4);
  stream.push_command(command("c1"));
  stream.close(false);
  EXPECT_FALSE(stream.next());
  stream.cancel("test");  // no context: nothing to cancel, and no crash
  EXPECT_EQ(stream.cancel_reason(), "test");
}

TEST(AgentStreams, DeliversToTheRegisteredConnectionOnly) {
  AgentStreams streams;
  EXPECT_FALSE(streams.deliver("web-1", command("c0")));
  auto older = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  auto newer = std::make_shared<AgentStream>("web-1", "ob1", nullptr);
  streams.add(older);
  streams.add(newer);  // the agent reconnected: the newer connection wins
  EXPECT_EQ(streams.size(), 1u);
  EXPECT_TRUE(streams.deliver("web-1", command("c1")));
  newer->close();
  older->close();
  auto got = newer->next();
  ASSERT_TRUE(got && got->has_command());
  EXPECT_FALSE(older->next());
  streams.remove(older);  // a late removal of the replaced one keeps the newer registered
  EXPECT_EQ(streams.size(), 1u);
  streams.remove(newer);
  EXPECT_EQ(streams.size(), 0u);
}

TEST(AgentStreams, SlotsGoToAgentsThatSaidHelloAndAReconnectKeepsItsOwn) {
  AgentStreams streams;
  ASSERT_TRUE(streams.admit("web-1", 2));
  auto first = std::make_shared<AgentStream>("web-1", "ob1", nullptr, "ipv4:10.0.0.1:1000");
  streams.add(first);
  ASSERT_TRUE(streams.admit("web-2", 2));
  EXPECT_FALSE(streams.admit("web-3", 2));  // two agents hold the two slots
  streams.release("web-2");                 // web-2's hello was refused: its slot is free again
  EXPECT_EQ(streams.size(), 1u);
  ASSERT_TRUE(streams.admit("web-3", 2));
  auto third = std::make_shared<AgentStream>("web-3", "ob1", nullptr);
  streams.add(third);
  EXPECT_FALSE(streams.admit("web-4", 2));
  // web-1 reconnects while its old stream still looks alive: at the limit, it still gets in, and
  // the newer stream replaces the older one (which is told why).
  ASSERT_TRUE(streams.admit("web-1", 2));
  auto second = std::make_shared<AgentStream>("web-1", "ob1", nullptr, "ipv4:10.0.0.1:2000");
  streams.add(second);
  EXPECT_EQ(streams.size(), 2u);
  EXPECT_EQ(first->cancel_reason(), "replaced by a newer stream of agent web-1 from ipv4:10.0.0.1:2000");
  EXPECT_TRUE(second->cancel_reason().empty());
  streams.release("web-1");  // a late release does not take the live stream's slot
  EXPECT_EQ(streams.size(), 2u);
  EXPECT_EQ(streams.agent_ids(), (std::vector<std::string>{"web-1", "web-3"}));
}

TEST(PendingHellos, AStreamWithoutHelloIsClosedAtTheDeadlineAndOnePerCertificateWaits) {
  PendingHellos pending(std::chrono::milliseconds(200), 2);
  std::atomic<int> idle_cancelled = 0, replaced_cancelled = 0, prompt_cancelled = 0;
  auto idle = pending.enter("", [&] { ++idle_cancelled; });
  ASSERT_TRUE(idle);
  auto replaced = pending.enter("web-1", [&] { ++replaced_cancelled; });
  ASSERT_TRUE(replaced);
  EXPECT_FALSE(pending.enter("web-2", [] {}));  // two wait already
  // A second stream of web-1's certificate replaces the first one still waiting.
  auto prompt = pending.enter("web-1", [&] { ++prompt_cancelled; });
  ASSERT_TRUE(prompt);
  EXPECT_EQ(replaced_cancelled.load(), 1);
  EXPECT_EQ(pending.leave(*replaced), "replaced by a newer stream of agent web-1 before its hello");
  EXPECT_EQ(pending.leave(*prompt), "");  // its hello came in time
  // The idle one is cancelled by the deadline, once.
  for (int i = 0; i < 100 && idle_cancelled.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(idle_cancelled.load(), 1);
  EXPECT_EQ(pending.leave(*idle), "no hello within 0.2s");
  EXPECT_EQ(prompt_cancelled.load(), 0);
  EXPECT_EQ(pending.size(), 0u);
}

TEST(ReportRateLimiter, EachAgentHasItsOwnBucketThatRefillsAtTheRate) {
  ReportRateLimiter limiter({.reports_per_second = 10, .burst = 5});
  const auto t0 = ReportRateLimiter::Clock::now();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.admit("flood", t0)) << i;
  EXPECT_FALSE(limiter.admit("flood", t0));  // the burst is spent
  EXPECT_TRUE(limiter.admit("quiet", t0));   // another agent is not affected
  EXPECT_FALSE(limiter.admit("flood", t0 + std::chrono::milliseconds(50)));
  EXPECT_TRUE(limiter.admit("flood", t0 + std::chrono::milliseconds(100)));  // one report per 100 ms
  EXPECT_FALSE(limiter.admit("flood", t0 + std::chrono::milliseconds(100)));
  EXPECT_TRUE(limiter.admit("flood", t0 + std::chrono::seconds(60)));  // refilled, up to the burst only
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(limiter.admit("flood", t0 + std::chrono::seconds(60)));
  EXPECT_FALSE(limiter.admit("flood", t0 + std::chrono::seconds(60)));
  ReportRateLimiter off({.reports_per_second = 0, .burst = 1});
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(off.admit("any", t0));
}

}  // namespace
}  // namespace nhiguard::collector
