// Who is on the other end of a control-socket connection, and whether that process may weaken an
// action.
//
// describe_peer: SO_PEERCRED gives the pid, uid and gid the kernel recorded at connect(); /proc gives
// the rest (start time, exe, comm, cgroup v2 path) when the command is handled. The start time pins
// the process: a pid that was reused since connect() (the client exited and another process took
// its number) has another start time, and the command is refused rather than credited to it.
//
// The peer guard: a process running inside the cgroup an action targets, or below it, cannot roll
// that action back, reject it while held, or switch the agent to `observe` while any active or held
// action targets its cgroup: a contained workload must not be able to lift its own containment
// through the local socket. Everything that strengthens (contain, approve, mode policy) and
// learning (which changes no enforcement) stays allowed. What this does not cover: a root workload
// that leaves its cgroup first (writes itself into another cgroup.procs) or asks PID 1 to run the
// command elsewhere (systemd-run) is outside by the time it asks; freeze stops it from doing either.
// Pure functions apart from describe_peer's /proc reads.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "containment/action.h"
#include "ledger/rollback_ledger.h"

namespace nhiguard::control {

// The peer `pid` as /proc shows it now, with SO_PEERCRED's uid and gid. ENOENT when it is gone.
Result<ledger::ControlPeer> describe_peer(pid_t pid, uid_t uid, gid_t gid, const std::string& proc_root = "/proc");

// True when `cgroup` is `ancestor` or below it (paths as /proc/PID/cgroup shows them; "/" is the
// root, which contains everything). Empty paths are never inside anything.
bool cgroup_is_within(std::string_view cgroup, std::string_view ancestor);

// Why `peer` may not roll back or reject `action` (it runs inside the action's target cgroup), or
// nullopt when it may. A peer whose cgroup is unknown is refused: the guard fails closed.
std::optional<std::string> refuse_weakening(const containment::RollbackHandle& action, const ledger::ControlPeer& peer);

// Why `peer` may not set the agent to observe: the first of `in_force` (active and held actions)
// whose target cgroup contains it; nullopt when none does.
std::optional<std::string> refuse_observe(const std::vector<containment::RollbackHandle>& in_force,
                                          const ledger::ControlPeer& peer);

// "pid 4242 uid 0 exe /usr/bin/nhiguardctl cgroup /user.slice/..." for log lines and refusals.
std::string describe(const ledger::ControlPeer& peer);

}  // namespace nhiguard::control
