#include "reporter/collector_commands.h"

#include <time.h>

#include <cerrno>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "config/persisted_mode.h"
#include "records/rollback_handle_record.h"
#include "reporter/wire_records.h"

namespace nhiguard::reporter {
namespace {

using containment::ActionState;

v1::CommandResult result_of(v1::CommandResult::Status status, std::string message) {
  v1::CommandResult result;
  result.set_status(status);
  result.set_message(std::move(message));
  return result;
}

v1::CommandResult::Status status_for(const Error& error) {
  switch (error.code) {
    case ENOENT:
      return v1::CommandResult::STATUS_UNKNOWN_HANDLE;
    case EINVAL:
    case EPERM:
      return v1::CommandResult::STATUS_INVALID;
    default:
      return v1::CommandResult::STATUS_FAILED;
  }
}

// What each action command needs the handle to be in before acting, and the states that mean it was
// already done (answered OK without acting).
struct CommandRule {
  ActionState acts_on;
  std::vector<ActionState> already_done;
};

CommandRule rule_for(std::string_view kind) {
  if (kind == "approve") return {ActionState::held, {ActionState::active, ActionState::irreversible}};
  if (kind == "reject") return {ActionState::held, {ActionState::rejected}};
  // rollback: every terminal state is "as it is" (the executor answers those without acting).
  return {ActionState::active,
          {ActionState::rolled_back, ActionState::expired, ActionState::failed, ActionState::rejected,
           ActionState::lapsed_by_reboot}};
}

}  // namespace

CollectorCommands::CollectorCommands(AgentOperations operations, ledger::RollbackLedger& ledger, std::string mode_file,
                                     config::AgentMode configured)
    : operations_(std::move(operations)), ledger_(ledger), mode_file_(std::move(mode_file)), configured_(configured) {}

config::AgentMode CollectorCommands::current_mode() {
  return operations_.mode();
}

v1::CommandResult CollectorCommands::execute(const v1::Command& command) {
  v1::CommandResult result;
  switch (command.body_case()) {
    case v1::Command::kApprove:
      result = handle_command(command, "approve", command.approve());
      break;
    case v1::Command::kReject:
      result = handle_command(command, "reject", command.reject());
      break;
    case v1::Command::kRollback:
      result = handle_command(command, "rollback", command.rollback());
      break;
    case v1::Command::kSetMode: {
      const auto mode = reporter::mode_from_wire(command.set_mode().mode());
      if (!mode) {
        result = result_of(v1::CommandResult::STATUS_INVALID,
                           fmt::format("set_mode: unknown mode {}", static_cast<int>(command.set_mode().mode())));
        break;
      }
      const std::string set_by = fmt::format("collector command {} ({}{})", command.command_id(),
                                             command.issued_by().empty() ? "operator" : command.issued_by(),
                                             command.set_mode().fleet_wide() ? ", fleet-wide" : "");
      if (auto imposed = impose_mode(*mode, set_by, command.command_id()); !imposed) {
        result = result_of(v1::CommandResult::STATUS_FAILED, imposed.error().message);
      } else {
        result = result_of(v1::CommandResult::STATUS_OK, fmt::format("mode {}", config::to_string(*mode)));
      }
      break;
    }
    default:
      result = result_of(v1::CommandResult::STATUS_INVALID,
                         fmt::format("command {} has a body this agent does not know (field {})", command.command_id(),
                                     static_cast<int>(command.body_case())));
  }
  result.set_command_id(command.command_id());
  result.set_mode(reporter::mode_to_wire(operations_.mode()));
  result.set_completed_at_unix_ns(static_cast<int64_t>(clock_ns(CLOCK_REALTIME)));
  const auto level = result.status() == v1::CommandResult::STATUS_OK ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level, "collector command {} from {}: {} -> {} ({})", command.command_id(),
              command.issued_by().empty() ? "?" : command.issued_by(),
              command.has_set_mode()   ? "set_mode"
              : command.has_approve()  ? "approve " + command.approve().handle()
              : command.has_reject()   ? "reject " + command.reject().handle()
              : command.has_rollback() ? "rollback " + command.rollback().handle()
                                       : "unknown",
              v1::CommandResult::Status_Name(result.status()), result.message());
  return result;
}

v1::CommandResult CollectorCommands::handle_command(const v1::Command& command, std::string_view kind,
                                                    const v1::ActionCommand& body) {
  auto current = ledger_.get(body.handle());
  if (!current) return result_of(status_for(current.error()), fmt::format("{}: {}", kind, current.error().message));
  const CommandRule rule = rule_for(kind);
  v1::CommandResult result;
  if (std::find(rule.already_done.begin(), rule.already_done.end(), current->state) != rule.already_done.end()) {
    result = result_of(v1::CommandResult::STATUS_OK, fmt::format("{} {}: already {}, nothing done", kind, body.handle(),
                                                                 containment::to_string(current->state)));
    *result.mutable_action() = records::handle_to_wire(*current);
    return result;
  }
  if (current->state != rule.acts_on) {
    result = result_of(v1::CommandResult::STATUS_INVALID,
                       fmt::format("cannot {} {}: it is {} (only a {} action can be)", kind, body.handle(),
                                   containment::to_string(current->state), containment::to_string(rule.acts_on)));
    *result.mutable_action() = records::handle_to_wire(*current);
    return result;
  }
  const auto& operation = kind == "approve"  ? operations_.approve
                          : kind == "reject" ? operations_.reject
                                             : operations_.rollback;
  const std::string note = reporter::collector_command_note(command.command_id(), body.reason());
  auto done = operation(body.handle(), "collector", note);
  if (!done) {
    result = result_of(status_for(done.error()), fmt::format("{} {}: {}", kind, body.handle(), done.error().message));
    if (auto after = ledger_.get(body.handle()); after) *result.mutable_action() = records::handle_to_wire(*after);
    return result;
  }
  result = result_of(v1::CommandResult::STATUS_OK,
                     fmt::format("{} {}: {}", kind, body.handle(), containment::to_string(done->state)));
  *result.mutable_action() = records::handle_to_wire(*done);
  return result;
}

Result<void> CollectorCommands::impose_mode(config::AgentMode mode, std::string set_by, std::string command_id) {
  std::lock_guard lock(mode_mutex_);
  // Saved first: an agent that says "observe" must still be in observe after a restart.
  config::ModeOverride persisted{mode, std::move(set_by), std::move(command_id),
                                 static_cast<int64_t>(clock_ns(CLOCK_REALTIME))};
  auto saved = config::save_mode_override(mode_file_, persisted);
  const config::AgentMode before = operations_.mode();
  operations_.set_mode(mode);
  if (before != mode) {
    spdlog::warn("agent mode {} -> {}: set by {}{}", config::to_string(before), config::to_string(mode),
                 persisted.set_by, mode == config::AgentMode::observe ? " (no automated containment)" : "");
  }
  if (!saved) {
    spdlog::error("{}: mode {} is in force but will not survive a restart", saved.error().message,
                  config::to_string(mode));
    return saved;
  }
  return {};
}

void CollectorCommands::apply_required_mode(std::optional<config::AgentMode> mode) {
  if (mode) {
    if (operations_.mode() == *mode) {
      // Persist it anyway: an agent restarted before reconnecting must keep obeying.
      auto existing = config::load_mode_override(mode_file_);
      if (existing && *existing && (**existing).mode == *mode) return;
    }
    (void)impose_mode(*mode, "collector (required at connection)", "");
    return;
  }
  std::lock_guard lock(mode_mutex_);
  auto existing = config::load_mode_override(mode_file_);
  if (existing && !*existing) return;  // nothing imposed: agent.yaml's mode is already in force
  if (auto cleared = config::clear_mode_override(mode_file_); !cleared) spdlog::error("{}", cleared.error().message);
  const config::AgentMode before = operations_.mode();
  operations_.set_mode(configured_);
  spdlog::warn("the collector no longer requires a mode: agent.yaml's mode {} applies again (was {})",
               config::to_string(configured_), config::to_string(before));
}

}  // namespace nhiguard::reporter
