// EnforcementMaps: the containment executor's view of the kernel's enforcement maps (egress blocks
// with their destination lists, credential denies). KernelSensor implements it over the pinned BPF
// maps; a unit test implements it in memory, so the executor's ordering, sharing and expiry logic
// runs without root.
//
// The kernel holds one entry per key (a cgroup for blocks, a (credential, cgroup) pair for denies):
// the executor decides what that one entry must say when several actions share the key, and writes
// it whole with these calls.
//
// Thread-safety: as the implementation (KernelSensor: any thread, each call a few bpf syscalls).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "common/result.h"
#include "containment/egress_destination.h"
#include "nhiguard_abi.h"

namespace nhiguard::kernel {

// One egress block as the kernel holds it: a cgroup (and everything below it), until a CLOCK_BOOTTIME
// expiry, for all destinations or only the listed ones.
struct EgressBlockSpec {
  uint64_t cgroup_id = 0;
  uint64_t expires_at_boot_ns = 0;
  uint32_t rule_id = 0;
  std::vector<containment::EgressDestination> destinations;  // empty: all egress
};

// A process found in a contained cgroup's subtree when its block or deny applied.
struct FollowedProcess {
  uint32_t tgid = 0;
  uint64_t start_ns = 0;  // CLOCK_BOOTTIME ns (clock-tick precision from /proc)
};

class EnforcementMaps {
 public:
  virtual ~EnforcementMaps() = default;

  // Makes the cgroup's block exactly `block`: its entry, and its listed destinations and no others
  // (destinations of an earlier entry that `block` does not list are removed after the new entry
  // is in force, so the cgroup is never less blocked than either of them in between).
  virtual Result<void> apply_egress_block(const EgressBlockSpec& block) = 0;
  virtual Result<void> remove_egress_block(uint64_t cgroup_id) = 0;  // and its listed destinations
  virtual Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> egress_blocks() const = 0;
  // Sets (adds or overwrites) the deny of `key`.
  virtual Result<void> apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value) = 0;
  virtual Result<void> remove_credential_deny(const nhg_deny_key& key) = 0;
  virtual Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> credential_denies() const = 0;
  // Adds `cgroup_id` to the followed cgroups of each process (nhg_followed), so the blocks and
  // denies on that cgroup hold for it wherever it moves; the kernel carries them into its children.
  // Every process is tried; the error names how many could not be followed and why (map full,
  // NHG_FOLLOW_MAX_TARGETS contained cgroups already).
  virtual Result<void> follow_processes(uint64_t cgroup_id, const std::vector<FollowedProcess>& processes) = 0;
  // Removes `cgroup_id` from every process's followed cgroups (an entry left with none goes).
  virtual Result<void> unfollow_cgroup(uint64_t cgroup_id) = 0;
  virtual Result<std::vector<std::pair<uint32_t, nhg_follow>>> followed() const = 0;
};

}  // namespace nhiguard::kernel
