#include "control/control_peer.h"

#include <fmt/format.h>

#include "identity/process_info.h"

namespace nhiguard::control {

Result<ledger::ControlPeer> describe_peer(pid_t pid, uid_t uid, gid_t gid, const std::string& proc_root) {
  if (pid <= 0) return fail(Error{ESRCH, "control peer without a pid"});
  auto dir = identity::ProcessDir::open(proc_root, pid);
  if (!dir) return fail(Error{dir.error().code, fmt::format("control peer pid {}: {}", pid, dir.error().message)});
  auto info = dir->info();
  if (!info) return fail(Error{info.error().code, fmt::format("control peer pid {}: {}", pid, info.error().message)});
  return ledger::ControlPeer{.pid = static_cast<int32_t>(pid),
                             .uid = static_cast<uint32_t>(uid),
                             .gid = static_cast<uint32_t>(gid),
                             .start_time_ticks = info->start_time_ticks,
                             .exe = info->exe,
                             .comm = info->comm,
                             .cgroup = info->cgroup_path};
}

bool cgroup_is_within(std::string_view cgroup, std::string_view ancestor) {
  if (cgroup.empty() || ancestor.empty()) return false;
  while (ancestor.size() > 1 && ancestor.back() == '/') ancestor.remove_suffix(1);
  if (ancestor == "/") return cgroup.starts_with('/');
  return cgroup == ancestor || (cgroup.starts_with(ancestor) && cgroup[ancestor.size()] == '/');
}

std::optional<std::string> refuse_weakening(const containment::RollbackHandle& action,
                                            const ledger::ControlPeer& peer) {
  const std::string& target = action.target.cgroup_path;
  if (target.empty()) return std::nullopt;  // pid-only targets (kill_*) have nothing to lift
  if (peer.cgroup.empty()) {
    return fmt::format(
        "the requesting process ({}) has no known cgroup, so it cannot be shown to be outside {} "
        "targeted by {}",
        describe(peer), target, action.handle);
  }
  if (!cgroup_is_within(peer.cgroup, target)) return std::nullopt;
  return fmt::format(
      "the requesting process ({}) runs inside cgroup {} targeted by {} ({}): a contained "
      "workload cannot lift its own containment; run it from outside that cgroup",
      describe(peer), target, action.handle, containment::to_string(action.action));
}

std::optional<std::string> refuse_observe(const std::vector<containment::RollbackHandle>& in_force,
                                          const ledger::ControlPeer& peer) {
  for (const auto& action : in_force) {
    if (auto refused = refuse_weakening(action, peer)) {
      return fmt::format("mode observe would stop containment of a cgroup the requester is in: {}", *refused);
    }
  }
  return std::nullopt;
}

std::string describe(const ledger::ControlPeer& peer) {
  return fmt::format("pid {} uid {} exe {} cgroup {}", peer.pid, peer.uid, peer.exe.empty() ? "?" : peer.exe,
                     peer.cgroup.empty() ? "?" : peer.cgroup);
}

}  // namespace nhiguard::control
