// AgentControl: the control socket's view of the running agent (control/control_server.h). Its
// calls run on the server's thread and reach the agent only through the parts it is given: the
// executor and the ledger (both thread-safe), the learning state, the operations the collector's
// commands share (approve, reject, rollback, mode: each wakes the event loop so the outbox takes
// the ledger change at once) and the status renderer.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "containment/containment_executor.h"
#include "control/control_server.h"
#include "ledger/rollback_ledger.h"
#include "policy/learning.h"
#include "reporter/collector_commands.h"

namespace nhiguard::daemon {

struct AgentControlParts {
  containment::ContainmentExecutor& executor;
  ledger::RollbackLedger& ledger;
  policy::Learning& learning;
  reporter::AgentOperations operations;
  std::function<nlohmann::json()> status;
  std::function<void()> wake;  // after every request: its audit record goes to the outbox now
  std::string hostname;
};

class AgentControl : public control::ControlHandler {
 public:
  explicit AgentControl(AgentControlParts parts) : parts_(std::move(parts)) {}

  Result<nlohmann::json> status() override;
  Result<std::vector<containment::RollbackHandle>> actions(const control::ActionsRequest& request) override;
  Result<containment::RollbackHandle> contain(const control::ContainRequest& request) override;
  Result<containment::RollbackHandle> rollback(std::string_view handle) override;
  Result<containment::RollbackHandle> approve(std::string_view handle) override;
  Result<containment::RollbackHandle> reject(std::string_view handle) override;
  Result<nlohmann::json> learn(std::chrono::milliseconds duration) override;
  Result<nlohmann::json> suggest() override;
  Result<nlohmann::json> set_mode(std::string_view mode) override;
  // The peer guard and the audit trail (control/control_audit.h), kept in the ledger.
  Result<nlohmann::json> audit_trail() override;
  Result<void> authorize(const control::Request& request, const ledger::ControlPeer& peer) override;
  void audit(const control::Request& request, const ledger::ControlPeer& peer, const nlohmann::json& response) override;

 private:
  AgentControlParts parts_;
};

}  // namespace nhiguard::daemon
