// The connected agents: one AgentStream per live AgentService.Connect call, holding what is waiting
// to be written to that agent (the latest ack, commands), and a registry by agent id so operator
// commands reach a connected agent at once.
//
// AgentStream: push_ack() coalesces (only the highest ack matters, acks are cumulative);
// push_command() queues in order; next() blocks the stream's writer until something is to be sent
// or the stream is closed. cancel(reason) ends the gRPC call (the reader's Read fails and the
// handler returns, logging the reason); it is a no-op once the handler has detached its context.
// It is the IngestStream (ingest/ingest_stream.h) that the group commit acks or cancels.
//
// AgentStreams: one stream per agent id, and it is the newest: a second stream of an agent that
// said its hello replaces the first, which is cancelled ("replaced by a newer stream"). An agent
// that reconnects before its old TCP connection timed out (a restart, a network change) must get
// the kill switch in its Welcome at once rather than wait for the old stream to die; a stolen key
// can only ever displace the agent it belongs to. The registry is also the `--max-agents` bound:
// admit() gives a stream that said hello a slot (or its agent's existing one), so streams that
// never say hello hold none (PendingHellos bounds those).
//
// PendingHellos: streams that have not said their hello yet, each cancelled when its hello is not
// in within the deadline (10 s), at most `max_pending` at once, and with mTLS at most one per
// certificate (a newer one replaces the older): idle connections cannot hold the server.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/server_context.h>

#include "ingest/ingest_stream.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::collector {

class AgentStream final : public IngestStream {
 public:
  AgentStream(std::string agent_id, std::string outbox_id, grpc::ServerContext* context, std::string peer = {})
      : agent_id_(std::move(agent_id)), outbox_id_(std::move(outbox_id)), peer_(std::move(peer)), context_(context) {}

  const std::string& agent_id() const override { return agent_id_; }
  const std::string& outbox_id() const override { return outbox_id_; }
  const std::string& peer() const { return peer_; }

  void push_ack(uint64_t acked_through) override;
  // Queues a command once: a command already pushed on this stream (by the hello and again by a
  // concurrent operator call) is not sent twice.
  void push_command(v1::Command command);
  // The next message to write, or none once closed (after everything queued before close()).
  std::optional<v1::CollectorMessage> next();
  // Ends next() once what is queued was taken; with drain = false, what is queued is discarded
  // (the stream is being refused and the client may not be reading).
  void close(bool drain = true);
  // Ends the call; the handler logs `reason` (the first one given). Safe after the handler returned.
  void cancel(std::string reason) override;
  // Why the stream was cancelled by the collector; empty when it was not.
  std::string cancel_reason() const;
  // Called by the handler before it returns: later cancel() calls do nothing.
  void detach();
  uint64_t last_acked() const;

 private:
  const std::string agent_id_;
  const std::string outbox_id_;
  const std::string peer_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  grpc::ServerContext* context_;
  uint64_t ack_pending_ = 0;  // 0: nothing new to ack
  uint64_t ack_sent_ = 0;
  std::deque<v1::Command> commands_;
  std::set<std::string> pushed_commands_;
  bool closed_ = false;
  std::string cancel_reason_;
};

class AgentStreams {
 public:
  // A stream that said hello as `agent_id` asks for a slot: true when that agent already has one
  // (the new stream will replace the old) or fewer than `max_streams` agents hold one. Every true
  // is followed by add() of that agent's stream, or release() if the stream ends before.
  bool admit(const std::string& agent_id, size_t max_streams);
  void release(const std::string& agent_id);
  // Registers `stream` as the live connection of its agent, cancelling an older one.
  void add(const std::shared_ptr<AgentStream>& stream);
  // Removes `stream` if it is still the registered one for its agent.
  void remove(const std::shared_ptr<AgentStream>& stream);
  // Queues `command` on the agent's live stream; false when the agent is not connected.
  bool deliver(const std::string& agent_id, const v1::Command& command);
  // Cancels every stream (shutdown).
  void cancel_all(const std::string& reason);
  // Agents with a live stream.
  std::vector<std::string> agent_ids() const;
  size_t size() const;  // slots held (live streams and admitted ones not yet added)

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<AgentStream>> by_agent_;  // null: admitted, not yet added
};

class PendingHellos {
 public:
  PendingHellos(std::chrono::milliseconds deadline, size_t max_pending);
  ~PendingHellos();
  PendingHellos(const PendingHellos&) = delete;
  PendingHellos& operator=(const PendingHellos&) = delete;

  struct Entry;
  using Ticket = std::shared_ptr<Entry>;
  // Starts the hello deadline of a stream; `cancel` ends it (the handler passes its context's
  // TryCancel) and is called at most once, under this object's lock, before leave(). `certified_id`:
  // the certificate's CN (empty with --insecure); an older pending stream of that id is cancelled.
  // None when max_pending streams already wait for their hello.
  std::optional<Ticket> enter(const std::string& certified_id, std::function<void()> cancel);
  // The first message arrived or the stream ended: the deadline no longer applies. Returns why the
  // stream was cancelled while pending ("no hello within 10s", "replaced by ..."), or empty.
  std::string leave(const Ticket& ticket);
  std::chrono::milliseconds deadline() const { return deadline_; }
  size_t size() const;

 private:
  void run();

  const std::chrono::milliseconds deadline_;
  const size_t max_pending_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Ticket> pending_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace nhiguard::collector
