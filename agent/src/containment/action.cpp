#include "containment/action.h"

#include <fmt/format.h>

#include "common/enum_names.h"

namespace nhiguard::containment {
namespace {

constexpr auto kKinds = enum_names<ActionKind>({
    {ActionKind::block_egress, "block_egress"},
    {ActionKind::deny_credential, "deny_credential"},
    {ActionKind::freeze, "freeze"},
    {ActionKind::kill_process, "kill_process"},
    {ActionKind::kill_session, "kill_session"},
});

constexpr auto kStates = enum_names<ActionState>({
    {ActionState::held, "held"},
    {ActionState::active, "active"},
    {ActionState::expired, "expired"},
    {ActionState::rolled_back, "rolled_back"},
    {ActionState::failed, "failed"},
    {ActionState::irreversible, "irreversible"},
    {ActionState::rejected, "rejected"},
    {ActionState::dry_run, "dry_run"},
    {ActionState::lapsed_by_reboot, "lapsed_by_reboot"},
});

}  // namespace

std::string_view to_string(ActionKind kind) {
  return kKinds.name(kind);
}

std::optional<ActionKind> parse_action_kind(std::string_view text) {
  std::string normalized(text);
  for (char& c : normalized) {
    if (c == '-') c = '_';
  }
  return kKinds.parse(normalized);
}

bool is_reversible(ActionKind kind) {
  return kind != ActionKind::kill_process && kind != ActionKind::kill_session;
}

std::string_view to_string(ActionState state) {
  return kStates.name(state);
}

std::optional<ActionState> parse_action_state(std::string_view text) {
  return kStates.parse(text);
}

bool is_terminal(ActionState state) {
  return state == ActionState::expired || state == ActionState::rolled_back || state == ActionState::failed ||
         state == ActionState::irreversible || state == ActionState::rejected || state == ActionState::dry_run ||
         state == ActionState::lapsed_by_reboot;
}

std::string ActionTarget::describe() const {
  std::vector<std::string> parts;
  if (!unit.empty()) parts.push_back("unit " + unit);
  if (!cgroup_path.empty()) parts.push_back("cgroup " + cgroup_path);
  if (pid != 0) parts.push_back(fmt::format("pid {}", pid));
  if (session_id != 0) parts.push_back(fmt::format("session {}", session_id));
  if (!credential_path.empty()) parts.push_back("credential " + credential_path);
  if (!destinations.empty()) parts.push_back(fmt::format("to {}", fmt::join(destinations, ",")));
  return parts.empty() ? "nothing" : fmt::format("{}", fmt::join(parts, " "));
}

}  // namespace nhiguard::containment
