// The local control protocol between nhiguardctl and the agent, over a root-only unix stream socket.
//
// Framing: one JSON object per line ('\n'-terminated, UTF-8). A connection carries any number of
// request/response pairs, in order; the client sends a request and reads exactly one response line.
//
//   request   {"id": 7, "method": "contain", "params": {...}}
//   success   {"id": 7, "ok": true, "result": {...}}
//   failure   {"id": 7, "ok": false, "error": {"code": "invalid_argument", "message": "..."}}
//
// `id` is an unsigned integer chosen by the client and echoed back; it is null in the response to a
// line whose id could not be read (malformed JSON, a line over kMaxRequestLineBytes). `params` may
// be omitted when a method takes none. Unknown top-level or params fields are rejected, so a typo
// ("tll") is an error rather than a silently ignored option.
//
// Methods and their params / result:
//   status    {}                                           -> the agent's status object
//   actions   {"state"?: "active", "limit"?: 1..10000}     -> {"actions": [action, ...]}
//   contain   {"action": "block_egress", "target": {...}, "ttl"?: "15m", "reason": "..."}
//                                                          -> {"action": action}
//   rollback  {"handle": "rb_<ULID>"}                      -> {"action": action}
//   approve   {"handle": "rb_<ULID>"}                      -> {"action": action}
//   reject    {"handle": "rb_<ULID>"}                      -> {"action": action}
//   learn     {"duration": "1h"}  (0s stops learning)       -> the learning summary
//   suggest   {}                                           -> {"policy": "<YAML>", "learning": summary}
//   set_mode  {"mode": "observe" | "policy"}                -> {"mode": "...", "previous": "..."}
// `action` is the contract's action object (records::handle_to_json). A contain target is
// {"unit"?, "cgroup"?, "pid"?, "credential"?, "destinations"?}; which fields an action needs is
// spelled out at validate_contain_request().
//
// Error codes: not_found, invalid_argument, refused, internal, unavailable (see ErrorCode).
//
// Everything here is pure (no I/O) and thread-safe; the server, the client and nhiguardctl share it
// so the socket and the command line validate with the same rules.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "containment/action.h"

namespace nhiguard::control {

inline constexpr std::string_view kDefaultSocketPath = "/run/nhiguard/agent.sock";
// A request line longer than this (not counting its '\n') is answered with an error and the
// connection is closed: nothing legitimate comes close, and the server must not buffer without end.
inline constexpr size_t kMaxRequestLineBytes = 64 * 1024;
inline constexpr size_t kMaxReasonBytes = 1024;
inline constexpr std::chrono::milliseconds kMaxTtl = std::chrono::hours(24);
// The TTL of a reversible action whose request names none (DESIGN: "default 15 min").
inline constexpr std::chrono::milliseconds kDefaultTtl = std::chrono::minutes(15);
inline constexpr size_t kDefaultActionsLimit = 1000;
inline constexpr size_t kMaxActionsLimit = 10000;
inline constexpr size_t kMaxDestinations = 256;

enum class ErrorCode {
  not_found,         // no such handle, unit, cgroup, process or credential
  invalid_argument,  // the request is malformed or fails validation
  refused,           // not allowed: peer not permitted, protected target, safety gate
  internal,          // the agent failed; the message says how
  unavailable,       // not possible now, or not offered by this handler
};
std::string_view to_string(ErrorCode code);
std::optional<ErrorCode> parse_error_code(std::string_view text);

// The protocol code for an agent Error's errno: ENOENT/ESRCH/ENOTDIR -> not_found, EINVAL/ERANGE/
// ENOTUNIQ -> invalid_argument, EPERM/EACCES -> refused, ENOSYS/EAGAIN/EBUSY/ENOTSUP -> unavailable,
// anything else (including 0) -> internal.
ErrorCode error_code_from_errno(int err);

struct ProtocolError {
  ErrorCode code = ErrorCode::internal;
  std::string message;

  static ProtocolError from(const Error& error) { return {error_code_from_errno(error.code), error.message}; }
};

enum class Method { status, actions, contain, rollback, approve, reject, learn, suggest, set_mode, audit };
// The methods that change something (and so are authorized against the peer and audited): contain,
// rollback, approve, reject, learn, set_mode. `audit` lists the audit trail (no params).
bool changes_state(Method method);
std::string_view to_string(Method method);
std::optional<Method> parse_method(std::string_view text);

// params of "actions".
struct ActionsRequest {
  std::optional<containment::ActionState> state;  // none = every state
  size_t limit = kDefaultActionsLimit;            // newest first, at most this many
};

// What the operator named as the target, before the agent resolves it (TargetResolver). Empty
// strings / nullopt mean "not given".
struct ContainTarget {
  std::string unit;    // systemd unit name, e.g. "payments.service"
  std::string cgroup;  // cgroup path as typed; the agent normalises it
  std::optional<uint32_t> pid;
  std::string credential;                 // absolute path of the credential file (deny_credential)
  std::vector<std::string> destinations;  // block_egress: "CIDR[:PORT]" / "[CIDR6]:PORT"; empty = all
};

// params of "contain".
struct ContainRequest {
  containment::ActionKind action = containment::ActionKind::block_egress;
  ContainTarget target;
  // Set for reversible actions (the request's ttl, or kDefaultTtl when it named none); always
  // nullopt for kill_process / kill_session, which cannot expire.
  std::optional<std::chrono::milliseconds> ttl;
  std::string reason;
};

// params of "rollback", "approve", "reject".
struct HandleRequest {
  std::string handle;  // "rb_" + ULID, checked with is_handle_id
};

// params of "learn": how long to learn from now; zero stops a running period.
struct LearnRequest {
  std::chrono::milliseconds duration{0};
};
inline constexpr std::chrono::milliseconds kMaxLearningPeriod = std::chrono::hours(24 * 30);

// params of "set_mode": the agent mode (agent.yaml `mode`), "observe" or "policy".
struct ModeRequest {
  std::string mode;
};

using RequestParams =
    std::variant<std::monostate, ActionsRequest, ContainRequest, HandleRequest, LearnRequest, ModeRequest>;

struct Request {
  uint64_t id = 0;
  Method method = Method::status;
  RequestParams params;  // monostate for status
};

// A request that could not be parsed: the error to answer with, and the id when it was readable.
struct RequestError {
  std::optional<uint64_t> id;
  ProtocolError error;
};

// How validation messages name a field: the socket's "target.unit" or nhiguardctl's "--unit".
enum class FieldSpelling { protocol, cli };

// The rules of a contain request, shared by the socket and the command line:
//   block_egress     exactly one of unit / cgroup; destinations optional (each must parse, at most
//                    kMaxDestinations); no pid, no credential.
//   freeze           exactly one of unit / cgroup; nothing else.
//   deny_credential  credential (an absolute path) and exactly one of unit / cgroup / pid as the
//                    identity that is denied; no destinations.
//   kill_process,    pid and nothing else; no ttl.
//   kill_session
// plus: unit has the form of a unit name, pid > 0, ttl in (0, kMaxTtl] for reversible actions,
// reason non-empty, at most kMaxReasonBytes, without control characters (it goes into tables and
// logs). The message names the offending field in the chosen spelling.
Result<void> validate_contain_request(const ContainRequest& request, FieldSpelling spelling);

// The params object of each method -> typed request, with a message naming the bad field.
// `params` may be null (treated as {}).
std::expected<ActionsRequest, ProtocolError> parse_actions_params(const nlohmann::json& params);
std::expected<ContainRequest, ProtocolError> parse_contain_params(const nlohmann::json& params);
std::expected<HandleRequest, ProtocolError> parse_handle_params(const nlohmann::json& params);
std::expected<LearnRequest, ProtocolError> parse_learn_params(const nlohmann::json& params);
std::expected<ModeRequest, ProtocolError> parse_mode_params(const nlohmann::json& params);

// One request line (without its '\n') -> Request. Never throws.
std::expected<Request, RequestError> parse_request(std::string_view line);

// Typed request -> params object (what the client sends). parse_*_params reads them back equal.
nlohmann::json to_params(const ActionsRequest& request);
nlohmann::json to_params(const ContainRequest& request);
nlohmann::json to_params(const HandleRequest& request);
nlohmann::json to_params(const LearnRequest& request);
nlohmann::json to_params(const ModeRequest& request);

// A request object {"id", "method", "params"}.
nlohmann::json make_request(uint64_t id, Method method, nlohmann::json params);

// Response objects; a null id is written as null.
nlohmann::json make_ok_response(std::optional<uint64_t> id, nlohmann::json result);
nlohmann::json make_error_response(std::optional<uint64_t> id, const ProtocolError& error);

// One JSON value as a single line with its '\n'. Invalid UTF-8 (say, a reason from argv) is
// replaced with U+FFFD rather than throwing, so a response can always be written.
std::string to_line(const nlohmann::json& value);

// A response as the client reads it.
struct Response {
  std::optional<uint64_t> id;
  bool ok = false;
  nlohmann::json result;  // when ok
  ProtocolError error;    // when !ok
};

// One response line -> Response; EPROTO when the line is not a well-formed response.
Result<Response> parse_response(std::string_view line);

}  // namespace nhiguard::control
