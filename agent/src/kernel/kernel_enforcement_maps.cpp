#include "kernel/kernel_enforcement_maps.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "kernel/bpf_map_ops.h"

namespace nhiguard::kernel {
namespace {

nhg_egress_dest_key dest_key(uint64_t cgroup_id, const containment::EgressDestination& dest) {
  nhg_egress_dest_key key{};
  // The cgroup id and port are matched whole; the address by its prefix.
  key.prefixlen = 8 * (sizeof(key.cgroup_id) + sizeof(key.port)) + dest.prefix_bits;
  std::memcpy(key.cgroup_id, &cgroup_id, sizeof(key.cgroup_id));
  key.port[0] = static_cast<uint8_t>(dest.port >> 8);
  key.port[1] = static_cast<uint8_t>(dest.port & 0xff);
  std::memcpy(key.addr, dest.address.data(), sizeof(key.addr));
  return key;
}

// The same trie entry: one prefix length, and the same bits within it (the kernel ignores the rest).
bool same_dest(const nhg_egress_dest_key& a, const nhg_egress_dest_key& b) {
  if (a.prefixlen != b.prefixlen) return false;
  const auto* x = reinterpret_cast<const uint8_t*>(&a.cgroup_id);
  const auto* y = reinterpret_cast<const uint8_t*>(&b.cgroup_id);
  const uint32_t whole = a.prefixlen / 8, rest = a.prefixlen % 8;
  if (std::memcmp(x, y, whole) != 0) return false;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return rest == 0 || ((x[whole] ^ y[whole]) & mask) == 0;
}

}  // namespace

Result<std::unique_ptr<KernelEnforcementMaps>> KernelEnforcementMaps::adopt(const SensorMapFds& fds) {
  std::unique_ptr<KernelEnforcementMaps> maps(new KernelEnforcementMaps(fds));
  // Pinned enforcement adopted from an earlier agent must be counted before the programs run.
  if (auto counted = maps->refresh_enforcement_counts(); !counted) return fail(counted.error());
  return maps;
}

Error KernelEnforcementMaps::enforcement_update_error(std::string what) {
  const int err = errno;
  if (err != E2BIG) return Error::from_errno(err, std::move(what));
  ++enforcement_map_full_;
  return Error{err, std::move(what) + ": the map is full (every entry in use until some expire or are rolled back)"};
}

// The programs skip their cgroup-ancestor walks while a count is 0; the counts follow the maps.
Result<void> KernelEnforcementMaps::refresh_enforcement_counts() {
  auto blocks = egress_blocks();
  if (!blocks) return fail(blocks.error());
  auto denies = credential_denies();
  if (!denies) return fail(denies.error());
  const int fd = fds_.enforcement_counts;
  for (auto [slot, count] : {std::pair{uint32_t{NHG_ENF_CREDENTIAL_DENIES}, static_cast<uint32_t>(denies->size())},
                             std::pair{uint32_t{NHG_ENF_EGRESS_BLOCKS}, static_cast<uint32_t>(blocks->size())}}) {
    if (bpf_map_update_elem(fd, &slot, &count, BPF_ANY) != 0) {
      return fail(Error::from_current_errno(fmt::format("update enforcement count {}", slot)));
    }
  }
  return {};
}

Result<void> KernelEnforcementMaps::raise_enforcement_count(uint32_t slot) {
  const int fd = fds_.enforcement_counts;
  uint32_t count = 0;
  if (bpf_map_lookup_elem(fd, &slot, &count) != 0) {
    return fail(Error::from_current_errno(fmt::format("read enforcement count {}", slot)));
  }
  ++count;
  if (bpf_map_update_elem(fd, &slot, &count, BPF_ANY) != 0) {
    return fail(Error::from_current_errno(fmt::format("raise enforcement count {}", slot)));
  }
  return {};
}

Result<void> KernelEnforcementMaps::apply_egress_block(const EgressBlockSpec& spec) {
  const int dests_fd = fds_.egress_dests;
  // Destinations first: a listed block must never be in force without its list.
  for (const auto& dest : spec.destinations) {
    const nhg_egress_dest_key key = dest_key(spec.cgroup_id, dest);
    const uint32_t rule = spec.rule_id;
    if (bpf_map_update_elem(dests_fd, &key, &rule, BPF_ANY) != 0) {
      return fail(
          enforcement_update_error(fmt::format("add destination {} for cgroup {}", dest.to_string(), spec.cgroup_id)));
    }
  }
  nhg_egress_block block{.expires_at_ns = spec.expires_at_boot_ns,
                         .mode = spec.destinations.empty() ? NHG_BLOCK_ALL : NHG_BLOCK_LISTED,
                         .rule_id = spec.rule_id};
  // The count first: the block is in force from the moment its entry appears.
  if (auto raised = raise_enforcement_count(NHG_ENF_EGRESS_BLOCKS); !raised) return raised;
  if (bpf_map_update_elem(fds_.egress_blocks, &spec.cgroup_id, &block, BPF_ANY) != 0) {
    return fail(enforcement_update_error(fmt::format("add egress block for cgroup {}", spec.cgroup_id)));
  }
  // Only now, with the new entry in force, the destinations an earlier entry listed and this one
  // does not go.
  std::vector<nhg_egress_dest_key> wanted;
  for (const auto& dest : spec.destinations) wanted.push_back(dest_key(spec.cgroup_id, dest));
  auto pruned = delete_keys_unless<nhg_egress_dest_key, uint32_t>(dests_fd, "nhg_egress_dests", [&](const auto& key) {
    uint64_t id;
    std::memcpy(&id, key.cgroup_id, sizeof(id));
    return id != spec.cgroup_id ||
           std::any_of(wanted.begin(), wanted.end(), [&](const auto& w) { return same_dest(w, key); });
  });
  if (!pruned) return pruned;
  return refresh_enforcement_counts();
}

Result<void> KernelEnforcementMaps::remove_egress_block(uint64_t cgroup_id) {
  if (bpf_map_delete_elem(fds_.egress_blocks, &cgroup_id) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(fmt::format("remove egress block of cgroup {}", cgroup_id)));
  }
  const int dests_fd = fds_.egress_dests;
  auto dests = dump_map<nhg_egress_dest_key, uint32_t>(dests_fd, "nhg_egress_dests");
  if (!dests) return fail(dests.error());
  for (const auto& [key, rule] : *dests) {
    uint64_t id;
    std::memcpy(&id, key.cgroup_id, sizeof(id));
    if (id == cgroup_id && bpf_map_delete_elem(dests_fd, &key) != 0 && errno != ENOENT) {
      return fail(Error::from_current_errno(fmt::format("remove a listed destination of cgroup {}", cgroup_id)));
    }
  }
  return refresh_enforcement_counts();
}

Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> KernelEnforcementMaps::egress_blocks() const {
  return dump_map<uint64_t, nhg_egress_block>(fds_.egress_blocks, "nhg_egress_blocks");
}

Result<void> KernelEnforcementMaps::apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value) {
  if (auto raised = raise_enforcement_count(NHG_ENF_CREDENTIAL_DENIES); !raised) return raised;
  if (bpf_map_update_elem(fds_.credential_denies, &key, &value, BPF_ANY) != 0) {
    return fail(enforcement_update_error(
        fmt::format("add credential deny (credential {}, cgroup {})", key.credential_id, key.cgroup_id)));
  }
  return refresh_enforcement_counts();
}

Result<void> KernelEnforcementMaps::remove_credential_deny(const nhg_deny_key& key) {
  if (bpf_map_delete_elem(fds_.credential_denies, &key) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(
        fmt::format("remove credential deny (credential {}, cgroup {})", key.credential_id, key.cgroup_id)));
  }
  return refresh_enforcement_counts();
}

Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> KernelEnforcementMaps::credential_denies() const {
  return dump_map<nhg_deny_key, nhg_deny_value>(fds_.credential_denies, "nhg_credential_denies");
}

Result<void> KernelEnforcementMaps::follow_processes(uint64_t cgroup_id,
                                                     const std::vector<FollowedProcess>& processes) {
  size_t failed = 0;
  std::string first_error;
  for (const auto& process : processes) {
    nhg_follow entry{};
    const bool existed = bpf_map_lookup_elem(fds_.followed, &process.tgid, &entry) == 0;
    if (!existed) entry.start_ns = process.start_ns;
    auto* slot = std::find(std::begin(entry.cgroup_ids), std::end(entry.cgroup_ids), cgroup_id);
    if (slot == std::end(entry.cgroup_ids))
      slot = std::find(std::begin(entry.cgroup_ids), std::end(entry.cgroup_ids), 0);
    if (slot == std::end(entry.cgroup_ids)) {
      if (failed++ == 0) {
        first_error =
            fmt::format("pid {} is already followed for {} contained cgroups", process.tgid, NHG_FOLLOW_MAX_TARGETS);
      }
      continue;
    }
    if (*slot == cgroup_id) continue;
    *slot = cgroup_id;
    // BPF_EXIST for an entry seen: one that its process's exit deleted meanwhile is not made again.
    if (bpf_map_update_elem(fds_.followed, &process.tgid, &entry, existed ? BPF_EXIST : BPF_NOEXIST) != 0) {
      if (errno == ENOENT) continue;  // exited meanwhile
      const Error error = enforcement_update_error(fmt::format("follow pid {}", process.tgid));
      if (failed++ == 0) first_error = error.message;
    }
  }
  if (failed == 0) return {};
  return fail(Error::plain(fmt::format("{} of {} processes of cgroup {} are not followed (first: {})", failed,
                                       processes.size(), cgroup_id, first_error)));
}

Result<void> KernelEnforcementMaps::unfollow_cgroup(uint64_t cgroup_id) {
  auto entries = followed();
  if (!entries) return fail(entries.error());
  for (auto [tgid, entry] : *entries) {
    auto* end = std::remove(std::begin(entry.cgroup_ids), std::end(entry.cgroup_ids), cgroup_id);
    if (end == std::end(entry.cgroup_ids)) continue;
    std::fill(end, std::end(entry.cgroup_ids), 0);
    const bool empty = entry.cgroup_ids[0] == 0;
    const int rc = empty ? bpf_map_delete_elem(fds_.followed, &tgid)
                         : bpf_map_update_elem(fds_.followed, &tgid, &entry, BPF_EXIST);
    if (rc != 0 && errno != ENOENT) {
      return fail(Error::from_current_errno(fmt::format("stop following pid {} for cgroup {}", tgid, cgroup_id)));
    }
  }
  return {};
}

Result<std::vector<std::pair<uint32_t, nhg_follow>>> KernelEnforcementMaps::followed() const {
  return dump_map<uint32_t, nhg_follow>(fds_.followed, "nhg_followed");
}

std::optional<nhg_taint> KernelEnforcementMaps::taint_of(uint32_t tgid) const {
  nhg_taint taint{};
  if (bpf_map_lookup_elem(fds_.taint, &tgid, &taint) != 0) return std::nullopt;
  return taint;
}

}  // namespace nhiguard::kernel
