// The connected agents: one AgentStream per live AgentService.Connect call, holding what is waiting
// to be written to that agent (the latest ack, commands), and a registry by agent id so operator
// commands reach a connected agent at once.
//
// AgentStream: push_ack() coalesces (only the highest ack matters, acks are cumulative);
// push_command() queues in order; next() blocks the stream's writer until something is to be sent
// or the stream is closed. cancel() ends the gRPC call (the reader's Read fails and the handler
// returns); it is a no-op once the handler has detached its context.
//
// AgentStreams: the newest connection of an agent id wins; registering a second one cancels the
// first (an agent that reconnects before the old TCP connection timed out).
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <grpcpp/server_context.h>

#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::collector {

class AgentStream {
 public:
  AgentStream(std::string agent_id, std::string outbox_id, grpc::ServerContext* context)
      : agent_id_(std::move(agent_id)), outbox_id_(std::move(outbox_id)), context_(context) {}

  const std::string& agent_id() const { return agent_id_; }
  const std::string& outbox_id() const { return outbox_id_; }

  void push_ack(uint64_t acked_through);
  // Queues a command once: a command already pushed on this stream (by the hello and again by a
  // concurrent operator call) is not sent twice.
  void push_command(v1::Command command);
  // The next message to write, or none once closed (after everything queued before close()).
  std::optional<v1::CollectorMessage> next();
  // Ends next() once what is queued was taken; with drain = false, what is queued is discarded
  // (the stream is being refused and the client may not be reading).
  void close(bool drain = true);
  // Ends the call with `reason` logged by the caller; safe after the handler returned.
  void cancel();
  // Called by the handler before it returns: later cancel() calls do nothing.
  void detach();
  uint64_t last_acked() const;

 private:
  const std::string agent_id_;
  const std::string outbox_id_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  grpc::ServerContext* context_;
  uint64_t ack_pending_ = 0;  // 0: nothing new to ack
  uint64_t ack_sent_ = 0;
  std::deque<v1::Command> commands_;
  std::set<std::string> pushed_commands_;
  bool closed_ = false;
};

class AgentStreams {
 public:
  // Registers `stream` as the live connection of its agent, cancelling an older one.
  void add(const std::shared_ptr<AgentStream>& stream);
  // Removes `stream` if it is still the registered one for its agent.
  void remove(const std::shared_ptr<AgentStream>& stream);
  // Queues `command` on the agent's live stream; false when the agent is not connected.
  bool deliver(const std::string& agent_id, const v1::Command& command);
  // Cancels every stream (shutdown).
  void cancel_all();
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<AgentStream>> by_agent_;
};

}  // namespace nhiguard::collector
