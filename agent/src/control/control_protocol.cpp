#include "control/control_protocol.h"

#include <cerrno>
#include <initializer_list>

#include <fmt/format.h>

#include "common/enum_names.h"
#include "config/duration.h"
#include "containment/egress_destination.h"
#include "containment/target_resolver.h"
#include "common/ulid.h"

namespace nhiguard::control {
namespace {

using containment::ActionKind;
using nlohmann::json;

constexpr auto kErrorCodes = enum_names<ErrorCode>({
    {ErrorCode::not_found, "not_found"},
    {ErrorCode::invalid_argument, "invalid_argument"},
    {ErrorCode::refused, "refused"},
    {ErrorCode::internal, "internal"},
    {ErrorCode::unavailable, "unavailable"},
});

constexpr auto kMethods = enum_names<Method>({
    {Method::status, "status"},
    {Method::actions, "actions"},
    {Method::contain, "contain"},
    {Method::rollback, "rollback"},
    {Method::approve, "approve"},
    {Method::reject, "reject"},
    {Method::learn, "learn"},
    {Method::suggest, "suggest"},
    {Method::set_mode, "set_mode"},
    {Method::audit, "audit"},
});

std::unexpected<ProtocolError> invalid(std::string message) {
  return std::unexpected(ProtocolError{ErrorCode::invalid_argument, std::move(message)});
}

std::string_view json_type(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a number with a fraction";
    default:
      return "an unsupported value";
  }
}

// Null params mean {}; anything else must be an object whose keys are all in `allowed`.
std::expected<json, ProtocolError> params_object(const json& params, std::initializer_list<std::string_view> allowed,
                                                 std::string_view where) {
  if (params.is_null()) return json::object();
  if (!params.is_object()) return invalid(fmt::format("{} must be an object, not {}", where, json_type(params)));
  for (const auto& [key, value] : params.items()) {
    bool known = false;
    for (auto name : allowed) known = known || key == name;
    if (!known) return invalid(fmt::format("unknown field '{}' in {}", key, where));
  }
  return params;
}

std::expected<std::string, ProtocolError> get_string(const json& object, std::string_view key, std::string_view name) {
  const json& value = object.at(std::string(key));
  if (!value.is_string()) return invalid(fmt::format("{} must be a string, not {}", name, json_type(value)));
  return value.get<std::string>();
}

// A JSON integer in [min, max]; fractions, strings and booleans are not numbers here.
std::expected<uint64_t, ProtocolError> get_unsigned(const json& value, std::string_view name, uint64_t min,
                                                    uint64_t max) {
  if (value.is_number_unsigned()) {
    uint64_t n = value.get<uint64_t>();
    if (n >= min && n <= max) return n;
  } else if (value.is_number_integer()) {
    // A negative integer (non-negative ones are number_unsigned in nlohmann).
  } else {
    return invalid(fmt::format("{} must be an integer, not {}", name, json_type(value)));
  }
  return invalid(fmt::format("{} must be between {} and {}, not {}", name, min, max, value.dump()));
}

struct Names {
  std::string_view unit, cgroup, pid, credential, destinations, ttl, reason, action;
};

Names names_for(FieldSpelling spelling) {
  if (spelling == FieldSpelling::cli) {
    return {"--unit", "--cgroup", "--pid", "--credential", "--to", "--ttl", "--reason", "action"};
  }
  return {"target.unit",         "target.cgroup", "target.pid", "target.credential",
          "target.destinations", "ttl",           "reason",     "action"};
}

// The action as the operator wrote it in that spelling ("block-egress" on the command line).
std::string action_name(ActionKind kind, FieldSpelling spelling) {
  std::string name(containment::to_string(kind));
  if (spelling == FieldSpelling::cli) {
    for (char& c : name) c = c == '_' ? '-' : c;
  }
  return name;
}

bool has_control_characters(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

// An unknown code is reported as what it must be: an internal error.
std::string_view to_string(ErrorCode code) {
  return kErrorCodes.name(code, "internal");
}

std::optional<ErrorCode> parse_error_code(std::string_view text) {
  return kErrorCodes.parse(text);
}

ErrorCode error_code_from_errno(int err) {
  switch (err) {
    case ENOENT:
    case ESRCH:
    case ENOTDIR:
      return ErrorCode::not_found;
    case EINVAL:
    case ERANGE:
    case ENOTUNIQ:
      return ErrorCode::invalid_argument;
    case EPERM:
    case EACCES:
      return ErrorCode::refused;
    case ENOSYS:
    case EAGAIN:
    case EBUSY:
    case ENOTSUP:
      return ErrorCode::unavailable;
    default:
      return ErrorCode::internal;
  }
}

bool changes_state(Method method) {
  switch (method) {
    case Method::contain:
    case Method::rollback:
    case Method::approve:
    case Method::reject:
    case Method::learn:
    case Method::set_mode:
      return true;
    case Method::status:
    case Method::actions:
    case Method::suggest:
    case Method::audit:
      return false;
  }
  return true;
}

std::string_view to_string(Method method) {
  return kMethods.name(method);
}

std::optional<Method> parse_method(std::string_view text) {
  return kMethods.parse(text);
}

Result<void> validate_contain_request(const ContainRequest& request, FieldSpelling spelling) {
  const Names n = names_for(spelling);
  const ContainTarget& t = request.target;
  const std::string action = action_name(request.action, spelling);
  auto bad = [](std::string message) { return fail(Error{EINVAL, std::move(message)}); };

  const bool has_unit = !t.unit.empty(), has_cgroup = !t.cgroup.empty(), has_pid = t.pid.has_value();
  const bool has_credential = !t.credential.empty(), has_destinations = !t.destinations.empty();

  switch (request.action) {
    case ActionKind::block_egress:
    case ActionKind::freeze:
      if (has_pid) return bad(fmt::format("{} does not apply to {}: give {} or {}", n.pid, action, n.unit, n.cgroup));
      if (has_credential) return bad(fmt::format("{} does not apply to {}", n.credential, action));
      if (has_unit == has_cgroup) {
        return bad(fmt::format("{} needs exactly one of {} or {}", action, n.unit, n.cgroup));
      }
      if (has_destinations && request.action != ActionKind::block_egress) {
        return bad(
            fmt::format("{} applies to {} only", n.destinations, action_name(ActionKind::block_egress, spelling)));
      }
      break;
    case ActionKind::deny_credential:
      if (!has_credential) return bad(fmt::format("{} needs {}", action, n.credential));
      if (int(has_unit) + int(has_cgroup) + int(has_pid) != 1) {
        return bad(fmt::format("{} needs exactly one of {}, {} or {} as the identity denied", action, n.unit, n.cgroup,
                               n.pid));
      }
      if (has_destinations)
        return bad(
            fmt::format("{} applies to {} only", n.destinations, action_name(ActionKind::block_egress, spelling)));
      break;
    case ActionKind::kill_process:
    case ActionKind::kill_session:
      if (!has_pid) return bad(fmt::format("{} needs {}", action, n.pid));
      if (has_unit || has_cgroup || has_credential) {
        return bad(
            fmt::format("{} takes only {}: {}, {} and {} do not apply", action, n.pid, n.unit, n.cgroup, n.credential));
      }
      if (has_destinations)
        return bad(
            fmt::format("{} applies to {} only", n.destinations, action_name(ActionKind::block_egress, spelling)));
      break;
  }

  if (has_unit && !containment::TargetResolver::is_unit_name(t.unit)) {
    return bad(
        fmt::format("{} '{}' is not a unit name (expected NAME.service, NAME.scope or NAME.slice)", n.unit, t.unit));
  }
  if (has_cgroup && has_control_characters(t.cgroup)) {
    return bad(fmt::format("{} must not contain control characters", n.cgroup));
  }
  if (has_pid && *t.pid == 0) return bad(fmt::format("{} must be a positive process id", n.pid));
  if (has_credential && !t.credential.starts_with('/')) {
    return bad(fmt::format("{} '{}' must be an absolute path", n.credential, t.credential));
  }
  if (t.destinations.size() > kMaxDestinations) {
    return bad(fmt::format("too many {} destinations: {} (at most {})", n.destinations, t.destinations.size(),
                           kMaxDestinations));
  }
  for (const auto& destination : t.destinations) {
    auto parsed = containment::parse_egress_destination(destination);
    if (!parsed) return bad(fmt::format("invalid {} '{}': {}", n.destinations, destination, parsed.error().message));
  }

  if (containment::is_reversible(request.action)) {
    if (!request.ttl) return bad(fmt::format("{} needs {}", action, n.ttl));
    if (request.ttl->count() <= 0) return bad(fmt::format("{} must be greater than 0", n.ttl));
    if (*request.ttl > kMaxTtl) {
      return bad(fmt::format("{} {} exceeds the maximum of {}", n.ttl, config::format_duration(*request.ttl),
                             config::format_duration(kMaxTtl)));
    }
  } else if (request.ttl) {
    return bad(fmt::format("{} does not apply to {}: it cannot be undone, so it cannot expire", n.ttl, action));
  }

  if (request.reason.empty()) return bad(fmt::format("{} is required and must not be empty", n.reason));
  if (request.reason.size() > kMaxReasonBytes) {
    return bad(
        fmt::format("{} is {} bytes, more than the maximum of {}", n.reason, request.reason.size(), kMaxReasonBytes));
  }
  if (has_control_characters(request.reason)) {
    return bad(fmt::format("{} must not contain control characters (newlines, tabs, ...)", n.reason));
  }
  return {};
}

std::expected<ActionsRequest, ProtocolError> parse_actions_params(const json& raw) {
  auto params = params_object(raw, {"state", "limit"}, "params");
  if (!params) return std::unexpected(params.error());
  ActionsRequest request;
  if (params->contains("state")) {
    auto text = get_string(*params, "state", "state");
    if (!text) return std::unexpected(text.error());
    auto state = containment::parse_action_state(*text);
    if (!state) {
      return invalid(
          fmt::format("unknown state '{}' (expected held, active, expired, rolled_back, failed, "
                      "irreversible, rejected, dry_run or lapsed_by_reboot)",
                      *text));
    }
    request.state = *state;
  }
  if (params->contains("limit")) {
    auto limit = get_unsigned(params->at("limit"), "limit", 1, kMaxActionsLimit);
    if (!limit) return std::unexpected(limit.error());
    request.limit = static_cast<size_t>(*limit);
  }
  return request;
}

std::expected<ContainRequest, ProtocolError> parse_contain_params(const json& raw) {
  auto params = params_object(raw, {"action", "target", "ttl", "reason"}, "params");
  if (!params) return std::unexpected(params.error());
  ContainRequest request;

  if (!params->contains("action")) return invalid("action is required");
  auto action = get_string(*params, "action", "action");
  if (!action) return std::unexpected(action.error());
  auto kind = containment::parse_action_kind(*action);
  if (!kind) {
    return invalid(
        fmt::format("unknown action '{}' (expected block_egress, deny_credential, freeze, kill_process "
                    "or kill_session)",
                    *action));
  }
  request.action = *kind;

  if (!params->contains("target")) return invalid("target is required");
  auto target = params_object(params->at("target"), {"unit", "cgroup", "pid", "credential", "destinations"}, "target");
  if (!target) return std::unexpected(target.error());
  for (auto [key, field] : {std::pair{"unit", &ContainTarget::unit}, std::pair{"cgroup", &ContainTarget::cgroup},
                            std::pair{"credential", &ContainTarget::credential}}) {
    if (!target->contains(key)) continue;
    auto value = get_string(*target, key, fmt::format("target.{}", key));
    if (!value) return std::unexpected(value.error());
    if (value->empty()) return invalid(fmt::format("target.{} must not be empty", key));
    request.target.*field = std::move(*value);
  }
  if (target->contains("pid")) {
    auto pid = get_unsigned(target->at("pid"), "target.pid", 1, UINT32_MAX);
    if (!pid) return std::unexpected(pid.error());
    request.target.pid = static_cast<uint32_t>(*pid);
  }
  if (target->contains("destinations")) {
    const json& list = target->at("destinations");
    if (!list.is_array()) {
      return invalid(fmt::format("target.destinations must be an array of strings, not {}", json_type(list)));
    }
    for (const auto& item : list) {
      if (!item.is_string()) {
        return invalid(fmt::format("target.destinations must hold strings, not {}", json_type(item)));
      }
      request.target.destinations.push_back(item.get<std::string>());
    }
  }

  if (params->contains("ttl")) {
    auto text = get_string(*params, "ttl", "ttl");
    if (!text) return std::unexpected(text.error());
    if (!containment::is_reversible(request.action)) {
      return invalid(fmt::format("ttl does not apply to {}: it cannot be undone, so it cannot expire",
                                 containment::to_string(request.action)));
    }
    auto ttl = config::parse_duration(*text);
    if (!ttl) return invalid(fmt::format("invalid ttl '{}': {}", *text, ttl.error().message));
    request.ttl = *ttl;
  } else if (containment::is_reversible(request.action)) {
    request.ttl = kDefaultTtl;
  }

  if (!params->contains("reason")) return invalid("reason is required");
  auto reason = get_string(*params, "reason", "reason");
  if (!reason) return std::unexpected(reason.error());
  request.reason = std::move(*reason);

  if (auto valid = validate_contain_request(request, FieldSpelling::protocol); !valid) {
    return invalid(valid.error().message);
  }
  return request;
}

std::expected<HandleRequest, ProtocolError> parse_handle_params(const json& raw) {
  auto params = params_object(raw, {"handle"}, "params");
  if (!params) return std::unexpected(params.error());
  if (!params->contains("handle")) return invalid("handle is required");
  auto handle = get_string(*params, "handle", "handle");
  if (!handle) return std::unexpected(handle.error());
  if (!is_handle_id(*handle)) {
    return invalid(
        fmt::format("invalid handle '{}': expected rb_ followed by 26 upper-case Crockford base32 "
                    "characters",
                    *handle));
  }
  return HandleRequest{std::move(*handle)};
}

std::expected<Request, RequestError> parse_request(std::string_view line) {
  json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return std::unexpected(RequestError{std::nullopt, {ErrorCode::invalid_argument, "request is not valid JSON"}});
  }
  if (!value.is_object()) {
    return std::unexpected(RequestError{
        std::nullopt,
        {ErrorCode::invalid_argument, fmt::format("request must be an object, not {}", json_type(value))}});
  }

  Request request;
  if (!value.contains("id")) {
    return std::unexpected(RequestError{std::nullopt, {ErrorCode::invalid_argument, "id is required"}});
  }
  auto id = get_unsigned(value.at("id"), "id", 0, UINT64_MAX);
  if (!id) return std::unexpected(RequestError{std::nullopt, id.error()});
  request.id = *id;
  auto error = [&](ProtocolError e) { return std::unexpected(RequestError{request.id, std::move(e)}); };

  for (const auto& [key, item] : value.items()) {
    if (key != "id" && key != "method" && key != "params") {
      return error({ErrorCode::invalid_argument, fmt::format("unknown field '{}' in request", key)});
    }
  }
  if (!value.contains("method")) return error({ErrorCode::invalid_argument, "method is required"});
  auto method_name = get_string(value, "method", "method");
  if (!method_name) return error(method_name.error());
  auto method = parse_method(*method_name);
  if (!method) return error({ErrorCode::invalid_argument, fmt::format("unknown method '{}'", *method_name)});
  request.method = *method;

  const json params = value.contains("params") ? value.at("params") : json();
  auto with = [&](auto parsed) -> std::expected<Request, RequestError> {
    if (!parsed) return error(parsed.error());
    request.params = std::move(*parsed);
    return request;
  };
  switch (request.method) {
    case Method::status:
    case Method::suggest:
    case Method::audit: {
      auto p = params_object(params, {}, "params");
      if (!p) return error(p.error());
      request.params = std::monostate{};
      break;
    }
    case Method::actions:
      return with(parse_actions_params(params));
    case Method::contain:
      return with(parse_contain_params(params));
    case Method::rollback:
    case Method::approve:
    case Method::reject:
      return with(parse_handle_params(params));
    case Method::learn:
      return with(parse_learn_params(params));
    case Method::set_mode:
      return with(parse_mode_params(params));
  }
  return request;
}

json to_params(const ActionsRequest& request) {
  json params = {{"limit", request.limit}};
  if (request.state) params["state"] = containment::to_string(*request.state);
  return params;
}

json to_params(const ContainRequest& request) {
  const ContainTarget& t = request.target;
  json target = json::object();
  if (!t.unit.empty()) target["unit"] = t.unit;
  if (!t.cgroup.empty()) target["cgroup"] = t.cgroup;
  if (t.pid) target["pid"] = *t.pid;
  if (!t.credential.empty()) target["credential"] = t.credential;
  if (!t.destinations.empty()) target["destinations"] = t.destinations;
  json params = {
      {"action", containment::to_string(request.action)},
      {"target", std::move(target)},
      {"reason", request.reason},
  };
  if (request.ttl) params["ttl"] = config::format_duration(*request.ttl);
  return params;
}

json to_params(const HandleRequest& request) {
  return {{"handle", request.handle}};
}

json to_params(const LearnRequest& request) {
  return {{"duration", config::format_duration(request.duration)}};
}

json to_params(const ModeRequest& request) {
  return {{"mode", request.mode}};
}

std::expected<LearnRequest, ProtocolError> parse_learn_params(const json& raw) {
  auto params = params_object(raw, {"duration"}, "params");
  if (!params) return std::unexpected(params.error());
  if (!params->contains("duration")) return invalid("duration is required (e.g. \"1h\"; \"0s\" stops learning)");
  auto text = get_string(*params, "duration", "duration");
  if (!text) return std::unexpected(text.error());
  auto duration = config::parse_duration(*text);
  if (!duration) return invalid("duration: " + duration.error().message);
  if (*duration < std::chrono::milliseconds::zero() || *duration > kMaxLearningPeriod) {
    return invalid("duration: at most 30d");
  }
  return LearnRequest{*duration};
}

std::expected<ModeRequest, ProtocolError> parse_mode_params(const json& raw) {
  auto params = params_object(raw, {"mode"}, "params");
  if (!params) return std::unexpected(params.error());
  if (!params->contains("mode")) return invalid("mode is required (observe or policy)");
  auto text = get_string(*params, "mode", "mode");
  if (!text) return std::unexpected(text.error());
  if (*text != "observe" && *text != "policy") {
    return invalid(fmt::format("unknown mode '{}' (expected observe or policy)", *text));
  }
  return ModeRequest{*text};
}

json make_request(uint64_t id, Method method, json params) {
  json request = {{"id", id}, {"method", to_string(method)}};
  if (!params.is_null()) request["params"] = std::move(params);
  return request;
}

json make_ok_response(std::optional<uint64_t> id, json result) {
  return {{"id", id ? json(*id) : json(nullptr)}, {"ok", true}, {"result", std::move(result)}};
}

json make_error_response(std::optional<uint64_t> id, const ProtocolError& error) {
  return {{"id", id ? json(*id) : json(nullptr)},
          {"ok", false},
          {"error", {{"code", to_string(error.code)}, {"message", error.message}}}};
}

std::string to_line(const json& value) {
  std::string line = value.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

Result<Response> parse_response(std::string_view line) {
  auto bad = [](std::string why) { return fail(Error{EPROTO, "malformed response from the agent: " + why}); };
  json value = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return bad("not valid JSON");
  if (!value.is_object()) return bad("not an object");
  Response response;
  if (value.contains("id") && value["id"].is_number_unsigned()) response.id = value["id"].get<uint64_t>();
  if (!value.contains("ok") || !value["ok"].is_boolean()) return bad("no boolean 'ok'");
  response.ok = value["ok"].get<bool>();
  if (response.ok) {
    response.result = value.contains("result") ? value["result"] : json();
    return response;
  }
  if (!value.contains("error") || !value["error"].is_object()) return bad("no 'error' object");
  const json& error = value["error"];
  if (error.contains("code") && error["code"].is_string()) {
    // An unknown code from a newer agent is still an error; report it as internal.
    response.error.code = parse_error_code(error["code"].get<std::string>()).value_or(ErrorCode::internal);
  }
  if (error.contains("message") && error["message"].is_string()) {
    response.error.message = error["message"].get<std::string>();
  }
  return response;
}

}  // namespace nhiguard::control
