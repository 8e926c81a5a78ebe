#include "daemon/state_recovery.h"

#include <time.h>

#include <algorithm>

#include "common/clock.h"

namespace nhiguard::daemon {

CredentialIdRecovery recover_credential_ids(const std::vector<catalogue::ResolvedCredential>& resolved,
                                            const std::vector<std::pair<nhg_inode_key, nhg_credential_value>>& pinned,
                                            const std::vector<std::pair<nhg_deny_key, nhg_deny_value>>& denies) {
  CredentialIdRecovery out;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> pinned_by_inode;
  for (const auto& [key, value] : pinned) {
    pinned_by_inode[{key.dev, key.ino}] = value.credential_id;
    out.first_free_id = std::max(out.first_free_id, value.credential_id + 1);
  }
  for (const auto& [key, value] : denies) out.first_free_id = std::max(out.first_free_id, key.credential_id + 1);
  std::map<uint32_t, bool> matched;
  for (const auto& [inode, id] : pinned_by_inode) matched[id] = false;
  for (const auto& credential : resolved) {
    auto it = pinned_by_inode.find({credential.dev, credential.ino});
    if (it == pinned_by_inode.end()) continue;
    // Aliases reach the same inode: they share its id, as the catalogue gives them.
    out.ids[credential.path] = it->second;
    for (const auto& alias : credential.aliases) out.ids[alias] = it->second;
    matched[it->second] = true;
    ++out.kept_from_pins;
  }
  for (const auto& [id, found] : matched) {
    if (!found) out.unmatched_ids.push_back(id);
  }
  return out;
}

std::vector<std::string> unowned_kernel_state(const std::vector<containment::RollbackHandle>& active,
                                              const std::vector<std::pair<uint64_t, nhg_egress_block>>& blocks,
                                              const std::vector<std::pair<nhg_deny_key, nhg_deny_value>>& denies,
                                              uint64_t now_boot_ns) {
  using containment::ActionKind;
  std::vector<std::string> out;
  for (const auto& [cgroup, block] : blocks) {
    if (block.expires_at_ns <= now_boot_ns) continue;
    const bool owned = std::any_of(active.begin(), active.end(), [&](const containment::RollbackHandle& h) {
      return h.action == ActionKind::block_egress && h.target.cgroup_id == cgroup;
    });
    if (!owned) {
      out.push_back(fmt::format("egress block on cgroup {} (rule {}), in force for {} s more", cgroup, block.rule_id,
                                (block.expires_at_ns - now_boot_ns) / 1'000'000'000));
    }
  }
  for (const auto& [key, value] : denies) {
    if (value.expires_at_ns <= now_boot_ns) continue;
    const bool owned = std::any_of(active.begin(), active.end(), [&](const containment::RollbackHandle& h) {
      return h.action == ActionKind::deny_credential && h.target.cgroup_id == key.cgroup_id &&
             h.target.credential_id == key.credential_id;
    });
    if (!owned) {
      out.push_back(fmt::format("credential deny of credential {} in cgroup {} (rule {}), in force for {} s more",
                                key.credential_id, key.cgroup_id, value.rule_id,
                                (value.expires_at_ns - now_boot_ns) / 1'000'000'000));
    }
  }
  return out;
}

std::optional<StateNotice> report_unowned_kernel_state(ledger::RollbackLedger& ledger,
                                                       const kernel::EnforcementMaps& enforcement,
                                                       const std::string& pin_dir) {
  auto active = ledger.list({.states = {containment::ActionState::active}});
  auto blocks = enforcement.egress_blocks();
  auto denies = enforcement.credential_denies();
  if (!active || !blocks || !denies) {
    spdlog::error("cannot compare the pinned enforcement maps with the ledger; unowned entries are not reported");
    return std::nullopt;
  }
  const auto unowned = unowned_kernel_state(*active, *blocks, *denies, clock_ns(CLOCK_BOOTTIME));
  if (unowned.empty()) return std::nullopt;
  constexpr size_t kListed = 16;  // the alert names the first ones; the count says how many
  std::vector<std::string> listed(unowned.begin(), unowned.begin() + std::min(unowned.size(), kListed));
  const std::string message = fmt::format(
      "{} pinned enforcement entr{} in {} without an active ledger action (no handle to roll back; each ends at its "
      "kernel expiry, or `bpftool map delete` ends it now): {}{}",
      unowned.size(), unowned.size() == 1 ? "y" : "ies", pin_dir, fmt::join(listed, "; "),
      unowned.size() > kListed ? "; ..." : "");
  spdlog::error("{}", message);
  return StateNotice{"unowned_kernel_state", message, unowned.size()};
}

}  // namespace nhiguard::daemon
