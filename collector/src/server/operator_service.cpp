#include "server/operator_service.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/ulid.h"
#include "server/grpc_status.h"
#include "server/peer_identity.h"

namespace nhiguard::collector {
namespace {

constexpr uint32_t kDefaultLimit = 1000;
constexpr uint32_t kMaxWaitMs = 30000;

int64_t now_ns() {
  return static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
}

// Authenticates the operator or answers the refusal (logged).
Result<PeerIdentity> operator_identity(grpc::ServerContext* context, bool insecure, std::string_view call) {
  auto identity = authenticate_peer(*context, pki::Role::operator_, insecure);
  if (!identity) spdlog::warn("operator call {} refused: {}", call, identity.error().message);
  return identity;
}

// A call that passed authentication but failed: logged with who asked, answered with its status.
grpc::Status failed(std::string_view call, const PeerIdentity& who, const Error& error) {
  spdlog::warn("operator call {} by {} failed: {}", call, who.common_name.empty() ? who.peer : who.common_name,
               error.message);
  return to_status(error);
}

std::string_view state_name(v1::ActionState state) {
  switch (state) {
    case v1::ACTION_STATE_HELD:
      return "held";
    case v1::ACTION_STATE_ACTIVE:
      return "active";
    case v1::ACTION_STATE_EXPIRED:
      return "expired";
    case v1::ACTION_STATE_ROLLED_BACK:
      return "rolled_back";
    case v1::ACTION_STATE_FAILED:
      return "failed";
    case v1::ACTION_STATE_IRREVERSIBLE:
      return "irreversible";
    case v1::ACTION_STATE_REJECTED:
      return "rejected";
    case v1::ACTION_STATE_DRY_RUN:
      return "dry_run";
    case v1::ACTION_STATE_LAPSED_BY_REBOOT:
      return "lapsed_by_reboot";
    default:
      return "unknown";
  }
}

}  // namespace

Result<v1::CommandStatus> OperatorServiceImpl::issue(const std::string& agent_id, v1::Command command) {
  command.set_command_id(new_ulid());
  command.set_issued_at_unix_ns(now_ns());
  auto status = commands_.add_command({agent_id, command});
  if (!status) return fail(std::move(status.error()));
  const bool delivered = streams_.deliver(agent_id, command);
  // Handed to the agent's live stream: its writer sends it next (the store says so once written).
  if (delivered) status->set_state(v1::COMMAND_STATE_SENT);
  spdlog::info("command {} ({} {}) for agent {} by {}: {}", command.command_id(), status->kind(),
               status->handle().empty() ? v1::Mode_Name(status->mode()) : status->handle(), agent_id,
               command.issued_by(), delivered ? "sent" : "queued until the agent connects");
  return status;
}

Result<v1::CommandStatus> OperatorServiceImpl::wait_for(const std::string& command_id, uint32_t wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(std::min(wait_ms, kMaxWaitMs));
  for (;;) {
    const uint64_t seen = waiters_.generation();
    auto status = commands_.get_command(command_id);
    if (!status) return status;
    if (status->state() == v1::COMMAND_STATE_DONE || std::chrono::steady_clock::now() >= deadline) return status;
    waiters_.wait(seen, deadline);
  }
}

grpc::Status OperatorServiceImpl::ListAgents(grpc::ServerContext* context, const v1::ListAgentsRequest*,
                                             v1::ListAgentsResponse* response) {
  auto who = operator_identity(context, insecure_, "ListAgents");
  if (!who) return to_status(who.error());
  auto agents = queries_.list_agents();
  if (!agents) return failed("ListAgents", *who, agents.error());
  auto fleet = commands_.fleet_mode();
  if (!fleet) return failed("ListAgents", *who, fleet.error());
  for (auto& agent : *agents) *response->add_agents() = std::move(agent);
  response->set_fleet_mode(*fleet);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::ListIncidents(grpc::ServerContext* context, const v1::ListIncidentsRequest* request,
                                                v1::ListIncidentsResponse* response) {
  auto who = operator_identity(context, insecure_, "ListIncidents");
  if (!who) return to_status(who.error());
  auto incidents = queries_.list_decisions(request->agent_id(), request->limit() ? request->limit() : kDefaultLimit);
  if (!incidents) return failed("ListIncidents", *who, incidents.error());
  for (auto& incident : *incidents) *response->add_incidents() = std::move(incident);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::ListActions(grpc::ServerContext* context, const v1::ListActionsRequest* request,
                                              v1::ListActionsResponse* response) {
  auto who = operator_identity(context, insecure_, "ListActions");
  if (!who) return to_status(who.error());
  ActionQuery query;
  query.agent_id = request->agent_id();
  for (int state : request->states()) query.states.push_back(static_cast<v1::ActionState>(state));
  query.limit = request->limit() ? request->limit() : kDefaultLimit;
  query.with_history = request->with_history();
  auto actions = queries_.list_actions(query);
  if (!actions) return failed("ListActions", *who, actions.error());
  for (auto& action : *actions) *response->add_actions() = std::move(action);
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::action_command(grpc::ServerContext* context, ActionVerb verb,
                                                 const v1::ActionCommandRequest& request, v1::CommandStatus* response) {
  static constexpr std::string_view kNames[] = {"approve", "reject", "rollback"};
  const std::string_view name = kNames[static_cast<int>(verb)];
  auto who = operator_identity(context, insecure_, std::string(name));
  if (!who) return to_status(who.error());
  if (!is_handle_id(request.handle()))
    return failed(name, *who,
                  Error{EINVAL, fmt::format("'{}' is not a rollback handle (rb_ followed by a 26-character ULID)",
                                            request.handle())});
  if (!request.agent_id().empty() && !pki::is_valid_identity_name(request.agent_id()))
    return failed(name, *who, Error{EINVAL, "agent_id is not 1-64 of [A-Za-z0-9._-]"});
  auto action = queries_.find_action(request.agent_id(), request.handle());
  if (!action) return failed(name, *who, action.error());
  const auto state = action->action().state();
  std::string refusal;
  if ((verb == ActionVerb::approve || verb == ActionVerb::reject) && state != v1::ACTION_STATE_HELD)
    refusal = fmt::format("{} is {}, only a held action can be {}d", request.handle(), state_name(state),
                          name == "approve" ? "approve" : "reject");
  if (verb == ActionVerb::rollback && state == v1::ACTION_STATE_HELD)
    refusal = fmt::format("{} is held: nothing to roll back (reject it instead)", request.handle());
  if (verb == ActionVerb::rollback && state == v1::ACTION_STATE_IRREVERSIBLE)
    refusal = fmt::format("{} is irreversible ({}): it cannot be rolled back", request.handle(),
                          v1::ActionKind_Name(action->action().action()));
  if (!refusal.empty()) return failed(name, *who, Error{ENOTSUP, refusal});
  v1::Command command;
  command.set_issued_by(who->common_name.empty() ? "insecure-loopback" : who->common_name);
  v1::ActionCommand* body = verb == ActionVerb::approve  ? command.mutable_approve()
                            : verb == ActionVerb::reject ? command.mutable_reject()
                                                         : command.mutable_rollback();
  body->set_handle(request.handle());
  body->set_reason(request.reason());
  auto status = issue(action->agent_id(), std::move(command));
  if (!status) return failed(name, *who, status.error());
  if (request.wait_ms() > 0) {
    auto waited = wait_for(status->command_id(), request.wait_ms());
    if (!waited) return failed(name, *who, waited.error());
    *response = std::move(*waited);
  } else {
    *response = std::move(*status);
  }
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::Approve(grpc::ServerContext* context, const v1::ActionCommandRequest* request,
                                          v1::CommandStatus* response) {
  return action_command(context, ActionVerb::approve, *request, response);
}
grpc::Status OperatorServiceImpl::Reject(grpc::ServerContext* context, const v1::ActionCommandRequest* request,
                                         v1::CommandStatus* response) {
  return action_command(context, ActionVerb::reject, *request, response);
}
grpc::Status OperatorServiceImpl::Rollback(grpc::ServerContext* context, const v1::ActionCommandRequest* request,
                                           v1::CommandStatus* response) {
  return action_command(context, ActionVerb::rollback, *request, response);
}

grpc::Status OperatorServiceImpl::SetMode(grpc::ServerContext* context, const v1::SetModeRequest* request,
                                          v1::SetModeResponse* response) {
  auto who = operator_identity(context, insecure_, "SetMode");
  if (!who) return to_status(who.error());
  const v1::Mode mode = request->mode();
  if (mode != v1::MODE_OBSERVE && mode != v1::MODE_POLICY)
    return failed("SetMode", *who, Error{EINVAL, "mode must be observe or policy"});
  std::vector<std::string> targets;
  v1::Mode fleet = v1::MODE_UNSPECIFIED;
  const bool fleet_wide = request->target_case() == v1::SetModeRequest::kAll && request->all();
  if (fleet_wide) {
    // The kill switch is stored before anything that depends on an agent's data, so no agent can
    // keep it from being set; an agent connecting meanwhile already gets it in its Welcome.
    fleet = mode == v1::MODE_OBSERVE ? v1::MODE_OBSERVE : v1::MODE_UNSPECIFIED;
    if (auto ok = commands_.set_fleet_mode(fleet); !ok) return failed("SetMode", *who, ok.error());
    spdlog::warn("fleet mode set to {} by {}: {}", mode == v1::MODE_OBSERVE ? "observe" : "policy", who->common_name,
                 mode == v1::MODE_OBSERVE ? "kill switch ON, no automated containment anywhere" : "kill switch off");
    auto agents = queries_.agent_ids();
    if (agents) {
      targets = std::move(*agents);
    } else {
      // Still reach every connected agent now; the others get the mode in their Welcome.
      targets = streams_.agent_ids();
      const std::string line = fmt::format(
          "known agents not listed ({}): the command went to the {} connected "
          "agent(s) only, the others get the mode when they connect",
          agents.error().message, targets.size());
      spdlog::warn("SetMode by {}: {}", who->common_name, line);
      response->add_errors(line);
    }
  } else if (request->target_case() == v1::SetModeRequest::kAgentId && !request->agent_id().empty()) {
    auto current = commands_.fleet_mode();
    if (!current) return failed("SetMode", *who, current.error());
    fleet = *current;
    if (mode == v1::MODE_POLICY && fleet == v1::MODE_OBSERVE)
      return failed("SetMode", *who,
                    Error{ENOTSUP,
                          "the fleet kill switch is on (observe for every agent): turn it off with `mode "
                          "policy --all` first"});
    if (auto ok = commands_.set_required_mode(request->agent_id(), mode); !ok)
      return failed("SetMode", *who, ok.error());
    targets.push_back(request->agent_id());
  } else {
    return failed("SetMode", *who, Error{EINVAL, "name one agent (--agent ID) or the whole fleet (--all)"});
  }
  response->set_fleet_mode(fleet);
  for (const auto& agent_id : targets) {
    // One agent's failure (its row, its command) is reported and the others are still commanded.
    if (fleet_wide) {
      if (auto ok = commands_.set_required_mode(agent_id, mode); !ok) {
        spdlog::warn("SetMode by {}: agent {}: {}", who->common_name, agent_id, ok.error().message);
        response->add_errors(fmt::format("agent {}: {}", agent_id, ok.error().message));
      }
    }
    v1::Command command;
    command.set_issued_by(who->common_name.empty() ? "insecure-loopback" : who->common_name);
    command.mutable_set_mode()->set_mode(mode);
    command.mutable_set_mode()->set_fleet_wide(fleet_wide);
    auto status = issue(agent_id, std::move(command));
    if (!status) {
      if (!fleet_wide) return failed("SetMode", *who, status.error());
      spdlog::warn("SetMode by {}: agent {}: {}", who->common_name, agent_id, status.error().message);
      response->add_errors(fmt::format("agent {}: {}", agent_id, status.error().message));
      continue;
    }
    *response->add_commands() = std::move(*status);
  }
  if (fleet_wide)
    spdlog::warn("fleet mode {}: command queued for {} of {} known agent(s)",
                 mode == v1::MODE_OBSERVE ? "observe" : "policy", response->commands_size(), targets.size());
  return grpc::Status::OK;
}

grpc::Status OperatorServiceImpl::GetCommand(grpc::ServerContext* context, const v1::GetCommandRequest* request,
                                             v1::CommandStatus* response) {
  auto who = operator_identity(context, insecure_, "GetCommand");
  if (!who) return to_status(who.error());
  auto status = request->wait_ms() > 0 ? wait_for(request->command_id(), request->wait_ms())
                                       : commands_.get_command(request->command_id());
  if (!status) return failed("GetCommand", *who, status.error());
  *response = std::move(*status);
  return grpc::Status::OK;
}

}  // namespace nhiguard::collector
