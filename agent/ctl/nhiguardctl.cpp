// nhiguardctl: the operator's command line for the local agent, over its control socket.
//
//   nhiguardctl [--socket PATH] [--json] [--timeout DUR] status
//   nhiguardctl actions [--state STATE] [--limit N]
//   nhiguardctl contain block-egress|deny-credential|freeze|kill-process|kill-session
//                       [--unit NAME] [--cgroup PATH] [--pid PID] [--credential PATH]
//                       [--to CIDR[:PORT]]... [--ttl DUR] --reason TEXT
//   nhiguardctl rollback|approve|reject HANDLE
//
// Exit codes (scripts depend on them): 0 ok; 1 the agent answered with an error (printed with its
// code); 2 usage or validation error, found before anything is sent; 3 the agent cannot be reached.
// Everything that can be checked here is checked here, with the same rules the agent applies
// (control::validate_contain_request), so a typo never reaches the agent and the message names
// the option the operator typed.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/duration.h"
#include "containment/action.h"
#include "control/control_client.h"
#include "control/control_protocol.h"
#include "ledger/ulid.h"

namespace {

using nhiguard::containment::ActionKind;
using nlohmann::json;
namespace control = nhiguard::control;

constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;

struct Options {
  std::string socket_path = std::string(control::kDefaultSocketPath);
  bool json_output = false;
  std::string timeout = "10s";

  std::string state;
  size_t limit = control::kDefaultActionsLimit;

  std::string action;
  std::string unit;
  std::string cgroup;
  uint32_t pid = 0;
  std::string credential;
  std::vector<std::string> destinations;
  std::string ttl;
  std::string reason;

  std::string handle;
};

int usage_error(const std::string& message) {
  fmt::print(stderr, "nhiguardctl: {}\n", message);
  return kExitUsage;
}

// The duration error already quotes the text; keep only its explanation after the operator's
// option name ("invalid --ttl '15 minutes': unknown unit ...").
std::string duration_problem(const nhiguard::Error& error) {
  const std::string& message = error.message;
  auto colon = message.find("\": ");
  return colon == std::string::npos ? message : message.substr(colon + 3);
}

std::string cli_action_name(std::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

std::string string_field(const json& object, const char* key, const char* fallback = "-") {
  if (object.contains(key) && object[key].is_string() && !object[key].get<std::string>().empty()) {
    return object[key].get<std::string>();
  }
  return fallback;
}

std::string target_text(const json& action) {
  if (action.contains("target") && action["target"].is_object()) return string_field(action["target"], "description");
  return "-";
}

// Table cells stay one line and the REASON column stays readable; --json has the full text.
std::string clip(std::string text, size_t width) {
  if (text.size() <= width) return text;
  text.resize(width - 3);
  return text + "...";
}

void print_actions_table(const json& actions) {
  if (actions.empty()) {
    fmt::print("no actions\n");
    return;
  }
  const std::vector<std::string> header = {"HANDLE", "ACTION", "STATE", "TARGET", "EXPIRES", "REASON"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : actions) {
    rows.push_back({string_field(a, "handle"), cli_action_name(string_field(a, "action")), string_field(a, "state"),
                    clip(target_text(a), 60), string_field(a, "expires_at"), clip(string_field(a, "reason"), 60)});
  }
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    widths[i] = header[i].size();
    for (const auto& row : rows) widths[i] = std::max(widths[i], row[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += i + 1 == row.size() ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
    }
    fmt::print("{}\n", line);
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

// One line saying what happened to one action.
std::string describe_action(const json& a) {
  std::string line = fmt::format("{} {} {} on {}", string_field(a, "handle"), cli_action_name(string_field(a, "action")),
                                 string_field(a, "state"), target_text(a));
  if (a.contains("expires_at") && a["expires_at"].is_string()) line += ", expires " + a["expires_at"].get<std::string>();
  if (a.value("dry_run", false)) line += " (dry run: nothing was enforced)";
  if (a.contains("last_error") && a["last_error"].is_string() && !a["last_error"].get<std::string>().empty()) {
    line += " — " + a["last_error"].get<std::string>();
  }
  return line;
}

void print_status(const json& status) {
  if (!status.is_object()) {
    fmt::print("{}\n", status.dump(2, ' ', false, json::error_handler_t::replace));
    return;
  }
  for (const auto& [key, value] : status.items()) {
    fmt::print("{}: {}\n", key,
               value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

void print_json(const json& value) { fmt::print("{}\n", value.dump(2, ' ', false, json::error_handler_t::replace)); }

// Builds the contain request from the options and validates it as the agent would.
std::expected<control::ContainRequest, std::string> build_contain(const Options& o, bool ttl_given, bool pid_given) {
  auto kind = nhiguard::containment::parse_action_kind(o.action);
  if (!kind) {
    return std::unexpected(fmt::format("unknown action '{}' (expected block-egress, deny-credential, freeze, "
                                       "kill-process or kill-session)",
                                       o.action));
  }
  control::ContainRequest request;
  request.action = *kind;
  request.target.unit = o.unit;
  request.target.cgroup = o.cgroup;
  if (pid_given) request.target.pid = o.pid;
  if (!o.credential.empty()) {
    // The agent resolves paths in its own working directory, not ours.
    std::error_code ec;
    auto absolute = std::filesystem::absolute(o.credential, ec);
    if (ec) return std::unexpected(fmt::format("invalid --credential '{}': {}", o.credential, ec.message()));
    request.target.credential = absolute.lexically_normal().string();
  }
  request.target.destinations = o.destinations;
  if (!o.destinations.empty() && *kind != ActionKind::block_egress) {
    return std::unexpected(fmt::format("--to applies to block-egress only"));
  }
  if (nhiguard::containment::is_reversible(*kind)) {
    const std::string text = ttl_given ? o.ttl : nhiguard::config::format_duration(control::kDefaultTtl);
    auto ttl = nhiguard::config::parse_duration(text);
    if (!ttl) return std::unexpected(fmt::format("invalid --ttl '{}': {}", text, duration_problem(ttl.error())));
    request.ttl = *ttl;
  } else if (ttl_given) {
    return std::unexpected(
        fmt::format("--ttl does not apply to {}: it cannot be undone, so it cannot expire", cli_action_name(o.action)));
  }
  request.reason = o.reason;
  if (auto valid = control::validate_contain_request(request, control::FieldSpelling::cli); !valid) {
    return std::unexpected(valid.error().message);
  }
  return request;
}

// Sends one request and prints the outcome; returns the exit code.
int run(const Options& o, control::Method method, const json& params) {
  auto timeout = nhiguard::config::parse_duration(o.timeout);
  if (!timeout || timeout->count() <= 0) {
    return usage_error(fmt::format("invalid --timeout '{}': {}", o.timeout,
                                   timeout ? "must be greater than 0" : duration_problem(timeout.error())));
  }
  control::ControlClient client(o.socket_path, *timeout);
  auto response = client.call(method, params);
  if (!response) {
    fmt::print(stderr, "nhiguardctl: {}\n", response.error().message);
    return kExitUnreachable;
  }
  if (!response->ok) {
    fmt::print(stderr, "nhiguardctl: {} failed ({}): {}\n", control::to_string(method),
               control::to_string(response->error.code), response->error.message);
    return kExitServerError;
  }
  const json& result = response->result;
  switch (method) {
    case control::Method::status:
      o.json_output ? print_json(result) : print_status(result);
      break;
    case control::Method::actions: {
      json list = result.contains("actions") && result["actions"].is_array() ? result["actions"] : json::array();
      o.json_output ? print_json(list) : print_actions_table(list);
      break;
    }
    default: {
      json action = result.contains("action") ? result["action"] : result;
      o.json_output ? print_json(action) : fmt::print("{}\n", describe_action(action));
      break;
    }
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"nhiguardctl: operate the local nhiguard agent (status, actions, containment, rollback)"};
  app.require_subcommand(1);
  // Lets the global options follow the subcommand too: `nhiguardctl actions --json`.
  app.fallthrough();
  app.set_version_flag("--version", std::string(NHIGUARD_VERSION));
  app.add_option("--socket", o.socket_path, "The agent's control socket")->capture_default_str();
  app.add_flag("--json", o.json_output, "Machine-readable output (action objects as JSON)");
  app.add_option("--timeout", o.timeout, "How long to wait for the agent (duration, e.g. 10s)")->capture_default_str();

  auto* status = app.add_subcommand("status", "Show the agent's status");

  auto* actions = app.add_subcommand("actions", "List containment actions and their rollback handles");
  actions->add_option("--state", o.state, "Only actions in this state (held, active, expired, rolled_back, ...)");
  actions->add_option("--limit", o.limit, "At most this many, newest first")->capture_default_str();

  auto* contain = app.add_subcommand("contain", "Apply one narrow containment action");
  contain->add_option("action", o.action, "block-egress, deny-credential, freeze, kill-process or kill-session")
      ->required();
  contain->add_option("--unit", o.unit, "Target systemd unit (block-egress, freeze; identity for deny-credential)");
  contain->add_option("--cgroup", o.cgroup, "Target cgroup path (block-egress, freeze; identity for deny-credential)");
  auto* pid_option = contain->add_option("--pid", o.pid, "Target process (kill-*; identity for deny-credential)");
  contain->add_option("--credential", o.credential, "Credential file to deny (deny-credential)");
  contain->add_option("--to", o.destinations, "Blocked destination CIDR[:PORT] (block-egress; repeatable; "
                                              "default: all egress)")
      ->type_name("CIDR[:PORT]");
  auto* ttl_option = contain->add_option("--ttl", o.ttl, "Expiry of a reversible action (default 15m, at most 24h)");
  contain->add_option("--reason", o.reason, "Why (recorded in the ledger and reports)")->required();

  auto* rollback = app.add_subcommand("rollback", "Undo an action by its handle");
  rollback->add_option("handle", o.handle, "rb_ handle")->required();
  auto* approve = app.add_subcommand("approve", "Approve a held action");
  approve->add_option("handle", o.handle, "rb_ handle")->required();
  auto* reject = app.add_subcommand("reject", "Reject a held action");
  reject->add_option("handle", o.handle, "rb_ handle")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the error
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (status->parsed()) return run(o, control::Method::status, nullptr);

  if (actions->parsed()) {
    control::ActionsRequest request;
    if (!o.state.empty()) {
      auto state = nhiguard::containment::parse_action_state(o.state);
      if (!state) {
        return usage_error(fmt::format("invalid --state '{}' (expected held, active, expired, rolled_back, failed, "
                                       "irreversible or rejected)",
                                       o.state));
      }
      request.state = *state;
    }
    if (o.limit < 1 || o.limit > control::kMaxActionsLimit) {
      return usage_error(fmt::format("invalid --limit {}: must be between 1 and {}", o.limit, control::kMaxActionsLimit));
    }
    request.limit = o.limit;
    return run(o, control::Method::actions, control::to_params(request));
  }

  if (contain->parsed()) {
    auto request = build_contain(o, ttl_option->count() > 0, pid_option->count() > 0);
    if (!request) return usage_error(request.error());
    return run(o, control::Method::contain, control::to_params(*request));
  }

  for (auto [command, method] : {std::pair{rollback, control::Method::rollback},
                                 std::pair{approve, control::Method::approve}, std::pair{reject, control::Method::reject}}) {
    if (!command->parsed()) continue;
    if (!nhiguard::ledger::is_handle_id(o.handle)) {
      return usage_error(fmt::format("invalid handle '{}': expected rb_ followed by 26 upper-case Crockford base32 "
                                     "characters",
                                     o.handle));
    }
    return run(o, method, control::to_params(control::HandleRequest{o.handle}));
  }
  return usage_error("no command given (try --help)");
}
