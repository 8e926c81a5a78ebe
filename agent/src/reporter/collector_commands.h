// CollectorCommands: how the agent carries out the collector's commands (approve, reject, rollback a
// handle; set the agent mode) and obeys the mode a collector requires when it connects.
//
// Every command is idempotent, because the collector redelivers a command until it has the result:
//   approve   held -> carried out; already active/irreversible (approved before) -> OK, nothing done
//   reject    held -> rejected; already rejected -> OK
//   rollback  active -> rolled back; already terminal (rolled back, expired, ...) -> OK as it is;
//             irreversible -> INVALID (a kill cannot be undone)
//   set_mode  observe | policy -> in force and persisted (PersistedMode) -> OK with the mode
// Statuses: unknown handle -> UNKNOWN_HANDLE; not allowed in the handle's state or a malformed
// request -> INVALID; the operation failed -> FAILED with the agent's error. Every change is made
// with actor "collector" and a note naming the command (reporter::collector_command_note), so the
// ledger, and the ActionUpdate the collector receives, say which command caused it.
//
// Mode: the mode a collector imposes (a set_mode command, or the Welcome's required mode) is
// written to <state_dir>/mode.json before it is reported as done, and an agent restarted without a
// collector keeps it. A Welcome that requires no mode removes the file: agent.yaml's mode applies.
//
// The agent's operations are passed in as functions so this logic is tested without a kernel.
// Thread-safety: the link calls execute() from one worker thread and apply_required_mode() from its
// session thread; the mode change is serialised by an internal mutex.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "config/agent_config.h"
#include "containment/action.h"
#include "ledger/rollback_ledger.h"
#include "reporter/collector_link.h"

namespace nhiguard::reporter {

struct AgentOperations {
  // (handle, actor, note) -> the handle as stored after.
  using HandleOperation =
      std::function<Result<containment::RollbackHandle>(std::string_view, std::string_view, std::string_view)>;
  HandleOperation approve;
  HandleOperation reject;
  HandleOperation rollback;
  std::function<config::AgentMode()> mode;
  std::function<void(config::AgentMode)> set_mode;
};

class CollectorCommands : public reporter::CommandHandler {
 public:
  // configured: agent.yaml's mode, in force when no collector requires one.
  CollectorCommands(AgentOperations operations, ledger::RollbackLedger& ledger, std::string mode_file,
                    config::AgentMode configured);

  config::AgentMode current_mode() override;
  v1::CommandResult execute(const v1::Command& command) override;
  void apply_required_mode(std::optional<config::AgentMode> mode) override;

 private:
  v1::CommandResult handle_command(const v1::Command& command, std::string_view kind, const v1::ActionCommand& body);
  // Puts `mode` in force and persists it; the error says what could not be saved.
  Result<void> impose_mode(config::AgentMode mode, std::string set_by, std::string command_id);

  AgentOperations operations_;
  ledger::RollbackLedger& ledger_;
  const std::string mode_file_;
  const config::AgentMode configured_;
  std::mutex mode_mutex_;
};

}  // namespace nhiguard::reporter
