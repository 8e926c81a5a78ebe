// nhiguardctl: the operator's command line for the local agent, over its control socket, and for
// the fleet, through a collector (--collector ADDR, mTLS with the operator certificate).
//
//   nhiguardctl [--socket PATH] [--json] [--timeout DUR] status
//   nhiguardctl audit                               (the local agent's control audit trail)
//   nhiguardctl actions [--state STATE] [--limit N]
//   nhiguardctl contain block-egress|deny-credential|freeze|kill-process|kill-session
//                       [--unit NAME] [--cgroup PATH] [--pid PID] [--credential PATH]
//                       [--to CIDR[:PORT]]... [--ttl DUR] --reason TEXT
//   nhiguardctl rollback|approve|reject HANDLE
//   nhiguardctl mode observe|policy                (the local agent)
//   nhiguardctl policy check FILE...            (local: no agent, no root)
//   nhiguardctl policy learn --for DUR          (0s stops learning)
//   nhiguardctl policy suggest [--output FILE]
//   nhiguardctl --collector ADDR [--pki DIR] [--insecure] agents | incidents | actions
//               | approve|reject|rollback HANDLE [--agent ID] [--wait DUR] | mode observe|policy --agent ID|--all
//   nhiguardctl certs init DIR [--agent NAME]... [--collector-san NAME]... [--operator NAME] [--ca-only]
//   nhiguardctl certs issue agent|collector|operator NAME [--pki DIR] [--out DIR] [--collector-san NAME]...
//
// Exit codes (scripts depend on them): 0 ok; 1 the agent or collector answered with an error
// (printed with its code), the agent reported that a collector command failed, or `policy check`
// found errors in the policy; 2 usage or validation error, found before anything is sent; 3 the
// agent or collector cannot be reached.
// Everything that can be checked here is checked here, with the same rules the agent applies
// (control::validate_contain_request), so a typo never reaches the agent and the message names
// the option the operator typed.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "collector_client.h"
#include "config/duration.h"
#include "containment/action.h"
#include "control/control_client.h"
#include "control/control_protocol.h"
#include "common/ulid.h"
#include "pki/fleet_pki.h"
#include "policy/policy.h"

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

  // Collector.
  std::string collector;
  std::string pki_dir = "/etc/nhiguard/pki";
  bool insecure = false;
  std::string wait = "10s";
  std::string mode;
  std::string agent_id;
  bool all_agents = false;

  // certs init.
  std::string certs_dir;
  std::vector<std::string> cert_agents;
  std::vector<std::string> collector_sans;
  std::string operator_name = "operator";
  std::string hostname;
  bool ca_only = false;
  std::string issue_role;
  std::string issue_name;
  std::string issue_out;
  std::vector<std::string> policy_files;
  std::string learn_for;
  std::string output;
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

// Columns padded to their widest cell; the last column is not padded.
void print_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
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

void print_actions_table(const json& actions) {
  if (actions.empty()) {
    fmt::print("no actions\n");
    return;
  }
  // Actions listed by a collector come from several agents: name each one's agent.
  const bool with_agent = actions.front().contains("agent_id");
  std::vector<std::string> header = {"HANDLE", "ACTION", "STATE", "TARGET", "EXPIRES", "REASON"};
  if (with_agent) header.insert(header.begin() + 1, "AGENT");
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : actions) {
    rows.push_back({string_field(a, "handle"), cli_action_name(string_field(a, "action")), string_field(a, "state"),
                    clip(target_text(a), 60), string_field(a, "expires_at"), clip(string_field(a, "reason"), 60)});
    if (with_agent) rows.back().insert(rows.back().begin() + 1, string_field(a, "agent_id"));
  }
  print_table(header, rows);
}

// One line saying what happened to one action.
std::string describe_action(const json& a) {
  std::string line = fmt::format("{} {} {} on {}", string_field(a, "handle"),
                                 cli_action_name(string_field(a, "action")), string_field(a, "state"), target_text(a));
  if (a.contains("expires_at") && a["expires_at"].is_string())
    line += ", expires " + a["expires_at"].get<std::string>();
  if (a.value("dry_run", false)) line += " (dry run: nothing was enforced)";
  if (a.contains("last_error") && a["last_error"].is_string() && !a["last_error"].get<std::string>().empty()) {
    line += " — " + a["last_error"].get<std::string>();
  }
  return line;
}

// The reporter's state in one line a person reads first: where reports go, whether they get there,
// and what waits in the outbox. --json has every field.
std::string collector_summary(const json& c) {
  const json outbox = c.value("outbox", json::object());
  const auto pending = outbox.value("pending_reports", uint64_t{0});
  const auto dropped = outbox.value("dropped_total", uint64_t{0});
  std::string line =
      c.value("state", "?") == "disabled"
          ? "none configured"
          : fmt::format("{} {} ({})", c.value("state", "?"), c.value("address", "?"), c.value("transport", "?"));
  line += fmt::format("; outbox {} pending", pending);
  if (dropped > 0) line += fmt::format(", {} dropped when full", dropped);
  if (const std::string error = c.value("last_error", ""); !error.empty() && c.value("state", "") != "connected") {
    line += fmt::format("; last error: {}", error);
  }
  return line;
}

void print_status(const json& status) {
  if (!status.is_object()) {
    fmt::print("{}\n", status.dump(2, ' ', false, json::error_handler_t::replace));
    return;
  }
  for (const auto& [key, value] : status.items()) {
    if (key == "collector" && value.is_object()) {
      fmt::print("collector: {}\n", collector_summary(value));
      continue;
    }
    fmt::print(
        "{}: {}\n", key,
        value.is_string() ? value.get<std::string>() : value.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

void print_json(const json& value) {
  fmt::print("{}\n", value.dump(2, ' ', false, json::error_handler_t::replace));
}

// Builds the contain request from the options and validates it as the agent would.
std::expected<control::ContainRequest, std::string> build_contain(const Options& o, bool ttl_given, bool pid_given) {
  auto kind = nhiguard::containment::parse_action_kind(o.action);
  if (!kind) {
    return std::unexpected(
        fmt::format("unknown action '{}' (expected block-egress, deny-credential, freeze, "
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
    case control::Method::learn:
    case control::Method::set_mode:
      o.json_output ? print_json(result) : print_status(result);
      break;
    case control::Method::audit: {
      json list = result.contains("audit") && result["audit"].is_array() ? result["audit"] : json::array();
      if (o.json_output) {
        print_json(list);
        break;
      }
      for (const auto& e : list) {
        const auto& p = e["peer"];
        fmt::print("{}  {:<8} {:<8} {} {} pid {} uid {} exe {} cgroup {}{}\n", e.value("time", ""),
                   e.value("method", ""), e.value("outcome", ""), e.value("handle", ""), e.value("detail", ""),
                   p.value("pid", 0), p.value("uid", 0u), p.value("exe", ""), p.value("cgroup", ""),
                   e.value("message", "").empty() ? "" : ": " + e.value("message", ""));
      }
      break;
    }
    case control::Method::suggest: {
      const std::string policy = result.contains("policy") && result["policy"].is_string()
                                     ? result["policy"].get<std::string>()
                                     : std::string();
      if (o.output.empty() || o.output == "-") {
        fmt::print("{}", policy);
        break;
      }
      FILE* out = std::fopen(o.output.c_str(), "wx");  // never overwrite a policy file by accident
      if (!out) {
        fmt::print(stderr, "nhiguardctl: cannot create {}: {}\n", o.output, std::strerror(errno));
        return kExitServerError;
      }
      const bool written = std::fwrite(policy.data(), 1, policy.size(), out) == policy.size();
      if (std::fclose(out) != 0 || !written) {
        fmt::print(stderr, "nhiguardctl: cannot write {}\n", o.output);
        return kExitServerError;
      }
      fmt::print(stderr, "wrote {} (check it with: nhiguardctl policy check {})\n", o.output, o.output);
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

// The collector's answer to one command, or the exit code for its failure.
int collector_failure(const nhiguard::Error& error) {
  fmt::print(stderr, "nhiguardctl: {}\n", error.message);
  return error.code == ECONNREFUSED ? kExitUnreachable : kExitServerError;
}

void print_agents(const json& result) {
  fmt::print("fleet mode: {}\n", result["fleet_mode"].get<std::string>() == "observe"
                                     ? "observe (kill switch ON: no automated containment on any agent)"
                                     : "per agent");
  std::vector<std::vector<std::string>> rows;
  for (const auto& a : result["agents"]) {
    rows.push_back({a["agent_id"].get<std::string>(), a["connected"].get<bool>() ? "yes" : "no",
                    string_field(a, "mode"), string_field(a, "required_mode"), string_field(a, "last_seen"),
                    std::to_string(a["acked_through"].get<uint64_t>()),
                    std::to_string(a["reports_stored"].get<uint64_t>()),
                    std::to_string(a["reports_lost"].get<uint64_t>()),
                    std::to_string(a["pending_commands"].get<uint64_t>()), string_field(a, "version")});
  }
  if (rows.empty()) {
    fmt::print("no agents\n");
    return;
  }
  print_table({"AGENT", "CONNECTED", "MODE", "REQUIRED", "LAST SEEN", "ACKED", "STORED", "LOST", "PENDING", "VERSION"},
              rows);
}

void print_incidents(const json& incidents) {
  if (incidents.empty()) {
    fmt::print("no incidents\n");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : incidents) {
    rows.push_back({string_field(d, "time"), string_field(d, "agent_id"), string_field(d, "rule"),
                    string_field(d, "outcome") + (d.value("dry_run", false) ? " (dry run)" : ""),
                    string_field(d, "handle"), clip(string_field(d, "identity"), 60),
                    clip(string_field(d, "reason"), 60)});
  }
  print_table({"TIME", "AGENT", "RULE", "OUTCOME", "HANDLE", "IDENTITY", "REASON"}, rows);
}

// "command 01J... (rollback rb_...) for agent web-1: done, ok: rolled back"
std::string describe_command(const json& c) {
  std::string line =
      fmt::format("command {} ({} {}) for agent {}: {}", string_field(c, "command_id"), string_field(c, "kind"),
                  c.contains("handle") ? string_field(c, "handle") : string_field(c, "mode"),
                  string_field(c, "agent_id"), string_field(c, "state"));
  if (c.contains("result")) {
    line += fmt::format(", {}", string_field(c["result"], "status"));
    const std::string message = string_field(c["result"], "message", "");
    if (!message.empty()) line += ": " + message;
  } else if (string_field(c, "state") != "done") {
    line += c["state"] == "pending" ? " (the agent is not connected; delivered when it reconnects)"
                                    : " (sent; the agent has not answered yet)";
  }
  return line;
}

// A command whose result the agent reported as anything but ok is a failure for scripts.
bool command_failed(const json& c) {
  return c.contains("result") && string_field(c["result"], "status") != "ok";
}

int run_collector(const Options& o, const std::function<nhiguard::Result<json>(nhiguard::ctl::CollectorClient&)>& call,
                  const std::function<int(const json&)>& print) {
  auto timeout = nhiguard::config::parse_duration(o.timeout);
  if (!timeout || timeout->count() <= 0) {
    return usage_error(fmt::format("invalid --timeout '{}': {}", o.timeout,
                                   timeout ? "must be greater than 0" : duration_problem(timeout.error())));
  }
  auto client = nhiguard::ctl::CollectorClient::connect({o.collector, o.pki_dir, o.insecure, *timeout});
  if (!client) {
    fmt::print(stderr, "nhiguardctl: {}\n", client.error().message);
    return kExitUsage;
  }
  auto result = call(*client);
  if (!result) return collector_failure(result.error());
  return print(*result);
}

int print_certs_report(const Options& o, const nhiguard::Result<nhiguard::pki::InitReport>& report) {
  if (!report) {
    fmt::print(stderr, "nhiguardctl: {}\n", report.error().message);
    return report.error().code == EINVAL ? kExitUsage : kExitServerError;
  }
  if (o.json_output) {
    print_json({{"created", report->created}, {"kept", report->kept}, {"moved", report->moved}});
    return kExitOk;
  }
  for (const auto& move : report->moved) fmt::print("moved   {}\n", move);
  for (const auto& path : report->created) fmt::print("created {}\n", path);
  for (const auto& path : report->kept) fmt::print("kept    {}\n", path);
  return kExitOk;
}

int run_certs_init(const Options& o) {
  nhiguard::pki::InitOptions init;
  init.dir = o.certs_dir;
  init.agents = o.cert_agents;
  init.collector_sans = o.collector_sans;
  init.operator_name = o.operator_name;
  init.hostname = o.hostname;
  if (init.hostname.empty()) {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return usage_error("cannot read this host's name: pass --hostname");
    init.hostname = name;
  }
  init.ca_only = o.ca_only;
  return print_certs_report(o, nhiguard::pki::init_pki(init));
}

int run_certs_issue(const Options& o) {
  auto role = nhiguard::pki::parse_role(o.issue_role);
  if (!role)
    return usage_error(fmt::format("certs issue: unknown role '{}' (agent, collector, operator)", o.issue_role));
  return print_certs_report(o, nhiguard::pki::issue_certificate({.pki_dir = o.pki_dir,
                                                                 .role = *role,
                                                                 .name = o.issue_name,
                                                                 .out_dir = o.issue_out,
                                                                 .collector_sans = o.collector_sans}));
}

}  // namespace

// `policy check`: parse and validate, locally; every error on its own line.
int check_policy(const Options& o) {
  auto parsed = nhiguard::policy::load_policy_files(o.policy_files);
  if (!parsed.ok()) {
    for (const auto& error : parsed.errors) fmt::print(stderr, "{}\n", error.to_string());
    fmt::print(stderr, "{} error(s) in {} file(s)\n", parsed.errors.size(), o.policy_files.size());
    return kExitServerError;
  }
  const auto& p = parsed.policy;
  fmt::print("ok: {} file(s), {} rule(s), {} credential entr{}, {} canar{}, {} identit{}, {} protected\n",
             o.policy_files.size(), p.rules.size(), p.credentials.size(), p.credentials.size() == 1 ? "y" : "ies",
             p.canaries.size(), p.canaries.size() == 1 ? "y" : "ies", p.identities.size(),
             p.identities.size() == 1 ? "y" : "ies", p.protected_identities.size());
  return kExitOk;
}

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

  app.add_option("--collector", o.collector, "Talk to this collector (host:port) instead of the local agent");
  app.add_option("--pki", o.pki_dir,
                 "With --collector: the PKI directory (its operator/ subdirectory, or a directory with ca.pem, "
                 "operator.pem, operator-key.pem); with certs issue: the CA's PKI directory")
      ->capture_default_str();
  app.add_flag("--insecure", o.insecure, "With --collector: plaintext, no certificates (labs and tests only)");

  auto* status = app.add_subcommand("status", "Show the agent's status");
  auto* audit = app.add_subcommand("audit",
                                   "The local agent's audit trail: every contain, rollback, approve, "
                                   "reject, mode and learn request on its socket, with the process that "
                                   "sent it and the outcome (refused ones too)");

  auto* actions = app.add_subcommand("actions", "List containment actions and their rollback handles");
  actions->add_option("--state", o.state, "Only actions in this state (held, active, expired, rolled_back, ...)");
  actions->add_option("--limit", o.limit, "At most this many, newest first")->capture_default_str();

  auto* contain = app.add_subcommand("contain", "Apply one narrow containment action");
  contain->add_option("action", o.action, "block-egress, deny-credential, freeze, kill-process or kill-session")
      ->required();
  contain->add_option("--unit", o.unit,
                      "Target system unit: its cgroup below system.slice (or another slice of the system manager); any "
                      "other cgroup by --cgroup (block-egress, freeze; identity for deny-credential)");
  contain->add_option("--cgroup", o.cgroup, "Target cgroup path (block-egress, freeze; identity for deny-credential)");
  auto* pid_option = contain->add_option("--pid", o.pid, "Target process (kill-*; identity for deny-credential)");
  contain->add_option("--credential", o.credential, "Credential file to deny (deny-credential)");
  contain
      ->add_option("--to", o.destinations,
                   "Blocked destination CIDR[:PORT] (block-egress; repeatable; "
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
  for (auto* command : {rollback, approve, reject}) {
    command->add_option("--wait", o.wait, "With --collector: how long to wait for the agent's result")
        ->capture_default_str();
    command->add_option("--reason", o.reason, "With --collector: why (recorded in the agent's ledger)");
    command->add_option("--agent", o.agent_id,
                        "With --collector: the agent that reported the action (needed when more than one did)");
  }

  auto* agents = app.add_subcommand("agents", "With --collector: the agents and their reporting state");
  auto* incidents = app.add_subcommand("incidents", "With --collector: policy decisions reported by the agents");
  incidents->add_option("--limit", o.limit, "At most this many, newest first")->capture_default_str();
  incidents->add_option("--agent", o.agent_id, "Only this agent's");
  actions->add_option("--agent", o.agent_id, "With --collector: only this agent's");
  auto* mode = app.add_subcommand("mode",
                                  "Set observe or policy mode on the local agent (observe: holds and "
                                  "containments become recorded dry runs), or with --collector on one agent "
                                  "or the fleet");
  mode->add_option("mode", o.mode, "observe (no automated containment) or policy")
      ->required()
      ->check(CLI::IsMember({"observe", "policy"}));
  auto* mode_agent = mode->add_option("--agent", o.agent_id, "One agent, by id");
  auto* mode_all = mode->add_flag("--all", o.all_agents, "Every agent, and every agent that connects later");
  mode_agent->excludes(mode_all);

  auto* certs = app.add_subcommand("certs", "Certificates for mTLS between agents, collector and operators");
  certs->require_subcommand(1);
  auto* certs_init = certs->add_subcommand("init",
                                           "Create (or complete) the CA, collector, agent and operator "
                                           "certificates in DIR");
  certs_init->add_option("dir", o.certs_dir, "Directory (created 0700)")->required();
  certs_init->add_option("--agent", o.cert_agents,
                         "Also an agent certificate for NAME under DIR/agents/NAME "
                         "(repeatable)");
  certs_init->add_option("--collector-san", o.collector_sans, "Another DNS name or IP of the collector (repeatable)");
  certs_init->add_option("--operator", o.operator_name, "The operator certificate's name")->capture_default_str();
  certs_init->add_option("--hostname", o.hostname, "This host's name (default: gethostname)");
  certs_init->add_flag("--ca-only", o.ca_only,
                       "Only the CA (DIR/ca/, DIR/ca.pem): an offline CA host, which then "
                       "issues each host's certificate with `certs issue`");
  auto* certs_issue = certs->add_subcommand("issue",
                                            "On the CA host: one certificate signed by the CA of --pki DIR, "
                                            "with ca.pem, in a directory to copy to its host");
  certs_issue->add_option("role", o.issue_role, "agent, collector or operator")
      ->required()
      ->check(CLI::IsMember({"agent", "collector", "operator"}));
  certs_issue->add_option("name", o.issue_name, "The certificate's name (agent id, collector host name, operator)")
      ->required();
  certs_issue->add_option("--out", o.issue_out, "Write here (default: DIR/agents|collectors|operators/NAME)");
  certs_issue->add_option("--collector-san", o.collector_sans, "Collector: another DNS name or IP (repeatable)");

  auto* policy = app.add_subcommand("policy", "Check policy files, learn, suggest a policy");
  policy->require_subcommand(1);
  auto* policy_check = policy->add_subcommand("check",
                                              "Validate policy files (no agent needed); every error with "
                                              "file, line and field");
  policy_check->add_option("files", o.policy_files, "Policy files (YAML)")->required();
  auto* policy_learn = policy->add_subcommand("learn", "Record who reads which credential and egresses where");
  policy_learn->add_option("--for", o.learn_for, "How long to learn (e.g. 1h, 7d; 0s stops)")->required();
  auto* policy_suggest = policy->add_subcommand("suggest", "Write a policy allowing exactly what was learned");
  policy_suggest->add_option("--output", o.output, "Write to this new file instead of stdout");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, version or the error
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (certs_init->parsed()) return run_certs_init(o);
  if (certs_issue->parsed()) return run_certs_issue(o);

  const bool needs_collector =
      agents->parsed() || incidents->parsed() || (mode->parsed() && (mode_agent->count() > 0 || mode_all->count() > 0));
  if (needs_collector && o.collector.empty()) {
    return usage_error("agents, incidents and mode --agent/--all need --collector ADDR");
  }
  if (!o.collector.empty()) {
    if (status->parsed() || contain->parsed() || policy->parsed() || audit->parsed())
      return usage_error("status, contain, audit and policy act on the local agent: drop --collector");
  } else if (!o.agent_id.empty() &&
             (actions->parsed() || rollback->parsed() || approve->parsed() || reject->parsed())) {
    return usage_error("--agent needs --collector ADDR (the local agent has only its own actions)");
  }
  if (!o.collector.empty()) {
    if (agents->parsed()) {
      return run_collector(
          o, [](auto& c) { return c.agents(); },
          [&](const json& r) {
            o.json_output ? print_json(r) : print_agents(r);
            return kExitOk;
          });
    }
    if (incidents->parsed()) {
      const auto limit = static_cast<uint32_t>(std::min<size_t>(o.limit, 100000));
      return run_collector(
          o, [&](auto& c) { return c.incidents(limit, o.agent_id); },
          [&](const json& r) {
            o.json_output ? print_json(r) : print_incidents(r);
            return kExitOk;
          });
    }
    if (actions->parsed()) {
      std::optional<nhiguard::v1::ActionState> state;
      if (!o.state.empty()) {
        auto parsed = nhiguard::containment::parse_action_state(o.state);
        if (!parsed) return usage_error(fmt::format("invalid --state '{}'", o.state));
        state = static_cast<nhiguard::v1::ActionState>(*parsed);
      }
      const auto limit = static_cast<uint32_t>(std::min<size_t>(o.limit, 100000));
      return run_collector(
          o, [&](auto& c) { return c.actions(state, limit, o.agent_id); },
          [&](const json& r) {
            o.json_output ? print_json(r) : print_actions_table(r);
            return kExitOk;
          });
    }
    if (mode->parsed()) {
      if (o.agent_id.empty() && !o.all_agents) return usage_error("mode: name --agent ID or --all");
      const auto wire = o.mode == "observe" ? nhiguard::v1::MODE_OBSERVE : nhiguard::v1::MODE_POLICY;
      return run_collector(
          o, [&](auto& c) { return c.set_mode(wire, o.agent_id); },
          [&](const json& r) {
            if (o.json_output) {
              print_json(r);
            } else {
              fmt::print("fleet mode: {}\n",
                         r["fleet_mode"].get<std::string>() == "observe" ? "observe (kill switch ON)" : "per agent");
              for (const auto& c : r["commands"]) fmt::print("{}\n", describe_command(c));
              if (r["commands"].empty() && r["errors"].empty())
                fmt::print("no agent known yet; agents that connect later get this mode\n");
              for (const auto& e : r["errors"]) fmt::print(stderr, "not commanded: {}\n", e.get<std::string>());
            }
            // The fleet mode is stored either way; an agent left out is a failure for scripts.
            return r["errors"].empty() ? kExitOk : kExitServerError;
          });
    }
    for (auto [command, verb] :
         {std::pair{rollback, "rollback"}, std::pair{approve, "approve"}, std::pair{reject, "reject"}}) {
      if (!command->parsed()) continue;
      if (!nhiguard::is_handle_id(o.handle))
        return usage_error(
            fmt::format("invalid handle '{}': expected rb_ followed by 26 upper-case Crockford "
                        "base32 characters",
                        o.handle));
      auto wait = nhiguard::config::parse_duration(o.wait);
      if (!wait || wait->count() < 0 || *wait > std::chrono::seconds(30))
        return usage_error(fmt::format("invalid --wait '{}': a duration from 0s to 30s", o.wait));
      const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*wait);
      return run_collector(
          o, [&](auto& c) { return c.action_command(verb, o.handle, o.agent_id, o.reason, wait_ms); },
          [&](const json& r) {
            if (o.json_output) {
              print_json(r);
            } else {
              if (r.contains("action")) fmt::print("{}\n", describe_action(r["action"]));
              fmt::print("{}\n", describe_command(r["command"]));
            }
            return command_failed(r["command"]) ? kExitServerError : kExitOk;
          });
    }
    return usage_error("no command given (try --help)");
  }

  if (status->parsed()) return run(o, control::Method::status, nullptr);
  if (audit->parsed()) return run(o, control::Method::audit, nullptr);
  if (policy_check->parsed()) return check_policy(o);
  if (policy_suggest->parsed()) return run(o, control::Method::suggest, nullptr);
  if (policy_learn->parsed()) {
    auto duration = nhiguard::config::parse_duration(o.learn_for);
    if (!duration)
      return usage_error(fmt::format("invalid --for '{}': {}", o.learn_for, duration_problem(duration.error())));
    if (*duration > control::kMaxLearningPeriod) return usage_error("invalid --for: at most 30d");
    return run(o, control::Method::learn, control::to_params(control::LearnRequest{*duration}));
  }
  if (mode->parsed()) return run(o, control::Method::set_mode, control::to_params(control::ModeRequest{o.mode}));

  if (actions->parsed()) {
    control::ActionsRequest request;
    if (!o.state.empty()) {
      auto state = nhiguard::containment::parse_action_state(o.state);
      if (!state) {
        return usage_error(
            fmt::format("invalid --state '{}' (expected held, active, expired, rolled_back, failed, "
                        "irreversible, rejected, dry_run or lapsed_by_reboot)",
                        o.state));
      }
      request.state = *state;
    }
    if (o.limit < 1 || o.limit > control::kMaxActionsLimit) {
      return usage_error(
          fmt::format("invalid --limit {}: must be between 1 and {}", o.limit, control::kMaxActionsLimit));
    }
    request.limit = o.limit;
    return run(o, control::Method::actions, control::to_params(request));
  }

  if (contain->parsed()) {
    auto request = build_contain(o, ttl_option->count() > 0, pid_option->count() > 0);
    if (!request) return usage_error(request.error());
    return run(o, control::Method::contain, control::to_params(*request));
  }

  for (auto [command, method] :
       {std::pair{rollback, control::Method::rollback}, std::pair{approve, control::Method::approve},
        std::pair{reject, control::Method::reject}}) {
    if (!command->parsed()) continue;
    if (!nhiguard::is_handle_id(o.handle)) {
      return usage_error(
          fmt::format("invalid handle '{}': expected rb_ followed by 26 upper-case Crockford base32 "
                      "characters",
                      o.handle));
    }
    return run(o, method, control::to_params(control::HandleRequest{o.handle}));
  }
  return usage_error("no command given (try --help)");
}
