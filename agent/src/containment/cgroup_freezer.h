// Freezing and thawing one cgroup v2 through cgroup.freeze.
//
// Freezing stops every process of the cgroup and its descendants while keeping their memory and
// descriptors: the service is stopped for evidence and can be resumed exactly as it was (thaw).
// Writing cgroup.freeze only requests it; the kernel reports completion by "frozen 1" in
// cgroup.events once every task has stopped, which can lag behind (a task in an uninterruptible
// sleep stops when it returns). So both operations wait for cgroup.events to agree, woken by the
// kernfs notification (POLLPRI on cgroup.events) and re-checking at least every 50 ms, and fail
// with ETIMEDOUT when it does not within the timeout. A timed-out freeze stays requested (the
// kernel keeps freezing the stragglers); the caller decides whether to thaw.
//
// Paths are absolute cgroup directories (<cgroup2 mount>/<relative path>). These functions do not
// consult ProtectedTargets: the executor checks the target before calling them.
//
// Thread-safety: stateless; concurrent calls on different cgroups are independent. Concurrent
// freeze and thaw of the same cgroup race as the writes do (the last write wins).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard::containment {

inline constexpr std::chrono::milliseconds kDefaultFreezeTimeout{5000};

// The keys of cgroup.events the freezer uses.
struct CgroupEvents {
  bool populated = false;
  bool frozen = false;
};

// Pure: parses "populated 1\nfrozen 0\n". EINVAL when the frozen key is missing.
Result<CgroupEvents> parse_cgroup_events(std::string_view text);

// Reads <cgroup_dir>/cgroup.events.
Result<CgroupEvents> read_cgroup_events(const std::string& cgroup_dir);

// Writes "1" to cgroup.freeze and waits for "frozen 1". Errors name the file and errno (ENOENT
// for a vanished cgroup or for the root, which has no cgroup.freeze).
Result<void> freeze(const std::string& cgroup_dir, std::chrono::milliseconds timeout = kDefaultFreezeTimeout);

// Writes "0" to cgroup.freeze and waits for "frozen 0". Thawing a cgroup whose ancestor is frozen
// leaves it frozen (the kernel's rule), which then times out.
Result<void> thaw(const std::string& cgroup_dir, std::chrono::milliseconds timeout = kDefaultFreezeTimeout);

// Whether cgroup.events says frozen (the effective state, including a frozen ancestor).
Result<bool> is_frozen(const std::string& cgroup_dir);

}  // namespace nhiguard::containment
