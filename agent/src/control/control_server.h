// ControlServer: the agent's end of the local control socket (protocol in control_protocol.h).
//
// Listens on a unix stream socket (default /run/nhiguard/agent.sock) and answers each request line
// by calling a ControlHandler. Only peers whose uid (SO_PEERCRED, taken at connect time) is in the
// allowed set are served; everyone else gets a `refused` error and is disconnected. The default
// set is {0}: containment is a root-only power. The socket file is also 0600 in a 0700 directory,
// so the credential check is the second of two locks, not the only one.
//
// Every request that changes something (changes_state: contain, rollback, approve, reject, learn,
// set_mode) is made with its peer (control_peer.h: SO_PEERCRED's pid/uid/gid and /proc's start
// time, exe, comm and cgroup, read again for the request; a peer whose pid now names another
// process, or none, is refused): the handler's authorize() may refuse it, the handler's methods run
// under a ledger::ScopedControlPeer so the history rows they write name the peer, and audit() is
// told the outcome, whatever it was.
//
// Serving model: one thread, poll(2) over the listener, a wake-up eventfd and every open
// connection (at most max_connections; one more is told `unavailable` and closed). Connections are
// independent: a client that stalls, disconnects mid-line or sends garbage affects only its own
// connection. A line over kMaxRequestLineBytes gets an error response and closes that connection;
// malformed JSON gets an error response and the connection keeps serving. A connection idle for
// idle_timeout is closed so silent clients cannot hold slots forever. A client that pipelines
// requests without reading responses is not read from while more than 1 MiB of responses waits.
//
// Threading: every ControlHandler call is made on the server thread, one at a time, never
// concurrently with itself; the handler must synchronise with whatever else touches the state it
// reads (the agent's event loop). A slow handler call delays every other control client, not the
// agent. start() and stop() are called from the owning thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "containment/action.h"
#include "control/control_protocol.h"
#include "ledger/rollback_ledger.h"

namespace nhiguard::control {

// What the agent does for each method. An Error's errno chooses the protocol code
// (error_code_from_errno: ENOENT -> not_found, EINVAL -> invalid_argument, EPERM -> refused,
// ENOSYS -> unavailable, other -> internal) and its message is sent to the client as is, so it must
// say what failed on what and never carry secret material. Requests arrive already validated
// (validate_contain_request, handle format), so handlers check only what needs the agent's state.
// An exception escaping a handler is answered as `internal`.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;

  // The agent's status object (version, mode, feature probe, counters: whatever the agent reports).
  virtual Result<nlohmann::json> status() = 0;
  // Handles matching the filter, newest first, at most request.limit.
  virtual Result<std::vector<containment::RollbackHandle>> actions(const ActionsRequest& request) = 0;
  // Resolves the target, runs the safety gates, applies (or holds) the action: the new handle.
  virtual Result<containment::RollbackHandle> contain(const ContainRequest& request) = 0;
  // Undoes the action; idempotent: a terminal handle is returned as it is. ENOENT for no such handle.
  virtual Result<containment::RollbackHandle> rollback(std::string_view handle) = 0;
  // Held actions: approve executes one, reject declines it. Handlers without held actions (and
  // the methods below, when not offered) answer `unavailable`.
  virtual Result<containment::RollbackHandle> approve(std::string_view handle);
  virtual Result<containment::RollbackHandle> reject(std::string_view handle);
  // Learning mode: start (or stop, with zero) a learning period; the summary object.
  virtual Result<nlohmann::json> learn(std::chrono::milliseconds duration);
  // The allow-list policy of what was learned: {"policy": YAML text, "learning": summary}.
  virtual Result<nlohmann::json> suggest();
  // The agent mode at run time ("observe" or "policy"): {"mode", "previous"}.
  virtual Result<nlohmann::json> set_mode(std::string_view mode);
  // The audit trail, oldest first: {"audit": [...]} (control_audit.h).
  virtual Result<nlohmann::json> audit_trail();

  // Before a changes_state() request: an error refuses it (EPERM -> `refused`, with the message) and
  // nothing is dispatched. The default allows everything.
  virtual Result<void> authorize(const Request& request, const ledger::ControlPeer& peer);
  // After every changes_state() request, refused, failed or done, with the response sent. The
  // default records nothing.
  virtual void audit(const Request& request, const ledger::ControlPeer& peer, const nlohmann::json& response);
};

// One parsed request -> its response object, by calling `handler`. Results: status -> the handler's
// object; actions -> {"actions": [...]}; contain/rollback/approve/reject -> {"action": {...}};
// learn/suggest/set_mode -> the handler's object.
// With `peer` (the server always passes one), changes_state() requests go through authorize(), run
// under a ScopedControlPeer and are audited; without, they are dispatched as they are (tests of the
// methods alone).
nlohmann::json dispatch_request(ControlHandler& handler, const Request& request,
                                const ledger::ControlPeer* peer = nullptr);

// One request line (without '\n') -> its response object: parse_request, then dispatch_request.
nlohmann::json handle_request_line(ControlHandler& handler, std::string_view line,
                                   const ledger::ControlPeer* peer = nullptr);

struct ControlServerOptions {
  std::string socket_path = std::string(kDefaultSocketPath);
  std::vector<uid_t> allowed_uids = {0};
  size_t max_connections = 16;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
};

class ControlServer {
 public:
  // `handler` must outlive the server (or at least its stop()).
  ControlServer(ControlServerOptions options, ControlHandler& handler);
  ~ControlServer();  // stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the parent directory (0700) if missing, removes a stale socket file left by a dead
  // agent (EADDRINUSE if a live one still answers on it; EEXIST if the path is not a socket), binds,
  // chmods 0600, listens, and starts the serving thread. The socket accepts connections when this
  // returns. Fails with EALREADY when already started.
  Result<void> start();

  // Wakes the serving thread, closes every connection (a client waiting for a response sees EOF),
  // joins the thread and removes the socket file if it is still ours. Idempotent.
  void stop();

  bool running() const { return thread_.joinable(); }
  const std::string& socket_path() const { return options_.socket_path; }

  // Requests answered so far (including error responses); for status and tests.
  uint64_t requests_served() const { return requests_served_.load(std::memory_order_relaxed); }

 private:
  struct Connection;

  void serve();
  void accept_connections(std::vector<Connection>& connections);
  void read_from(Connection& connection);
  void process_lines(Connection& connection);
  nlohmann::json serve_request(Connection& connection, std::string_view line);
  void respond(Connection& connection, const nlohmann::json& response);
  void flush(Connection& connection);

  ControlServerOptions options_;
  ControlHandler& handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  dev_t socket_dev_ = 0;  // the inode we bound, so stop() never unlinks a successor's socket
  ino_t socket_ino_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> requests_served_{0};
};

}  // namespace nhiguard::control
