#include "daemon/containment_executor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "containment/cgroup_freezer.h"
#include "containment/egress_destination.h"
#include "containment/process_killer.h"
#include "ledger/ulid.h"

namespace nhiguard::daemon {
namespace {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;

constexpr auto kMaxTtl = std::chrono::hours(24);

Error refused(std::string message) { return Error{EPERM, std::move(message)}; }
Error invalid(std::string message) { return Error{EINVAL, std::move(message)}; }

}  // namespace

ContainmentExecutor::ContainmentExecutor(kernel::KernelSensor& sensor, ledger::RollbackLedger& ledger,
                                         containment::ProtectedTargets& protected_targets,
                                         containment::TargetResolver& resolver, std::string cgroup2_root,
                                         CredentialLookup credential_lookup)
    : sensor_(sensor),
      ledger_(ledger),
      protected_(protected_targets),
      resolver_(resolver),
      cgroup2_root_(std::move(cgroup2_root)),
      credential_lookup_(std::move(credential_lookup)) {}

uint32_t ContainmentExecutor::kernel_rule_id(std::string_view handle) {
  uint32_t hash = 2166136261u;  // FNV-1a: stable, and 0 is reserved for "no rule"
  for (char c : handle) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
  return hash == 0 ? 1 : hash;
}

Result<RollbackHandle> ContainmentExecutor::contain(const ContainRequestSpec& request, std::string_view actor) {
  std::lock_guard lock(mutex_);
  auto prepared = prepare_locked(request);
  auto result = prepared ? apply_locked(std::move(*prepared), actor, /*record=*/true, "applying") : prepared;
  if (!result) {
    spdlog::warn("containment {} refused or failed: {} (reason given: {})", containment::to_string(request.action),
                 result.error().message, request.reason);
  }
  return result;
}

Result<RollbackHandle> ContainmentExecutor::hold(const ContainRequestSpec& request, std::string_view actor) {
  std::lock_guard lock(mutex_);
  auto handle = record_unapplied_locked(request, actor, ActionState::held, "held for approval");
  if (handle) {
    spdlog::warn("held {}: {} {} waits for approval (nhiguardctl approve|reject {}); rule {}, reason: {}",
                 handle->handle, containment::to_string(handle->action), handle->target.describe(), handle->handle,
                 handle->rule, handle->reason);
  }
  return handle;
}

Result<RollbackHandle> ContainmentExecutor::record_dry_run(const ContainRequestSpec& request, std::string_view actor) {
  std::lock_guard lock(mutex_);
  return record_unapplied_locked(request, actor, ActionState::dry_run, "dry run: would have applied");
}

Result<RollbackHandle> ContainmentExecutor::record_unapplied_locked(const ContainRequestSpec& request,
                                                                    std::string_view actor, ActionState state,
                                                                    std::string_view note) {
  auto handle = prepare_locked(request);
  if (!handle) return handle;
  handle->state = state;
  handle->dry_run = state == ActionState::dry_run;
  if (auto recorded = ledger_.record(*handle, actor, note); !recorded) return fail(recorded.error());
  return handle;
}

Result<RollbackHandle> ContainmentExecutor::approve(std::string_view handle_id, std::string_view actor,
                                                   std::string_view note) {
  std::lock_guard lock(mutex_);
  auto handle = ledger_.get(handle_id);
  if (!handle) return fail(handle.error());
  if (handle->state != ActionState::held) {
    return fail(invalid(fmt::format("{} is {}, not held: there is nothing to approve", handle->handle,
                                    containment::to_string(handle->state))));
  }
  if (auto ok = check_target_locked(*handle); !ok) {
    (void)ledger_.transition(handle->handle, ActionState::failed, actor, fmt::format("{}: refused", note),
                             ok.error().message);
    return fail(ok.error());
  }
  auto applied = apply_locked(std::move(*handle), actor, /*record=*/false, note);
  if (applied) spdlog::warn("approved {} (by {})", applied->handle, actor);
  return applied;
}

Result<RollbackHandle> ContainmentExecutor::reject(std::string_view handle_id, std::string_view actor,
                                                  std::string_view note) {
  std::lock_guard lock(mutex_);
  auto outcome = ledger_.transition_outcome(handle_id, ActionState::rejected, actor, note);
  if (!outcome) return fail(outcome.error());
  if (outcome->changed) {
    spdlog::warn("rejected {}: {} {} (by {})", outcome->handle.handle, containment::to_string(outcome->handle.action),
                 outcome->handle.target.describe(), actor);
  }
  return std::move(outcome->handle);
}

Result<void> ContainmentExecutor::check_target_locked(const RollbackHandle& handle) {
  const auto& target = handle.target;
  switch (handle.action) {
    case ActionKind::block_egress:
    case ActionKind::freeze: {
      if (auto ok = protected_.check_cgroup(target.cgroup_path); !ok) return ok;
      if (auto ok = protected_.check_cgroup_contents(cgroup2_root_, target.cgroup_path); !ok) return ok;
      break;
    }
    case ActionKind::deny_credential:
      if (auto ok = protected_.check_cgroup(target.cgroup_path); !ok) return ok;
      break;
    case ActionKind::kill_process:
    case ActionKind::kill_session:
      if (auto ok = protected_.check_process(static_cast<pid_t>(target.pid), target.pid_start_ns); !ok) return ok;
      break;
  }
  if (handle.action == ActionKind::block_egress) {
    // One block per cgroup in the kernel: a second would silently replace the first's entry.
    auto active = ledger_.list({.states = {ActionState::active}, .action = ActionKind::block_egress});
    if (!active) return fail(active.error());
    for (const auto& other : *active) {
      if (other.target.cgroup_id == target.cgroup_id) {
        return fail(Error{EEXIST, fmt::format("cgroup {} is already blocked by {}; roll that back first",
                                              target.cgroup_path, other.handle)});
      }
    }
  }
  return {};
}

Result<RollbackHandle> ContainmentExecutor::prepare_locked(const ContainRequestSpec& request) {
  const bool reversible = containment::is_reversible(request.action);
  if (request.reason.empty()) return fail(invalid("a reason is required"));
  if (reversible && (request.ttl <= std::chrono::milliseconds::zero() || request.ttl > kMaxTtl)) {
    return fail(invalid("the TTL of a reversible action must be more than 0 and at most 24h"));
  }

  auto resolved = resolver_.resolve(request.target);
  if (!resolved) return fail(resolved.error());
  containment::ActionTarget target = *resolved;
  if (request.target.pid != 0 && request.pid_start_ns != 0 &&
      !containment::same_start(target.pid_start_ns, request.pid_start_ns)) {
    return fail(Error{ESRCH, fmt::format("pid {} is no longer the process the decision was about (it exited and the "
                                         "pid was reused)",
                                         request.target.pid)});
  }
  target.workload_uri = request.workload_uri;

  RollbackHandle handle;
  handle.handle = ledger::new_handle_id();
  handle.action = request.action;
  handle.rule = request.rule;
  handle.reason = request.reason;
  handle.trigger_event_ids = request.trigger_event_ids;
  handle.created_at_ns = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  handle.updated_at_ns = handle.created_at_ns;
  if (reversible) {
    const auto ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(request.ttl).count();
    handle.expires_at_ns = handle.created_at_ns + ttl_ns;
    handle.expires_at_boot_ns = clock_ns(CLOCK_BOOTTIME) + static_cast<uint64_t>(ttl_ns);
  }

  switch (request.action) {
    case ActionKind::block_egress:
    case ActionKind::freeze:
      if (target.cgroup_path.empty()) return fail(invalid("this action needs --unit or --cgroup"));
      break;
    case ActionKind::deny_credential: {
      if (request.credential_path.empty()) return fail(invalid("deny_credential needs --credential"));
      auto credential = credential_lookup_(request.credential_path);
      if (!credential) {
        return fail(Error{ENOENT, fmt::format("{} is not a catalogued credential on this host (nothing watches its "
                                              "inode, so the kernel could not deny it)",
                                              request.credential_path)});
      }
      target.credential_path = credential->path;
      target.credential_id = credential->credential_id;
      break;
    }
    case ActionKind::kill_process:
    case ActionKind::kill_session:
      if (target.pid == 0) return fail(invalid("this action needs --pid"));
      break;
  }

  if (request.action == ActionKind::block_egress) {
    for (const auto& text : request.destinations) {
      auto parsed = containment::parse_egress_destination(text);
      if (!parsed) return fail(parsed.error());
      target.destinations.push_back(parsed->to_string());
    }
  } else if (!request.destinations.empty()) {
    return fail(invalid("destinations apply to block_egress only"));
  }
  handle.target = target;
  if (auto ok = check_target_locked(handle); !ok) return fail(ok.error());

  switch (request.action) {
    case ActionKind::block_egress:
      handle.rollback_operation =
          fmt::format("delete nhg_egress_blocks[cgroup {}]{}", target.cgroup_id,
                      target.destinations.empty() ? "" : fmt::format(" and its {} listed destination(s)",
                                                                     target.destinations.size()));
      break;
    case ActionKind::deny_credential:
      handle.rollback_operation = fmt::format("delete nhg_credential_denies[credential {}, cgroup {}]",
                                              target.credential_id, target.cgroup_id);
      break;
    case ActionKind::freeze:
      handle.rollback_operation = fmt::format("write 0 to {}{}/cgroup.freeze", cgroup2_root_, target.cgroup_path);
      break;
    case ActionKind::kill_process:
    case ActionKind::kill_session:
      handle.rollback_operation = "none: a killed process cannot be restored";
      break;
  }
  return handle;
}

Result<RollbackHandle> ContainmentExecutor::apply_locked(RollbackHandle handle, std::string_view actor, bool record,
                                                        std::string_view note) {
  const auto& target = handle.target;
  if (!containment::is_reversible(handle.action)) {
    std::string killed;
    if (handle.action == ActionKind::kill_process) {
      auto ok = containment::kill_process(static_cast<pid_t>(target.pid), target.pid_start_ns, protected_);
      if (!ok) {
        if (!record) (void)ledger_.transition(handle.handle, ActionState::failed, actor, note, ok.error().message);
        return fail(ok.error());
      }
      killed = fmt::format("pid {}", target.pid);
    } else {
      auto ok = containment::kill_session(static_cast<pid_t>(target.pid), target.pid_start_ns, protected_);
      if (!ok) {
        if (!record) (void)ledger_.transition(handle.handle, ActionState::failed, actor, note, ok.error().message);
        return fail(ok.error());
      }
      std::vector<std::string> pids;
      for (const auto& p : *ok) pids.push_back(std::to_string(p.pid));
      killed = fmt::format("pids {}", fmt::join(pids, ","));
    }
    Result<void> recorded;
    if (record) {
      handle.state = ActionState::irreversible;
      handle.rollback_operation += fmt::format(" (killed {})", killed);
      recorded = ledger_.record(handle, actor, "applied");
    } else {
      auto moved = ledger_.transition(handle.handle, ActionState::irreversible, actor,
                                      fmt::format("{}: killed {}", note, killed));
      if (moved) handle = *moved;
      else recorded = fail(moved.error());
    }
    if (!recorded) {
      spdlog::error("{} {} of {} was carried out ({}) but the ledger could not record it: {}", handle.handle,
                    containment::to_string(handle.action), target.describe(), killed, recorded.error().message);
      return fail(recorded.error());
    }
    spdlog::warn("contained {}: {} {} ({}), irreversible; rule {}, reason: {}", handle.handle,
                 containment::to_string(handle.action), target.describe(), killed, handle.rule, handle.reason);
    return handle;
  }

  // The TTL runs from the moment the action takes effect (for a held one: its approval).
  const int64_t ttl_ns = handle.expires_at_ns.value_or(handle.created_at_ns) - handle.created_at_ns;
  if (record) {
    handle.state = ActionState::active;
    if (auto recorded = ledger_.record(handle, actor, note); !recorded) return fail(recorded.error());
  } else {
    const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
    auto activated = ledger_.activate(handle.handle, now + ttl_ns, clock_ns(CLOCK_BOOTTIME) + static_cast<uint64_t>(ttl_ns),
                                      actor, note);
    if (!activated) return fail(activated.error());
    handle = *activated;
  }
  Result<void> applied;
  switch (handle.action) {
    case ActionKind::block_egress: {
      std::vector<containment::EgressDestination> destinations;
      for (const auto& text : handle.target.destinations) {
        auto parsed = containment::parse_egress_destination(text);
        if (!parsed) {
          applied = fail(parsed.error());
          break;
        }
        destinations.push_back(*parsed);
      }
      if (!applied) break;
      applied = sensor_.apply_egress_block({.cgroup_id = handle.target.cgroup_id,
                                            .expires_at_boot_ns = handle.expires_at_boot_ns,
                                            .rule_id = kernel_rule_id(handle.handle),
                                            .destinations = destinations});
      break;
    }
    case ActionKind::deny_credential:
      applied = sensor_.apply_credential_deny(
          {.credential_id = handle.target.credential_id, .pad = 0, .cgroup_id = handle.target.cgroup_id},
          {.expires_at_ns = handle.expires_at_boot_ns, .rule_id = kernel_rule_id(handle.handle), .pad = 0});
      break;
    case ActionKind::freeze:
      applied = containment::freeze(cgroup2_root_ + handle.target.cgroup_path);
      break;
    default:
      break;
  }
  if (!applied) {
    (void)ledger_.transition(handle.handle, ActionState::failed, "agent", "apply failed", applied.error().message);
    return fail(applied.error());
  }
  spdlog::warn("contained {}: {} {} until {}; rule {}, reason: {}; rollback: {}", handle.handle,
               containment::to_string(handle.action), handle.target.describe(),
               format_rfc3339_ns(static_cast<uint64_t>(*handle.expires_at_ns)), handle.rule, handle.reason,
               handle.rollback_operation);
  return handle;
}

Result<void> ContainmentExecutor::undo_locked(const RollbackHandle& handle) {
  const auto& t = handle.target;
  switch (handle.action) {
    case ActionKind::block_egress:
      return sensor_.remove_egress_block(t.cgroup_id);
    case ActionKind::deny_credential:
      return sensor_.remove_credential_deny({.credential_id = t.credential_id, .pad = 0, .cgroup_id = t.cgroup_id});
    case ActionKind::freeze: {
      auto thawed = containment::thaw(cgroup2_root_ + t.cgroup_path);
      // A cgroup that no longer exists is not frozen: nothing is left to undo.
      if (!thawed && thawed.error().code == ENOENT) return {};
      return thawed;
    }
    case ActionKind::kill_process:
    case ActionKind::kill_session:
      return fail(refused("a kill cannot be rolled back"));
  }
  return {};
}

Result<RollbackHandle> ContainmentExecutor::rollback(std::string_view handle_id, std::string_view actor,
                                                     std::string_view note) {
  std::lock_guard lock(mutex_);
  auto handle = ledger_.get(handle_id);
  if (!handle) return fail(handle.error());
  if (handle->state == ActionState::irreversible) {
    return fail(refused(fmt::format("{} ({}) is irreversible: there is nothing to roll back", handle->handle,
                                    containment::to_string(handle->action))));
  }
  if (handle->state != ActionState::active) return *handle;  // idempotent: expired, rolled back, failed...
  if (auto undone = undo_locked(*handle); !undone) {
    spdlog::error("rollback of {} failed: {}; the action stays active", handle->handle, undone.error().message);
    return fail(undone.error());
  }
  auto done = ledger_.transition(handle->handle, ActionState::rolled_back, actor, note);
  if (!done) return fail(done.error());
  spdlog::warn("rolled back {}: {} {} (by {})", done->handle, containment::to_string(done->action),
               done->target.describe(), actor);
  return *done;
}

void ContainmentExecutor::sweep() {
  std::lock_guard lock(mutex_);
  auto due = ledger_.due_for_expiry(static_cast<int64_t>(clock_ns(CLOCK_REALTIME)));
  if (!due) {
    spdlog::error("sweeper: cannot list expired actions: {}", due.error().message);
    return;
  }
  for (const auto& handle : *due) {
    if (auto undone = undo_locked(handle); !undone) {
      spdlog::error("sweeper: {} expired but undoing it failed: {}", handle.handle, undone.error().message);
      (void)ledger_.transition(handle.handle, ActionState::failed, "sweeper", "expiry undo failed",
                               undone.error().message);
      continue;
    }
    if (auto expired = ledger_.transition(handle.handle, ActionState::expired, "sweeper", "TTL reached"); expired) {
      spdlog::info("expired {}: {} {} (TTL reached)", handle.handle, containment::to_string(handle.action),
                   handle.target.describe());
    }
  }
}

void ContainmentExecutor::reconcile() {
  {
    std::lock_guard lock(mutex_);
    auto active = ledger_.list({.states = {ActionState::active}});
    auto blocks = sensor_.egress_blocks();
    auto denies = sensor_.credential_denies();
    if (!active || !blocks || !denies) {
      spdlog::error("reconcile: cannot read the ledger or the pinned maps; leaving everything as it is");
      return;
    }
    const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
    for (const auto& handle : *active) {
      if (handle.expires_at_ns && *handle.expires_at_ns <= now) continue;  // the sweep below expires it
      const auto& t = handle.target;
      std::string vanished;
      if (handle.action == ActionKind::block_egress) {
        bool found = false;
        for (const auto& [cgroup, block] : *blocks) found |= cgroup == t.cgroup_id && block.rule_id == kernel_rule_id(handle.handle);
        if (!found) vanished = fmt::format("nhg_egress_blocks has no entry for cgroup {}", t.cgroup_id);
      } else if (handle.action == ActionKind::deny_credential) {
        bool found = false;
        for (const auto& [key, value] : *denies) found |= key.credential_id == t.credential_id && key.cgroup_id == t.cgroup_id;
        if (!found) vanished = fmt::format("nhg_credential_denies has no entry for credential {} in cgroup {}", t.credential_id, t.cgroup_id);
      } else if (handle.action == ActionKind::freeze) {
        auto frozen = containment::is_frozen(cgroup2_root_ + t.cgroup_path);
        if (!frozen || !*frozen) vanished = fmt::format("cgroup {} is not frozen", t.cgroup_path);
      }
      if (!vanished.empty()) {
        spdlog::error("reconcile: {} ({} {}) is active in the ledger but its kernel state vanished: {}; marked failed",
                      handle.handle, containment::to_string(handle.action), t.describe(), vanished);
        (void)ledger_.transition(handle.handle, ActionState::failed, "reconcile", "kernel state vanished", vanished);
      } else {
        spdlog::info("reconcile: adopted {} ({} {}), active until {}", handle.handle,
                     containment::to_string(handle.action), t.describe(),
                     handle.expires_at_ns ? format_rfc3339_ns(static_cast<uint64_t>(*handle.expires_at_ns)) : "-");
      }
    }
    for (const auto& [cgroup, block] : *blocks) {
      bool owned = false;
      for (const auto& handle : *active) owned |= handle.target.cgroup_id == cgroup && handle.action == ActionKind::block_egress;
      if (!owned && block.expires_at_ns > clock_ns(CLOCK_BOOTTIME)) {
        spdlog::warn("reconcile: pinned egress block on cgroup {} (rule {}) has no active ledger entry; left in place "
                     "until it expires in the kernel",
                     cgroup, block.rule_id);
      }
    }
  }
  sweep();
}

}  // namespace nhiguard::daemon
