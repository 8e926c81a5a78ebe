// SIGKILL by process key, never by bare pid.
//
// A pid is reused once its process is reaped, so "kill 4242" can hit a stranger. Every kill here
//   1. opens a pidfd (pidfd_open(2)): from then on the descriptor names one process for good;
//   2. reads /proc/<pid>/stat AFTER the pidfd is open and compares the start time with the one
//      expected (at clock-tick precision, see target_resolver.h). If it matches, the process that
//      had the pid when the pidfd was opened is still the expected one (two live processes never
//      share a pid); if not, nothing is sent;
//   3. signals through the pidfd (pidfd_send_signal(2)), which cannot reach another process.
// The syscalls are made with syscall(2): glibc gained wrappers only in 2.36.
//
// kill_session kills the offender's session: every process whose session id (stat field 6) is
// the offender's, plus the offender's descendants (found through the ppid links, so children that
// called setsid to leave the session stay included). The whole set is checked against
// ProtectedTargets first and the action is refused, with nothing killed, when any member is
// protected. After the kills the process table is scanned again (a member may have forked
// meanwhile) until no new member appears or kMaxSessionRounds rounds have run. A child forked
// by a member after the first scan is found through its parent while that parent is still in the
// table (alive or a zombie); one that left the session and whose parent was already reaped is no
// longer distinguishable from an outsider and is left alone — "never outside" wins over "all".
// For a session that forks fast, freeze its cgroup first.
//
// Thread-safety: stateless; reads /proc and sends signals only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "common/result.h"

namespace nhiguard::containment {

class ProtectedTargets;

struct KilledProcess {
  pid_t pid = 0;
  uint64_t start_ns = 0;  // CLOCK_BOOTTIME ns at tick precision
  bool operator==(const KilledProcess&) const = default;
};

inline constexpr int kMaxSessionRounds = 8;

// Kills one process. ESRCH when it is gone or is not the expected one (pid reused); the error
// says which. Does not consult ProtectedTargets (see the overload).
Result<void> kill_process(pid_t pid, uint64_t expected_start_ns);

// The same, refused (EPERM) first when the process is protected.
Result<void> kill_process(pid_t pid, uint64_t expected_start_ns, const ProtectedTargets& protected_targets);

// Kills the offender's session and subtree; returns every (pid, start) signalled, the offender
// first. EPERM (nothing killed) when a member is protected; ESRCH when the offender is not the
// expected process; EINVAL for a session id of 0 (kernel threads). Members that exit on their own
// before their signal are not listed.
Result<std::vector<KilledProcess>> kill_session(pid_t pid, uint64_t expected_start_ns,
                                                const ProtectedTargets& protected_targets);

// Waits until the process behind `pid` with `start_ns` has exited (its pidfd turns readable), or
// `timeout` passes. True when it has exited (or was already gone). For callers and tests that need
// the kill to have taken effect, not only to be sent.
bool wait_for_process_exit(pid_t pid, uint64_t start_ns, std::chrono::milliseconds timeout);

}  // namespace nhiguard::containment
