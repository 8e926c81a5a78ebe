// TargetResolver: turns what the operator typed (--unit NAME, --cgroup PATH, --pid PID) into an
// ActionTarget the executors act on, or a clear error saying why it cannot.
//
//   --unit NAME   a system unit (*.service, *.scope, *.slice): the cgroup the system service
//                 manager gives it, NAME below a chain of slices from the root
//                 (/system.slice/NAME, /system.slice/system-x.slice/NAME, /NAME.slice,
//                 identity::system_unit_cgroup_name). A directory named NAME anywhere else (below
//                 a test cgroup, a user's manager, a container or another unit) is not the unit
//                 and is never chosen: name it with --cgroup. None is an error ("unknown unit");
//                 several (the same name under two slices) is an error listing them, asking for
//                 --cgroup, because guessing would contain the wrong workload.
//   --cgroup PATH relative to the cgroup2 root ("system.slice/x.service", "/system.slice/x.service")
//                 or absolute under the mount ("/sys/fs/cgroup/system.slice/x.service"). ".."
//                 that would climb above the root is rejected, and so is a path whose real location
//                 is outside it. Must be an existing directory.
//   --pid PID     a live process: its start time, cgroup and session id come from /proc/PID.
//
// Both the cgroup2 root and the proc root are parameters, so the unit tests run over a scratch
// directory tree (the cgroup id is then just the directory's inode, as it is on cgroupfs).
//
// Process start times. The process key is (tgid, start) with the start in CLOCK_BOOTTIME ns, the
// kernel's task->start_boottime. /proc/PID/stat field 22 gives it only in clock ticks
// (sysconf(_SC_CLK_TCK), 100 on Linux: 10 ms), truncated: ticks = start_boottime / (1e9/CLK_TCK).
// start_ticks_to_ns() therefore returns a multiple of the tick length that is <= the kernel's
// value and less than one tick below it. Two starts are the same process when they agree at tick
// precision (same_start), which is how a kernel-side ns key and a /proc-derived one are compared.
// Two processes with the same pid starting within one tick of each other would need the pid
// space to wrap within 10 ms, which the kernel's pid allocator makes practically impossible.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "containment/action.h"

namespace nhiguard::containment {

// Nanoseconds per clock tick (1e9 / sysconf(_SC_CLK_TCK)).
uint64_t ns_per_clock_tick();
// /proc stat start ticks -> CLOCK_BOOTTIME ns (truncated to the tick, see above).
uint64_t start_ticks_to_ns(uint64_t ticks);
// True when both starts fall in the same clock tick.
bool same_start(uint64_t a_ns, uint64_t b_ns);

// Calls visit(relative) for every directory below `top` (not `top` itself), depth first, with
// `relative` the path below `top` ("a/b"). Symlinks are not followed; a directory that vanishes
// mid-walk (a cgroup removed meanwhile) is skipped, since it holds nothing any more. Directories
// deeper than `max_depth` are not entered. Fails only when `top` itself cannot be opened.
Result<void> walk_directories(const std::string& top, const std::function<void(const std::string&)>& visit,
                              size_t max_depth = 64);

// The operator's choice: exactly one of unit, cgroup, pid.
struct TargetRequest {
  std::string unit;
  std::string cgroup;
  pid_t pid = 0;
};

class TargetResolver {
 public:
  // `cgroup2_root`: the cgroup2 mount point (identity::find_cgroup2_mount()) or a scratch tree.
  explicit TargetResolver(std::string cgroup2_root, std::string proc_root = "/proc");

  // Finds the host's cgroup2 mount.
  static Result<TargetResolver> open_host();

  // Sets unit, cgroup_path and cgroup_id. ENOENT for none, ENOTUNIQ for several, EINVAL for a
  // name that is not a unit name.
  Result<ActionTarget> resolve_unit(std::string_view name) const;
  // Sets cgroup_path and cgroup_id. EINVAL for an escaping or malformed path, ENOENT / ENOTDIR
  // when there is no such cgroup.
  Result<ActionTarget> resolve_cgroup(std::string_view path) const;
  // Sets pid, pid_start_ns, session_id, cgroup_path and (when the cgroup still exists) cgroup_id.
  // ESRCH when there is no such process.
  Result<ActionTarget> resolve_pid(pid_t pid) const;
  // Dispatches on the one field set; EINVAL when none or several are.
  Result<ActionTarget> resolve(const TargetRequest& request) const;

  const std::string& cgroup2_root() const { return root_; }

  // Pure: operator input -> "/a/b" relative to `root` (root itself is "/"). Accepts relative
  // paths, paths with a leading '/', and absolute paths starting with `root`; resolves "." and
  // ".." lexically and fails (EINVAL) when ".." climbs above the root.
  static Result<std::string> normalize_cgroup_input(std::string_view input, std::string_view root);

  // Pure: whether `name` has the form of a systemd unit that owns a cgroup.
  static bool is_unit_name(std::string_view name);

 private:
  Result<uint64_t> cgroup_id_of(const std::string& relative) const;

  std::string root_;  // without a trailing '/'
  std::string proc_root_;
};

}  // namespace nhiguard::containment
