// KernelEnforcementMaps: EnforcementMaps over the pinned BPF maps (credential denies, egress blocks
// and their destination tries; descriptors from the SensorLoader, which must outlive this). Each
// write is visible to the programs at once and is pinned, so it outlives the agent and expires in
// the kernel at its expiry.
//
// The programs skip their cgroup-ancestor walks while an enforcement count is 0: adopt() counts the
// entries an earlier agent pinned (before any program is attached), and every write keeps the counts
// at or above the truth (a count above it costs a walk, one below would skip an entry in force).
//
// Thread-safety: any thread; each call is a few bpf syscalls.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kernel/enforcement_maps.h"
#include "kernel/sensor_loader.h"

namespace nhiguard::kernel {

class KernelEnforcementMaps final : public EnforcementMaps {
 public:
  static Result<std::unique_ptr<KernelEnforcementMaps>> adopt(const SensorMapFds& fds);

  Result<void> apply_egress_block(const EgressBlockSpec& block) override;
  Result<void> remove_egress_block(uint64_t cgroup_id) override;
  Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> egress_blocks() const override;
  Result<void> apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value) override;
  Result<void> remove_credential_deny(const nhg_deny_key& key) override;
  Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> credential_denies() const override;
  Result<void> follow_processes(uint64_t cgroup_id, const std::vector<FollowedProcess>& processes) override;
  Result<void> unfollow_cgroup(uint64_t cgroup_id) override;
  Result<std::vector<std::pair<uint32_t, nhg_follow>>> followed() const override;

  // Enforcement entries (denies, egress blocks, listed destinations) the kernel refused because
  // their map was full (E2BIG), since these maps were adopted. The action fails and says so; this
  // counts them for status and alerts.
  uint64_t enforcement_map_full() const { return enforcement_map_full_.load(); }
  // The taint the kernel holds for a process (nhg_taint), if any.
  std::optional<nhg_taint> taint_of(uint32_t tgid) const;

 private:
  explicit KernelEnforcementMaps(const SensorMapFds& fds) : fds_(fds) {}
  Result<void> refresh_enforcement_counts();
  // Raises one count by one ahead of a new entry: a count above the truth only costs the programs
  // a walk, one below it would let them skip an entry that is already in force.
  Result<void> raise_enforcement_count(uint32_t slot);
  // Error of a failed enforcement map update, counting a full map.
  Error enforcement_update_error(std::string what);

  SensorMapFds fds_;
  std::atomic<uint64_t> enforcement_map_full_ = 0;
};

}  // namespace nhiguard::kernel
