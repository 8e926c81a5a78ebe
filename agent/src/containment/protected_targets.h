// ProtectedTargets: what containment must never touch — the agent itself, its ancestors, PID 1,
// the cgroups they run in, and the operator's configured break-glass identities (cgroups, system
// units, user units of a uid, uids). Every executor asks here before it acts; a refusal is an Error with EPERM and
// a message that names the protection, so the ledger and the operator see why.
//
// The rules are pure functions of a snapshot (Snapshot, ProcessFacts), so the unit tests cover
// them without root; from_host() and the (pid, start) / cgroup-contents overloads are the thin
// layers that read /proc and cgroupfs to build those values.
//
// Rules:
//   cgroups  — refused when the cgroup IS or CONTAINS (is an ancestor of) the agent's or PID 1's
//              cgroup, or is, contains or lies inside a break-glass cgroup, or is or lies inside a
//              break-glass system unit or user unit. The cgroup root "/" is always refused: it
//              holds the whole host. check_cgroup_contents() also refuses a cgroup whose subtree
//              holds a protected process (e.g. a break-glass uid) or a break-glass unit's cgroup.
//
// A unit is recognised by its place, never by a directory name (identity/cgroup_classifier.h):
// the break-glass unit sshd.service is /system.slice/sshd.service (or sshd.service below any slice
// of the system manager); a directory named sshd.service below a test cgroup, a user's manager
// (`systemd-run --user --unit=sshd.service`) or another unit is not protected, and neither is the
// cgroup above it. A break-glass user unit is the unit of that uid's manager only. The agent,
// its ancestors and PID 1 are protected by process key (pid, start time) and by the full path of
// their cgroups as read from /proc at start, which no other cgroup can have.
//   processes — refused: the agent (pid and start), PID 1, every ancestor of the agent, kernel
//              threads, processes of a break-glass uid, processes directly in the agent's or PID 1's
//              cgroup, and processes anywhere inside a break-glass cgroup or unit. A process in the
//              cgroup root "/" is NOT protected just because the agent or PID 1 also sits there:
//              on hosts without a service manager (this one) everything unplaced lives in "/", and
//              protecting all of it would make kill_process unusable; the agent and PID 1 stay
//              protected by their own keys.
//
// The ancestry is a snapshot taken at construction. It can only shrink while the agent runs (a
// dead parent is replaced by a subreaper that was already an ancestor, or by PID 1), and entries
// are (pid, start) keys, so a reused pid never matches a stale entry.
//
// Thread-safety: immutable after construction; all const members may run concurrently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nhiguard::containment {

// Operator-configured identities that are never contained.
struct BreakGlass {
  struct UserUnit {
    uint32_t uid = 0;  // the user whose manager (user@UID.service) runs it
    std::string name;  // e.g. "backup.service"
  };
  std::vector<std::string> cgroups;  // relative to the cgroup2 root, e.g. "/system.slice/sshd.service"
  std::vector<std::string> units;    // system units, e.g. "sshd.service" (cgroup_classifier.h rule 4)
  std::vector<UserUnit> user_units;
  std::vector<uint32_t> uids;  // real uid of the process
};

// One protected process, by its process key.
struct ProtectedProcess {
  pid_t pid = 0;
  uint64_t start_ns = 0;    // CLOCK_BOOTTIME ns at clock-tick precision (see target_resolver.h)
  std::string cgroup_path;  // relative to the cgroup2 root, leading '/'
  std::string comm;         // for messages
};

// The facts of one candidate process that the rules need (what /proc/PID says).
struct ProcessFacts {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_ns = 0;
  uint32_t uid = 0;
  std::string cgroup_path;
  std::string comm;
};

class ProtectedTargets {
 public:
  struct Snapshot {
    ProtectedProcess agent;
    ProtectedProcess init;                    // PID 1
    std::vector<ProtectedProcess> ancestors;  // of the agent, nearest first (may include PID 1)
    BreakGlass break_glass;
  };

  // Pure: the rules over facts gathered elsewhere. `proc_root` is only used by the reading
  // overloads (check_process(pid, start), check_cgroup_contents).
  explicit ProtectedTargets(Snapshot snapshot, std::string proc_root = "/proc");

  // Reads the agent (<proc_root>/self), its ancestry and PID 1 from /proc.
  static Result<ProtectedTargets> from_host(BreakGlass break_glass, const std::string& proc_root = "/proc");

  // Path rules only (see above). `cgroup_path` is relative to the cgroup2 root ("/a/b"; "a/b" and
  // a trailing '/' are accepted).
  Result<void> check_cgroup(const std::string& cgroup_path) const;

  // check_cgroup, then a walk of the cgroup's subtree under `cgroup2_root` (the mount point):
  // refuses when a directory below is a break-glass unit's cgroup, or a process listed in a
  // cgroup.procs below is protected. Processes that vanish during the walk are skipped.
  Result<void> check_cgroup_contents(const std::string& cgroup2_root, const std::string& cgroup_path) const;

  // Pure process rules.
  Result<void> check_process(const ProcessFacts& facts) const;

  // Reads <proc_root>/<pid> and applies the process rules. Fails with ESRCH when the process is
  // gone or its start time is not `expected_start_ns` (compared at clock-tick precision).
  Result<void> check_process(pid_t pid, uint64_t expected_start_ns) const;

  const Snapshot& snapshot() const { return snapshot_; }

 private:
  // The break-glass unit (system or user) whose cgroup `path` ("/a/b", normalised) is or lies in,
  // described for a message ("sshd.service", "backup.service of uid 1000"); empty when none.
  std::string break_glass_unit_of(const std::string& path) const;

  Snapshot snapshot_;
  std::string proc_root_;
};

// Normalises a cgroup path to "/a/b" form: leading '/', no trailing '/', no empty components.
// Does not resolve "." or ".." (callers that take operator input reject those first).
std::string normalize_cgroup_relpath(std::string_view path);

// True when `ancestor` is `path` or one of its ancestors (both in normalised form).
bool cgroup_is_or_contains(std::string_view ancestor, std::string_view path);

// The pids listed in <cgroup_dir>/cgroup.procs; none when the cgroup is gone.
std::vector<pid_t> read_cgroup_procs(const std::string& cgroup_dir);

// Reads the facts of <proc_root>/<pid>: stat, status (uid) and the cgroup v2 line.
Result<ProcessFacts> read_process_facts(const std::string& proc_root, pid_t pid);

}  // namespace nhiguard::containment
