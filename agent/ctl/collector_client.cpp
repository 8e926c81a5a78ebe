#include "collector_client.h"

#include <cerrno>

#include <fmt/format.h>

#include "common/clock.h"
#include "containment/action.h"
#include "pki/collector_channel.h"
#include "pki/fleet_pki.h"
#include "pki/peer_certificate.h"
#include "records/control_audit_record.h"
#include "records/rollback_handle_record.h"

namespace nhiguard::ctl {
namespace {

using nlohmann::json;

std::string mode_text(v1::Mode mode) {
  switch (mode) {
    case v1::MODE_OBSERVE:
      return "observe";
    case v1::MODE_POLICY:
      return "policy";
    default:
      return "";
  }
}

json time_or_null(int64_t ns) {
  return ns > 0 ? json(format_rfc3339_ns(static_cast<uint64_t>(ns))) : json(nullptr);
}

Error call_error(const grpc::Status& status, std::string_view call) {
  const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  static constexpr std::string_view kCodes[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  const auto code = static_cast<size_t>(status.error_code());
  const std::string_view name = code < std::size(kCodes) ? kCodes[code] : "UNKNOWN";
  return Error{unreachable ? ECONNREFUSED : EPROTO,
               fmt::format("collector {} failed ({}): {}", call, name, status.error_message())};
}

std::string result_status_text(v1::CommandResult::Status status) {
  switch (status) {
    case v1::CommandResult::STATUS_OK:
      return "ok";
    case v1::CommandResult::STATUS_FAILED:
      return "failed";
    case v1::CommandResult::STATUS_UNKNOWN_HANDLE:
      return "unknown_handle";
    case v1::CommandResult::STATUS_INVALID:
      return "invalid";
    default:
      return "unspecified";
  }
}

std::string command_state_text(v1::CommandState state) {
  switch (state) {
    case v1::COMMAND_STATE_PENDING:
      return "pending";
    case v1::COMMAND_STATE_SENT:
      return "sent";
    case v1::COMMAND_STATE_DONE:
      return "done";
    default:
      return "unknown";
  }
}

// One entry of an action's history as the agent's ledger wrote it; `peer` is the local process
// behind an nhiguardctl change.
json state_change_json(const v1::StateChange& c) {
  json out = {{"ledger_sequence", c.ledger_sequence()},
              {"from_state", c.has_from_state()
                                 ? json(containment::to_string(static_cast<containment::ActionState>(c.from_state())))
                                 : json(nullptr)},
              {"to_state", containment::to_string(static_cast<containment::ActionState>(c.to_state()))},
              {"at", time_or_null(c.at_unix_ns())},
              {"actor", c.actor()},
              {"note", c.note()},
              {"command_id", c.command_id()}};
  if (c.has_peer()) out["peer"] = records::peer_to_json(records::peer_from_wire(c.peer()));
  return out;
}

}  // namespace

json action_json(const v1::RollbackHandle& h, const std::string& agent_id) {
  const containment::RollbackHandle handle = records::handle_from_wire(h);
  json out = records::handle_to_json(handle);
  // A kind or state newer than this nhiguardctl: say so rather than print a wrong name.
  if (containment::to_string(handle.action) == "unknown") out["action"] = v1::ActionKind_Name(h.action());
  if (containment::to_string(handle.state) == "unknown") out["state"] = v1::ActionState_Name(h.state());
  if (!h.target().description().empty()) out["target"]["description"] = h.target().description();
  out["agent_id"] = agent_id;
  return out;
}

json command_json(const v1::CommandStatus& s) {
  json out = {{"command_id", s.command_id()},
              {"agent_id", s.agent_id()},
              {"kind", s.kind()},
              {"state", command_state_text(s.state())},
              {"issued_by", s.issued_by()},
              {"issued_at", time_or_null(s.issued_at_unix_ns())}};
  if (!s.handle().empty()) out["handle"] = s.handle();
  if (s.mode() != v1::MODE_UNSPECIFIED) out["mode"] = mode_text(s.mode());
  if (s.has_result()) {
    const auto& r = s.result();
    out["result"] = {{"status", result_status_text(r.status())},
                     {"message", r.message()},
                     {"completed_at", time_or_null(r.completed_at_unix_ns())}};
    if (r.mode() != v1::MODE_UNSPECIFIED) out["result"]["mode"] = mode_text(r.mode());
  }
  return out;
}

Result<CollectorClient> CollectorClient::connect(const CollectorEndpoint& endpoint) {
  pki::ChannelOptions options;
  if (!endpoint.insecure) {
    auto material = pki::load_tls_material(endpoint.pki_dir, "operator");
    if (!material) return fail(std::move(material.error()));
    options.tls = std::move(*material);
  }
  auto channel = pki::collector_channel(endpoint.address, options);
  return CollectorClient(std::shared_ptr<v1::OperatorService::Stub>(v1::OperatorService::NewStub(channel)), endpoint);
}

Result<void> CollectorClient::checked(const grpc::ClientContext& context, const grpc::Status& status,
                                      std::string_view call) const {
  if (!insecure_) {
    auto auth = context.auth_context();
    auto role = pki::require_peer_role(auth.get(), pki::Role::collector, address_);
    // No certificate at all: the call reached no server (its status says why) or none over TLS.
    if (!role && (role.error().code != ENOKEY || status.ok()))
      return fail(Error{ECONNREFUSED, fmt::format("collector {}: not the collector, its answer is ignored: {}", call,
                                                  role.error().message)});
  }
  if (!status.ok()) return fail(call_error(status, call));
  return {};
}

namespace {

void set_deadline(grpc::ClientContext& context, std::chrono::milliseconds timeout) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

Result<json> CollectorClient::agents() {
  grpc::ClientContext context;
  set_deadline(context, timeout_);
  v1::ListAgentsResponse response;
  auto status = stub_->ListAgents(&context, {}, &response);
  if (auto ok = checked(context, status, "agents"); !ok) return fail(std::move(ok.error()));
  json agents = json::array();
  for (const auto& a : response.agents()) {
    agents.push_back({{"agent_id", a.agent_id()},
                      {"hostname", a.hostname()},
                      {"version", a.agent_version()},
                      {"connected", a.connected()},
                      {"mode", mode_text(a.reported_mode())},
                      {"required_mode", mode_text(a.required_mode())},
                      {"first_seen", time_or_null(a.first_seen_unix_ns())},
                      {"last_seen", time_or_null(a.last_seen_unix_ns())},
                      {"outbox_id", a.outbox_id()},
                      {"acked_through", a.acked_through_sequence()},
                      {"reports_stored", a.reports_stored()},
                      {"reports_lost", a.reports_dropped()},
                      {"pending_commands", a.pending_commands()},
                      {"peer", a.peer()}});
  }
  return json{{"fleet_mode", response.fleet_mode() == v1::MODE_OBSERVE ? "observe" : "per-agent"},
              {"agents", std::move(agents)}};
}

Result<json> CollectorClient::incidents(uint32_t limit, const std::string& agent_id) {
  grpc::ClientContext context;
  set_deadline(context, timeout_);
  v1::ListIncidentsRequest request;
  request.set_limit(limit);
  request.set_agent_id(agent_id);
  v1::ListIncidentsResponse response;
  auto status = stub_->ListIncidents(&context, request, &response);
  if (auto ok = checked(context, status, "incidents"); !ok) return fail(std::move(ok.error()));
  json out = json::array();
  for (const auto& stored : response.incidents()) {
    const auto& d = stored.decision();
    json gates = json::array();
    for (const auto& g : d.gates())
      gates.push_back({{"gate", g.gate()}, {"tripped", g.tripped()}, {"detail", g.detail()}});
    out.push_back(
        {{"agent_id", stored.agent_id()},
         {"decision_id", d.decision_id()},
         {"time", time_or_null(d.time_unix_ns())},
         {"trigger", d.trigger()},
         {"rule", d.rule()},
         {"rule_mode", d.rule_mode()},
         {"confidence", d.confidence()},
         {"outcome", d.outcome()},
         {"reason", d.reason()},
         {"handle", d.handle()},
         {"dry_run", d.dry_run()},
         {"identity", d.workload().uri()},
         {"process",
          {{"pid", d.process().pid()},
           {"exe", d.process().exe()},
           {"cmdline", std::vector<std::string>(d.process().cmdline().begin(), d.process().cmdline().end())},
           {"cmdline_redacted", d.process().cmdline_redacted()}}},
         {"trigger_event_ids", std::vector<std::string>(d.trigger_event_ids().begin(), d.trigger_event_ids().end())},
         {"gates", std::move(gates)},
         {"received_at", time_or_null(stored.received_at_unix_ns())}});
  }
  return out;
}

Result<json> CollectorClient::actions(std::optional<v1::ActionState> state, uint32_t limit,
                                      const std::string& agent_id) {
  grpc::ClientContext context;
  set_deadline(context, timeout_);
  v1::ListActionsRequest request;
  request.set_agent_id(agent_id);
  if (state) request.add_states(*state);
  request.set_limit(limit);
  request.set_with_history(true);
  v1::ListActionsResponse response;
  auto status = stub_->ListActions(&context, request, &response);
  if (auto ok = checked(context, status, "actions"); !ok) return fail(std::move(ok.error()));
  json out = json::array();
  for (const auto& stored : response.actions()) {
    json action = action_json(stored.action(), stored.agent_id());
    json history = json::array();
    for (const auto& change : stored.history()) history.push_back(state_change_json(change));
    action["history"] = std::move(history);
    out.push_back(std::move(action));
  }
  return out;
}

Result<json> CollectorClient::action_command(const std::string& verb, const std::string& handle,
                                             const std::string& agent_id, const std::string& reason,
                                             std::chrono::milliseconds wait) {
  grpc::ClientContext context;
  set_deadline(context, timeout_ + wait);
  v1::ActionCommandRequest request;
  request.set_handle(handle);
  request.set_agent_id(agent_id);
  request.set_reason(reason);
  request.set_wait_ms(static_cast<uint32_t>(wait.count()));
  v1::CommandStatus response;
  grpc::Status status = verb == "approve"  ? stub_->Approve(&context, request, &response)
                        : verb == "reject" ? stub_->Reject(&context, request, &response)
                                           : stub_->Rollback(&context, request, &response);
  if (auto ok = checked(context, status, verb); !ok) return fail(std::move(ok.error()));
  json out = {{"command", command_json(response)}};
  if (response.has_result() && response.result().has_action())
    out["action"] = action_json(response.result().action(), response.agent_id());
  return out;
}

Result<json> CollectorClient::set_mode(v1::Mode mode, const std::string& agent_id) {
  grpc::ClientContext context;
  set_deadline(context, timeout_);
  v1::SetModeRequest request;
  request.set_mode(mode);
  if (agent_id.empty()) {
    request.set_all(true);
  } else {
    request.set_agent_id(agent_id);
  }
  v1::SetModeResponse response;
  auto status = stub_->SetMode(&context, request, &response);
  if (auto ok = checked(context, status, "mode"); !ok) return fail(std::move(ok.error()));
  json commands = json::array();
  for (const auto& c : response.commands()) commands.push_back(command_json(c));
  return json{{"fleet_mode", response.fleet_mode() == v1::MODE_OBSERVE ? "observe" : "per-agent"},
              {"commands", std::move(commands)},
              {"errors", std::vector<std::string>(response.errors().begin(), response.errors().end())}};
}

}  // namespace nhiguard::ctl
