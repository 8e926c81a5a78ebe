// CollectorLink: the reporter thread. Keeps one gRPC stream (AgentService.Connect) open to the
// collector, sends the outbox in sequence order, deletes what the collector acknowledges, and
// carries out the collector's commands.
//
// Protocol (proto/nhiguard/v1/agent.proto, proto/README.md): Hello first (agent id, outbox id,
// highest and lowest pending sequence, current mode); the collector's Welcome says what it already
// holds (acked_through_sequence: those rows are deleted, sending resumes after them) and which mode
// it requires (the kill switch). Then Reports in sequence order, at most `window_reports` /
// `window_bytes` unacknowledged at a time; cumulative Acks delete rows; Commands are executed one
// at a time on a worker thread and their results go into the outbox like every report (durable,
// exactly once). A command seen again while its result is still unacknowledged is not executed
// twice; after a restart it is executed again, which the handler does idempotently.
//
// Transport: mTLS with collector.pki (ca.pem, agent.pem, agent-key.pem from its agent/ subdirectory
// or from itself, pki::load_tls_material; read at every attempt) or,
// only with collector.insecure, plaintext. HTTP/2 keepalive detects a dead peer.
//
// Failure: any error (cannot connect, TLS refused, stream broken, no Welcome within 10 s) ends the
// session: unacknowledged reports become sendable again (release_in_flight) and the link waits
// (exponential backoff with jitter, 0.5 s up to 30 s) before the next attempt. Nothing is lost: the
// outbox keeps every report until acknowledged. The first failure of a streak is logged as a
// warning saying what failed and that reports stay in the outbox; while it lasts a reminder is
// logged every minute; a reconnection is logged with the pending count.
//
// Thread-safety: start/stop/notify/status may be called from any thread. The CommandHandler is
// called from the link's worker thread (commands) and its session thread (required mode).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <map>
#include <string>
#include <thread>

#include <nlohmann/json_fwd.hpp>

#include "config/agent_config.h"
#include "nhiguard/v1/agent.pb.h"
#include "reporter/outbox.h"

namespace nhiguard::reporter {

// What the link needs from the agent.
class CommandHandler {
 public:
  virtual ~CommandHandler() = default;
  virtual config::AgentMode current_mode() = 0;
  // Carries out one command and says how it went. Must be idempotent (see above).
  virtual v1::CommandResult execute(const v1::Command& command) = 0;
  // The collector's requirement when a session starts (Welcome.required_mode); none: the collector
  // requires nothing and agent.yaml's mode applies.
  virtual void apply_required_mode(std::optional<config::AgentMode> mode) = 0;
};

struct CollectorLinkOptions {
  std::string address;  // host:port
  std::string pki_dir;
  bool insecure = false;
  std::string hostname;
  std::string trust_domain;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{30'000};
  std::chrono::milliseconds connect_timeout{5'000};
  size_t window_reports = 512;
  size_t window_bytes = 4u << 20;
};

class CollectorLink {
 public:
  CollectorLink(CollectorLinkOptions options, Outbox& outbox, CommandHandler& handler);
  ~CollectorLink();
  CollectorLink(const CollectorLink&) = delete;
  CollectorLink& operator=(const CollectorLink&) = delete;

  void start();
  // Ends the session and joins the threads; reports not yet acknowledged stay in the outbox.
  void stop();
  // New reports are in the outbox.
  void notify();

  // Waits until the first connection attempt has an answer: true once a Welcome was handled (the
  // collector's required mode is in force), false when the first attempt failed or `limit` passed.
  // The agent calls it at start so that a kill switch set while it was down (or before it was
  // installed) applies before it contains anything.
  bool await_first_answer(std::chrono::milliseconds limit);

  // {"address", "state": connecting|connected|waiting|stopped, "agent_id", "last_error",
  //  "connected_since", "consecutive_failures", "next_attempt_in_ms", "reports_sent", "acks"}.
  nlohmann::json status();

 private:
  struct Session;
  void run();
  // One connection attempt and, when it works, the session until it ends. Returns why it ended.
  std::string run_session();
  void read_loop(Session& session);
  void command_loop();
  void set_state(std::string state, std::string error = {});

  const CollectorLinkOptions options_;
  Outbox& outbox_;
  CommandHandler& handler_;

  std::thread thread_;
  std::thread command_thread_;
  std::atomic<bool> stopping_ = false;

  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  bool outbox_changed_ = false;
  Session* session_ = nullptr;  // the live session, for stop()
  std::deque<v1::Command> commands_;
  // Commands executed whose result is in the outbox and not yet acknowledged, with the result's
  // sequence: a redelivery of one of them is not executed again.
  std::map<std::string, uint64_t> command_result_seq_;
  std::condition_variable commands_ready_;
  // Status.
  std::string state_ = "stopped";
  std::string agent_id_;
  std::string last_error_;
  int64_t connected_since_ns_ = 0;
  uint32_t consecutive_failures_ = 0;
  int64_t next_attempt_ns_ = 0;
  uint64_t reports_sent_ = 0;
  uint64_t acks_ = 0;
  uint64_t commands_executed_ = 0;
  uint64_t attempts_finished_ = 0;
  bool welcomed_once_ = false;
};

}  // namespace nhiguard::reporter
