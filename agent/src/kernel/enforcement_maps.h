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
};

}  // namespace nhiguard::kernel
