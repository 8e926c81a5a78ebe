// AgentStream's outgoing queue: acks coalesce to the highest, commands go out once each and in
// order, close() drains or discards; AgentStreams routes commands to the live connection only.
#include <gtest/gtest.h>

#include "server/agent_streams.h"

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
  stream.cancel();  // no context: nothing to cancel, and no crash
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

}  // namespace
}  // namespace nhiguard::collector
