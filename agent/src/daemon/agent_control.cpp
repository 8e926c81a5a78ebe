#include "daemon/agent_control.h"

#include "control/control_audit.h"

namespace nhiguard::daemon {
namespace {
constexpr std::string_view kActor = "nhiguardctl";
}  // namespace

Result<nlohmann::json> AgentControl::status() {
  return parts_.status();
}

Result<std::vector<containment::RollbackHandle>> AgentControl::actions(const control::ActionsRequest& request) {
  ledger::ListFilter filter{.limit = request.limit};
  if (request.state) filter.states = {*request.state};
  return parts_.executor.list(filter);
}

Result<containment::RollbackHandle> AgentControl::contain(const control::ContainRequest& request) {
  containment::ContainRequestSpec spec{
      .action = request.action,
      .target = {.unit = request.target.unit,
                 .cgroup = request.target.cgroup,
                 .pid = static_cast<pid_t>(request.target.pid.value_or(0))},
      .credential_path = request.target.credential,
      .destinations = request.target.destinations,
      .ttl = request.ttl.value_or(std::chrono::minutes(15)),
      .reason = request.reason,
  };
  return parts_.executor.contain(spec, kActor);
}

Result<containment::RollbackHandle> AgentControl::rollback(std::string_view handle) {
  return parts_.operations.rollback(handle, kActor, "rolled back");
}

Result<containment::RollbackHandle> AgentControl::approve(std::string_view handle) {
  return parts_.operations.approve(handle, kActor, "approved");
}

Result<containment::RollbackHandle> AgentControl::reject(std::string_view handle) {
  return parts_.operations.reject(handle, kActor, "rejected");
}

Result<nlohmann::json> AgentControl::learn(std::chrono::milliseconds duration) {
  return parts_.learning.learn(duration);
}

Result<nlohmann::json> AgentControl::suggest() {
  return parts_.learning.suggest(parts_.hostname);
}

Result<nlohmann::json> AgentControl::set_mode(std::string_view mode) {
  const auto previous = parts_.operations.mode();
  parts_.operations.set_mode(mode == "observe" ? config::AgentMode::observe : config::AgentMode::policy);
  return nlohmann::json{{"mode", config::to_string(parts_.operations.mode())},
                        {"previous", config::to_string(previous)}};
}

Result<nlohmann::json> AgentControl::audit_trail() {
  return control::AuditTrail(parts_.ledger).list();
}

Result<void> AgentControl::authorize(const control::Request& request, const ledger::ControlPeer& peer) {
  return control::AuditTrail(parts_.ledger).authorize(request, peer);
}

void AgentControl::audit(const control::Request& request, const ledger::ControlPeer& peer,
                         const nlohmann::json& response) {
  control::AuditTrail(parts_.ledger).record(request, peer, response);
  parts_.wake();
}

}  // namespace nhiguard::daemon
