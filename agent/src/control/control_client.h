// ControlClient: nhiguardctl's end of the control socket (protocol in control_protocol.h).
//
// Each call() opens a connection, sends one request line, reads one response line and closes, all
// within one deadline (default 10 s). Two kinds of failure are kept apart because the operator
// acts on them differently:
//   - the agent could not be reached or did not answer properly: call() returns an Error
//     (nhiguardctl exit code 3), with a message that says what to do, e.g.
//     "cannot connect to /run/nhiguard/agent.sock: No such file or directory — is nhiguard-agent running?"
//     "cannot connect to /run/nhiguard/agent.sock: Permission denied — need root";
//     errno ENOENT / ECONNREFUSED / EACCES (connect), ETIMEDOUT (deadline), ECONNRESET (closed with
//     no answer), EPROTO (not a valid response, or a response to another id);
//   - the agent answered with an error: call() returns a Response with ok = false (exit code 1).
//
// Thread-safety: one ControlClient per thread (the request id counter is not shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/control_protocol.h"

namespace nhiguard::control {

inline constexpr std::chrono::milliseconds kDefaultClientTimeout = std::chrono::seconds(10);
// A response line longer than this is treated as a protocol error rather than read forever.
inline constexpr size_t kMaxResponseLineBytes = 64 * 1024 * 1024;

class ControlClient {
 public:
  explicit ControlClient(std::string socket_path = std::string(kDefaultSocketPath),
                         std::chrono::milliseconds timeout = kDefaultClientTimeout);

  // Sends {"id", "method", "params"} (params omitted when null) and returns the agent's response.
  Result<Response> call(Method method, const nlohmann::json& params = nullptr);

  // Sends one raw line (a '\n' is appended) and returns the raw response line without its '\n'.
  // For tests and debugging of the protocol itself; call() is built on it.
  Result<std::string> exchange_line(std::string_view line);

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  uint64_t next_id_ = 1;
};

}  // namespace nhiguard::control
