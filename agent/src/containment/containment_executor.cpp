#include "containment/containment_executor.h"

#include <algorithm>
#include <filesystem>
#include <tuple>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "containment/cgroup_freezer.h"
#include "containment/egress_destination.h"
#include "containment/process_killer.h"
#include "common/ulid.h"

namespace nhiguard::containment {
namespace {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;

constexpr auto kMaxTtl = std::chrono::hours(24);

Error refused(std::string message) {
  return Error{EPERM, std::move(message)};
}
Error invalid(std::string message) {
  return Error{EINVAL, std::move(message)};
}

nhg_deny_key deny_key_of(const RollbackHandle& h) {
  return {.credential_id = h.target.credential_id, .pad = 0, .cgroup_id = h.target.cgroup_id};
}

// The kernel key two actions share: same kind, and the same cgroup (and credential for denies).
bool same_key(const RollbackHandle& a, const RollbackHandle& b) {
  if (a.action != b.action) return false;
  switch (a.action) {
    case ActionKind::block_egress:
      return a.target.cgroup_id == b.target.cgroup_id;
    case ActionKind::deny_credential:
      return a.target.cgroup_id == b.target.cgroup_id && a.target.credential_id == b.target.credential_id;
    case ActionKind::freeze:
      return a.target.cgroup_path == b.target.cgroup_path;
    default:
      return false;
  }
}

// The one that decides a shared entry's expiry (and whose rule id the kernel reports).
const RollbackHandle& latest_expiry(const std::vector<RollbackHandle>& sharing) {
  return *std::max_element(sharing.begin(), sharing.end(), [](const RollbackHandle& a, const RollbackHandle& b) {
    return a.expires_at_boot_ns < b.expires_at_boot_ns;
  });
}

// Level of a cgroup below the root ("/a/b" is at level 2): the level the kernel's ancestor walks
// must reach to find it.
size_t cgroup_level(const std::string& cgroup_path) {
  size_t level = 0;
  for (size_t i = 0; i < cgroup_path.size(); ++i) {
    if (cgroup_path[i] != '/' && (i == 0 || cgroup_path[i - 1] == '/')) ++level;
  }
  return level;
}

// Every process listed in a cgroup.procs of the subtree (the top included); processes that exit
// meanwhile are skipped.
Result<std::vector<kernel::FollowedProcess>> processes_in_subtree(const std::string& cgroup2_root,
                                                                  const std::string& cgroup_path) {
  namespace fs = std::filesystem;
  const fs::path top = fs::path(cgroup2_root) / cgroup_path.substr(cgroup_path.starts_with('/') ? 1 : 0);
  std::vector<fs::path> dirs{top};
  auto walked =
      containment::walk_directories(top.string(), [&](const std::string& below) { dirs.push_back(top / below); });
  if (!walked) return fail(walked.error());
  std::vector<kernel::FollowedProcess> out;
  for (const auto& dir : dirs) {
    for (pid_t pid : containment::read_cgroup_procs(dir.string())) {
      auto facts = containment::read_process_facts("/proc", pid);
      if (!facts) continue;  // exited meanwhile
      out.push_back({.tgid = static_cast<uint32_t>(pid), .start_ns = facts->start_ns});
    }
  }
  return out;
}

}  // namespace

ContainmentExecutor::ContainmentExecutor(kernel::EnforcementMaps& maps, ledger::RollbackLedger& ledger,
                                         containment::ProtectedTargets& protected_targets,
                                         containment::TargetResolver& resolver, std::string cgroup2_root,
                                         CredentialLookup credential_lookup, const Clock& clock)
    : maps_(maps),
      ledger_(ledger),
      protected_(protected_targets),
      resolver_(resolver),
      cgroup2_root_(std::move(cgroup2_root)),
      credential_lookup_(std::move(credential_lookup)),
      clock_(clock) {}

void ContainmentExecutor::set_alert_sink(AlertSink sink) {
  std::lock_guard lock(mutex_);
  alert_sink_ = std::move(sink);
}

void ContainmentExecutor::alert_locked(std::string_view kind, const std::string& message) {
  if (alert_sink_) alert_sink_(kind, message);
}

uint32_t ContainmentExecutor::kernel_rule_id(std::string_view handle) {
  uint32_t hash = 2166136261u;  // FNV-1a: stable, and 0 is reserved for "no rule"
  for (char c : handle) hash = (hash ^ static_cast<uint8_t>(c)) * 16777619u;
  return hash == 0 ? 1 : hash;
}

Result<RollbackHandle> ContainmentExecutor::contain(const ContainRequestSpec& request, std::string_view actor) {
  std::lock_guard lock(mutex_);
  auto prepared = prepare_locked(request);
  auto result = prepared ? execute_locked(std::move(*prepared), actor, /*record=*/true, "applied") : prepared;
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
  // Nothing is applied, so nothing is lost by refusing when the ledger cannot take the row.
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
  auto handle = get_locked(handle_id);
  if (!handle) return fail(handle.error());
  if (handle->state != ActionState::held) {
    return fail(invalid(fmt::format("{} is {}, not held: there is nothing to approve", handle->handle,
                                    containment::to_string(handle->state))));
  }
  if (auto ok = check_target_locked(*handle); !ok) {
    (void)transition_locked(*handle, ActionState::failed, actor, fmt::format("{}: refused", note), ok.error().message);
    return fail(ok.error());
  }
  auto applied = execute_locked(std::move(*handle), actor, /*record=*/false, note);
  if (applied) spdlog::warn("approved {} (by {})", applied->handle, actor);
  return applied;
}

Result<RollbackHandle> ContainmentExecutor::reject(std::string_view handle_id, std::string_view actor,
                                                   std::string_view note) {
  std::lock_guard lock(mutex_);
  auto handle = get_locked(handle_id);
  if (!handle) return fail(handle.error());
  const ActionState before = handle->state;
  auto rejected = transition_locked(*handle, ActionState::rejected, actor, note);
  if (!rejected) return rejected;
  if (before != rejected->state) {
    spdlog::warn("rejected {}: {} {} (by {})", rejected->handle, containment::to_string(rejected->action),
                 rejected->target.describe(), actor);
  }
  return rejected;
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
  handle.handle = new_handle_id();
  handle.action = request.action;
  handle.rule = request.rule;
  handle.reason = request.reason;
  handle.trigger_event_ids = request.trigger_event_ids;
  handle.created_at_ns = static_cast<int64_t>(clock_.wall_ns());
  handle.updated_at_ns = handle.created_at_ns;
  handle.boot_id = clock_.boot_id();
  if (reversible) {
    const auto ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(request.ttl).count();
    handle.expires_at_ns = handle.created_at_ns + ttl_ns;
    handle.expires_at_boot_ns = clock_.boot_ns() + static_cast<uint64_t>(ttl_ns);
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
  if ((request.action == ActionKind::block_egress || request.action == ActionKind::deny_credential) &&
      cgroup_level(target.cgroup_path) > NHG_MAX_CGROUP_DEPTH) {
    return fail(
        invalid(fmt::format("cgroup {} is {} levels below the cgroup root; the kernel programs find blocks "
                            "and denies up to level {} only, so this one would never match: contain a "
                            "cgroup above it (or freeze it)",
                            target.cgroup_path, cgroup_level(target.cgroup_path), NHG_MAX_CGROUP_DEPTH)));
  }
  if (auto ok = check_target_locked(handle); !ok) return fail(ok.error());

  switch (request.action) {
    case ActionKind::block_egress:
      handle.rollback_operation = fmt::format(
          "delete nhg_egress_blocks[cgroup {}]{}", target.cgroup_id,
          target.destinations.empty() ? ""
                                      : fmt::format(" and its {} listed destination(s)", target.destinations.size()));
      break;
    case ActionKind::deny_credential:
      handle.rollback_operation =
          fmt::format("delete nhg_credential_denies[credential {}, cgroup {}]", target.credential_id, target.cgroup_id);
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

Result<RollbackHandle> ContainmentExecutor::execute_locked(RollbackHandle handle, std::string_view actor, bool record,
                                                           std::string_view note) {
  const auto& target = handle.target;
  if (!containment::is_reversible(handle.action)) {
    std::string killed;
    if (handle.action == ActionKind::kill_process) {
      auto ok = containment::kill_process(static_cast<pid_t>(target.pid), target.pid_start_ns, protected_);
      if (!ok) {
        if (!record) (void)transition_locked(handle, ActionState::failed, actor, note, ok.error().message);
        return fail(ok.error());
      }
      killed = fmt::format("pid {}", target.pid);
    } else {
      auto ok = containment::kill_session(static_cast<pid_t>(target.pid), target.pid_start_ns, protected_);
      if (!ok) {
        if (!record) (void)transition_locked(handle, ActionState::failed, actor, note, ok.error().message);
        return fail(ok.error());
      }
      std::vector<std::string> pids;
      for (const auto& p : *ok) pids.push_back(std::to_string(p.pid));
      killed = fmt::format("pids {}", fmt::join(pids, ","));
    }
    if (record) {
      handle.state = ActionState::irreversible;
      handle.rollback_operation += fmt::format(" (killed {})", killed);
      handle = record_locked(handle, actor, note);
    } else {
      auto moved =
          transition_locked(handle, ActionState::irreversible, actor, fmt::format("{}: killed {}", note, killed));
      if (!moved) return fail(moved.error());
      handle = *moved;
    }
    spdlog::warn("contained {}: {} {} ({}), irreversible; rule {}, reason: {}", handle.handle,
                 containment::to_string(handle.action), target.describe(), killed, handle.rule, handle.reason);
    return handle;
  }

  // The TTL runs from the moment the action takes effect (for a held one: its approval).
  ledger::Expiry expiry{
      .wall_ns = *handle.expires_at_ns, .boot_ns = handle.expires_at_boot_ns, .boot_id = handle.boot_id};
  if (!record) {
    const int64_t ttl_ns = handle.expires_at_ns.value_or(handle.created_at_ns) - handle.created_at_ns;
    expiry = {.wall_ns = static_cast<int64_t>(clock_.wall_ns()) + ttl_ns,
              .boot_ns = clock_.boot_ns() + static_cast<uint64_t>(ttl_ns),
              .boot_id = clock_.boot_id()};
  }
  RollbackHandle in_force = handle;
  in_force.state = ActionState::active;
  in_force.expires_at_ns = expiry.wall_ns;
  in_force.expires_at_boot_ns = expiry.boot_ns;
  in_force.boot_id = expiry.boot_id;

  // Enforcement first: it holds whatever the ledger does next.
  if (auto applied = enforce_locked(in_force); !applied) {
    if (record) {
      // Nothing is in force: the row is worth writing, not worth keeping the action in memory for.
      handle.state = ActionState::failed;
      handle.last_error = applied.error().message;
      if (auto recorded = ledger_.record(handle, "agent", "apply failed"); !recorded) {
        spdlog::error("{}: the failed apply could not be recorded either: {}", handle.handle, recorded.error().message);
      }
    } else {
      (void)transition_locked(handle, ActionState::failed, "agent", "apply failed", applied.error().message);
    }
    return fail(applied.error());
  }
  if (record) {
    handle = record_locked(in_force, actor, note);
  } else {
    auto activated = transition_locked(handle, ActionState::active, actor, note, {}, expiry);
    if (!activated) return fail(activated.error());
    handle = *activated;
  }
  spdlog::warn("contained {}: {} {} until {}; rule {}, reason: {}; rollback: {}", handle.handle,
               containment::to_string(handle.action), handle.target.describe(),
               format_rfc3339_ns(static_cast<uint64_t>(*handle.expires_at_ns)), handle.rule, handle.reason,
               handle.rollback_operation);
  return handle;
}

// --- kernel side --------------------------------------------------------------------------------

Result<std::vector<RollbackHandle>> ContainmentExecutor::sharing_key_locked(const RollbackHandle& subject,
                                                                            const std::set<std::string>& ending_ids,
                                                                            const RollbackHandle* adding) {
  auto active = active_locked();
  if (!active) return active;
  const std::string boot = clock_.boot_id();
  const uint64_t now = clock_.boot_ns();
  std::vector<RollbackHandle> sharing;
  for (auto& h : *active) {
    if (!same_key(h, subject) || ending_ids.contains(h.handle) || (adding && h.handle == adding->handle)) continue;
    // Another boot's values mean nothing here (reconcile re-applies or lapses those); a freeze has
    // no kernel expiry, so only the sweeper's boot clock says it is over.
    if (h.boot_id != boot || (h.expires_at_boot_ns != 0 && h.expires_at_boot_ns <= now)) continue;
    sharing.push_back(std::move(h));
  }
  if (adding) sharing.push_back(*adding);
  return sharing;
}

Result<void> ContainmentExecutor::write_block_key_locked(uint64_t cgroup_id,
                                                         const std::vector<RollbackHandle>& sharing) {
  if (sharing.empty()) return maps_.remove_egress_block(cgroup_id);
  const bool all = std::any_of(sharing.begin(), sharing.end(),
                               [](const RollbackHandle& h) { return h.target.destinations.empty(); });
  std::vector<containment::EgressDestination> destinations;
  std::set<std::string> seen;
  if (!all) {
    for (const auto& h : sharing) {
      for (const auto& text : h.target.destinations) {
        if (!seen.insert(text).second) continue;
        auto parsed = containment::parse_egress_destination(text);
        if (!parsed) return fail(parsed.error());
        destinations.push_back(*parsed);
      }
    }
  }
  const RollbackHandle& latest = latest_expiry(sharing);
  return maps_.apply_egress_block({.cgroup_id = cgroup_id,
                                   .expires_at_boot_ns = latest.expires_at_boot_ns,
                                   .rule_id = kernel_rule_id(latest.handle),
                                   .destinations = destinations});
}

Result<void> ContainmentExecutor::write_deny_key_locked(const nhg_deny_key& key,
                                                        const std::vector<RollbackHandle>& sharing) {
  if (sharing.empty()) return maps_.remove_credential_deny(key);
  const RollbackHandle& latest = latest_expiry(sharing);
  return maps_.apply_credential_deny(
      key, {.expires_at_ns = latest.expires_at_boot_ns, .rule_id = kernel_rule_id(latest.handle), .pad = 0});
}

void ContainmentExecutor::follow_target_locked(const RollbackHandle& adding) {
  const auto& target = adding.target;
  // Twice: a child forked after the first listing but before its parent's entry was written has no
  // entry of its own yet, and is still in the cgroup for the second.
  for (int pass = 0; pass < 2; ++pass) {
    auto processes = processes_in_subtree(cgroup2_root_, target.cgroup_path);
    Result<void> followed = processes ? maps_.follow_processes(target.cgroup_id, *processes) : Result<void>{};
    if (!processes) followed = fail(processes.error());
    if (!followed) {
      const std::string message = fmt::format(
          "{} {} {}: its processes are not all followed ({}); those stay contained while they stay in the cgroup, "
          "not if they move out of it",
          adding.handle, containment::to_string(adding.action), target.describe(), followed.error().message);
      spdlog::warn("{}", message);
      alert_locked("containment_not_followed", message);
      return;
    }
  }
}

Result<bool> ContainmentExecutor::cgroup_contained_locked(uint64_t cgroup_id, const std::set<std::string>& ending_ids) {
  auto active = active_locked();
  if (!active) return fail(active.error());
  const std::string boot = clock_.boot_id();
  const uint64_t now = clock_.boot_ns();
  return std::any_of(active->begin(), active->end(), [&](const RollbackHandle& h) {
    return (h.action == ActionKind::block_egress || h.action == ActionKind::deny_credential) &&
           h.target.cgroup_id == cgroup_id && !ending_ids.contains(h.handle) && h.boot_id == boot &&
           h.expires_at_boot_ns > now;
  });
}

Result<void> ContainmentExecutor::unfollow_if_released_locked(uint64_t cgroup_id,
                                                              const std::set<std::string>& ending_ids) {
  auto contained = cgroup_contained_locked(cgroup_id, ending_ids);
  if (!contained) return fail(contained.error());
  if (*contained) return {};  // another block or deny on the cgroup still follows its processes
  return maps_.unfollow_cgroup(cgroup_id);
}

Result<void> ContainmentExecutor::enforce_locked(const RollbackHandle& adding) {
  switch (adding.action) {
    case ActionKind::block_egress: {
      auto sharing = sharing_key_locked(adding, {}, &adding);
      if (!sharing) return fail(sharing.error());
      if (auto written = write_block_key_locked(adding.target.cgroup_id, *sharing); !written) return written;
      follow_target_locked(adding);
      return {};
    }
    case ActionKind::deny_credential: {
      auto sharing = sharing_key_locked(adding, {}, &adding);
      if (!sharing) return fail(sharing.error());
      if (auto written = write_deny_key_locked(deny_key_of(adding), *sharing); !written) return written;
      follow_target_locked(adding);
      return {};
    }
    case ActionKind::freeze:
      return containment::freeze(cgroup2_root_ + adding.target.cgroup_path);
    default:
      return {};
  }
}

Result<void> ContainmentExecutor::release_locked(const RollbackHandle& ending,
                                                 const std::set<std::string>& ending_ids) {
  switch (ending.action) {
    case ActionKind::block_egress: {
      auto sharing = sharing_key_locked(ending, ending_ids, nullptr);
      if (!sharing) return fail(sharing.error());
      if (auto written = write_block_key_locked(ending.target.cgroup_id, *sharing); !written) return written;
      return unfollow_if_released_locked(ending.target.cgroup_id, ending_ids);
    }
    case ActionKind::deny_credential: {
      auto sharing = sharing_key_locked(ending, ending_ids, nullptr);
      if (!sharing) return fail(sharing.error());
      if (auto written = write_deny_key_locked(deny_key_of(ending), *sharing); !written) return written;
      return unfollow_if_released_locked(ending.target.cgroup_id, ending_ids);
    }
    case ActionKind::freeze: {
      auto sharing = sharing_key_locked(ending, ending_ids, nullptr);
      if (!sharing) return fail(sharing.error());
      if (!sharing->empty()) return {};  // another freeze still holds the cgroup
      auto thawed = containment::thaw(cgroup2_root_ + ending.target.cgroup_path);
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

// --- ledger side --------------------------------------------------------------------------------

void ContainmentExecutor::owe_write_locked(const RollbackHandle& will_be, std::string what, std::string error,
                                           std::function<Result<void>()> write) {
  auto [it, first] = unrecorded_.try_emplace(will_be.handle);
  UnrecordedAction& owed = it->second;
  owed.handle = will_be;
  ++owed.writes_owed;
  if (!error.empty()) owed.ledger_error = error;
  // The retry runs on the sweeper's thread, outside the control command that caused the write:
  // it carries that command's peer, so the history row still names who asked.
  if (const ledger::ControlPeer* current = ledger::ScopedControlPeer::current()) {
    write = [peer = *current, write = std::move(write)]() -> Result<void> {
      const ledger::ScopedControlPeer scope(peer);
      return write();
    };
  }
  pending_.push_back({will_be.handle, what, std::move(write)});
  if (!first) return;  // queued behind a write already owed: the alert for it is out
  owed.since_ns = static_cast<int64_t>(clock_.wall_ns());
  const auto& t = will_be.target;
  std::string instead =
      will_be.state == ActionState::active
          ? (will_be.action == ActionKind::freeze
                 ? fmt::format("the freeze stays in force and the sweeper thaws it at its TTL from "
                               "memory; if the agent stops first, thaw by hand: write 0 to {}{}/"
                               "cgroup.freeze",
                               cgroup2_root_, t.cgroup_path)
                 : std::string("the enforcement stays in force (it expires in the kernel at its TTL)"))
          : std::string("its state is kept in memory");
  const std::string message = fmt::format(
      "{} {} {} ({}) is {} but the ledger could not record it ({}): {}; shown in status as unrecorded, written "
      "once the ledger takes writes again",
      will_be.handle, containment::to_string(will_be.action), t.describe(), what, containment::to_string(will_be.state),
      error, instead);
  spdlog::error("unrecorded action: {}", message);
  alert_locked("unrecorded_action", message);
}

RollbackHandle ContainmentExecutor::record_locked(const RollbackHandle& handle, std::string_view actor,
                                                  std::string_view note) {
  auto write = [this, handle, actor = std::string(actor), note = std::string(note)]() -> Result<void> {
    auto recorded = ledger_.record(handle, actor, note);
    // A retry after a commit whose answer was lost finds its own row: that is success.
    if (!recorded && recorded.error().code == EEXIST) return {};
    return recorded;
  };
  if (unrecorded_.contains(handle.handle)) {
    owe_write_locked(handle, fmt::format("record {}", containment::to_string(handle.state)), {}, std::move(write));
  } else if (auto done = write(); !done) {
    owe_write_locked(handle, fmt::format("record {}", containment::to_string(handle.state)), done.error().message,
                     std::move(write));
  }
  return handle;
}

Result<RollbackHandle> ContainmentExecutor::transition_locked(const RollbackHandle& current, ActionState to,
                                                              std::string_view actor, std::string_view note,
                                                              std::string last_error,
                                                              std::optional<ledger::Expiry> expiry) {
  auto write = [this, handle = current.handle, to, actor = std::string(actor), note = std::string(note), last_error,
                expiry]() -> Result<void> {
    auto moved = expiry ? ledger_.activate(handle, *expiry, actor, note)
                        : ledger_.transition(handle, to, actor, note, last_error);
    if (!moved) return fail(moved.error());
    return {};
  };
  // The state machine is checked here, as the ledger would, so that whatever the ledger answers
  // next is about storage, never about legality.
  if (containment::is_terminal(current.state)) return current;  // idempotent, as the ledger
  if (!ledger::is_allowed_transition(current.action, current.state, to)) {
    return fail(invalid(fmt::format("illegal transition of {} ({}) from {} to {}", current.handle,
                                    containment::to_string(current.action), containment::to_string(current.state),
                                    containment::to_string(to))));
  }
  const std::string what = fmt::format("{} -> {}", containment::to_string(current.state), containment::to_string(to));
  std::string error;
  if (!unrecorded_.contains(current.handle)) {
    auto moved = expiry ? ledger_.activate(current.handle, *expiry, actor, note)
                        : ledger_.transition(current.handle, to, actor, note, last_error);
    if (moved) return moved;
    error = moved.error().message;
  }
  // The ledger did not take it (full, read-only, broken), or it must follow a write still owed:
  // the change holds in memory meanwhile.
  RollbackHandle will_be = current;
  will_be.state = to;
  will_be.updated_at_ns = static_cast<int64_t>(clock_.wall_ns());
  if (!last_error.empty()) will_be.last_error = last_error;
  if (expiry) {
    will_be.expires_at_ns = expiry->wall_ns;
    will_be.expires_at_boot_ns = expiry->boot_ns;
    will_be.boot_id = expiry->boot_id;
  }
  owe_write_locked(will_be, what, error, std::move(write));
  return will_be;
}

RollbackHandle ContainmentExecutor::rebase_locked(const RollbackHandle& current, const ledger::Rebase& rebase,
                                                  std::string_view actor, std::string_view note) {
  RollbackHandle will_be = current;
  will_be.boot_id = rebase.boot_id;
  will_be.expires_at_boot_ns = rebase.expires_at_boot_ns;
  will_be.target.cgroup_id = rebase.cgroup_id;
  will_be.target.credential_id = rebase.credential_id;
  will_be.updated_at_ns = static_cast<int64_t>(clock_.wall_ns());
  auto write = [this, handle = current.handle, rebase, actor = std::string(actor),
                note = std::string(note)]() -> Result<void> {
    auto moved = ledger_.rebase(handle, rebase, actor, note);
    if (!moved) return fail(moved.error());
    return {};
  };
  if (unrecorded_.contains(current.handle)) {
    owe_write_locked(will_be, "rebase", {}, std::move(write));
  } else if (auto done = write(); !done) {
    owe_write_locked(will_be, "rebase", done.error().message, std::move(write));
  }
  return will_be;
}

void ContainmentExecutor::flush_pending_locked() {
  // In order per handle (a record before its transitions); a handle whose write is still refused
  // waits for the next sweep without holding up the others.
  std::set<std::string> waiting;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (waiting.contains(it->handle)) {
      ++it;
      continue;
    }
    auto written = it->write();
    auto owed = unrecorded_.find(it->handle);
    if (!written) {
      if (owed != unrecorded_.end()) owed->second.ledger_error = written.error().message;
      waiting.insert(it->handle);
      ++it;
      continue;
    }
    it = pending_.erase(it);
    if (owed == unrecorded_.end() || --owed->second.writes_owed > 0) continue;
    const RollbackHandle& h = owed->second.handle;
    const std::string message =
        fmt::format("{} {} {} ({}) is now in the ledger; it went unrecorded for {} s", h.handle,
                    containment::to_string(h.action), h.target.describe(), containment::to_string(h.state),
                    (static_cast<int64_t>(clock_.wall_ns()) - owed->second.since_ns) / 1'000'000'000);
    spdlog::warn("unrecorded action recorded: {}", message);
    alert_locked("unrecorded_action_recorded", message);
    unrecorded_.erase(owed);
  }
}

Result<RollbackHandle> ContainmentExecutor::get_locked(std::string_view handle) {
  if (auto owed = unrecorded_.find(handle); owed != unrecorded_.end()) return owed->second.handle;
  return ledger_.get(handle);
}

Result<std::vector<RollbackHandle>> ContainmentExecutor::active_locked() {
  auto active = ledger_.list({.states = {ActionState::active}});
  if (!active) return active;
  std::erase_if(*active, [&](const RollbackHandle& h) { return unrecorded_.contains(h.handle); });
  for (const auto& [id, owed] : unrecorded_) {
    if (owed.handle.state == ActionState::active) active->push_back(owed.handle);
  }
  return active;
}

Result<RollbackHandle> ContainmentExecutor::get(std::string_view handle) {
  std::lock_guard lock(mutex_);
  return get_locked(handle);
}

Result<std::vector<RollbackHandle>> ContainmentExecutor::list(const ledger::ListFilter& filter) {
  std::lock_guard lock(mutex_);
  ledger::ListFilter unlimited = filter;
  unlimited.limit = 0;
  auto listed = ledger_.list(filter.limit == 0 || unrecorded_.empty() ? filter : unlimited);
  if (!listed) return listed;
  std::erase_if(*listed, [&](const RollbackHandle& h) { return unrecorded_.contains(h.handle); });
  for (const auto& [id, owed] : unrecorded_) {
    const auto& h = owed.handle;
    const bool state_ok =
        filter.states.empty() || std::find(filter.states.begin(), filter.states.end(), h.state) != filter.states.end();
    if (state_ok && (!filter.action || *filter.action == h.action)) listed->push_back(h);
  }
  std::sort(listed->begin(), listed->end(), [](const RollbackHandle& a, const RollbackHandle& b) {
    return std::tie(a.created_at_ns, a.handle) > std::tie(b.created_at_ns, b.handle);
  });
  if (filter.limit > 0 && listed->size() > filter.limit) listed->resize(filter.limit);
  return listed;
}

std::vector<UnrecordedAction> ContainmentExecutor::unrecorded() {
  std::lock_guard lock(mutex_);
  std::vector<UnrecordedAction> out;
  for (const auto& [id, owed] : unrecorded_) out.push_back(owed);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.since_ns < b.since_ns; });
  return out;
}

// --- rollback, expiry, reconcile ----------------------------------------------------------------

Result<RollbackHandle> ContainmentExecutor::rollback(std::string_view handle_id, std::string_view actor,
                                                     std::string_view note) {
  std::lock_guard lock(mutex_);
  auto handle = get_locked(handle_id);
  if (!handle) return fail(handle.error());
  if (handle->state == ActionState::irreversible) {
    return fail(refused(fmt::format("{} ({}) is irreversible: there is nothing to roll back", handle->handle,
                                    containment::to_string(handle->action))));
  }
  if (handle->state != ActionState::active) return *handle;  // idempotent: expired, rolled back, failed...
  if (auto undone = release_locked(*handle, {handle->handle}); !undone) {
    spdlog::error("rollback of {} failed: {}; the action stays active", handle->handle, undone.error().message);
    return fail(undone.error());
  }
  auto done = transition_locked(*handle, ActionState::rolled_back, actor, note);
  if (!done) return fail(done.error());
  spdlog::warn("rolled back {}: {} {} (by {})", done->handle, containment::to_string(done->action),
               done->target.describe(), actor);
  return *done;
}

void ContainmentExecutor::sweep() {
  std::lock_guard lock(mutex_);
  flush_pending_locked();
  // The boot clock decides: a step of the wall clock neither lifts a block early nor keeps a freeze.
  const std::string boot = clock_.boot_id();
  const uint64_t now = clock_.boot_ns();
  auto due = ledger_.due_for_expiry(boot, now);
  if (!due) {
    spdlog::error("sweeper: cannot list expired actions: {}", due.error().message);
    return;
  }
  std::erase_if(*due, [&](const RollbackHandle& h) { return unrecorded_.contains(h.handle); });
  for (const auto& [id, owed] : unrecorded_) {
    const auto& h = owed.handle;
    if (h.state == ActionState::active && containment::is_reversible(h.action) && h.boot_id == boot &&
        h.expires_at_boot_ns != 0 && h.expires_at_boot_ns <= now) {
      due->push_back(h);
    }
  }
  std::set<std::string> ending;
  for (const auto& h : *due) ending.insert(h.handle);
  for (const auto& handle : *due) {
    if (auto undone = release_locked(handle, ending); !undone) {
      spdlog::error("sweeper: {} expired but undoing it failed: {}", handle.handle, undone.error().message);
      (void)transition_locked(handle, ActionState::failed, "sweeper", "expiry undo failed", undone.error().message);
      continue;
    }
    if (auto expired = transition_locked(handle, ActionState::expired, "sweeper", "TTL reached"); expired) {
      spdlog::info("expired {}: {} {} (TTL reached)", handle.handle, containment::to_string(handle.action),
                   handle.target.describe());
    }
  }
}

void ContainmentExecutor::reapply_after_reboot_locked(const RollbackHandle& handle) {
  const auto& t = handle.target;
  const int64_t now_wall = static_cast<int64_t>(clock_.wall_ns());
  const int64_t left_ns = handle.expires_at_ns.value_or(0) - now_wall;
  const std::string previous_boot = handle.boot_id.empty() ? std::string("an earlier boot") : handle.boot_id;
  auto lapse = [&](const std::string& why) {
    auto lapsed = transition_locked(handle, ActionState::lapsed_by_reboot, "reconcile", "lapsed by reboot", why);
    const std::string message = fmt::format("{} {} {} lapsed by reboot: {}", handle.handle,
                                            containment::to_string(handle.action), t.describe(), why);
    spdlog::warn("reconcile: {}", message);
    alert_locked("action_lapsed_by_reboot", message);
    if (!lapsed)
      spdlog::error("reconcile: {} could not be marked lapsed_by_reboot: {}", handle.handle, lapsed.error().message);
  };
  if (left_ns <= 0) {
    lapse(fmt::format(
        "the host rebooted (boot {} -> {}) and its TTL ran out at {} (wall clock) before the agent "
        "started again",
        previous_boot, clock_.boot_id(), format_rfc3339_ns(static_cast<uint64_t>(handle.expires_at_ns.value_or(0)))));
    return;
  }
  if (handle.action == ActionKind::freeze) {
    lapse(
        fmt::format("the host rebooted (boot {} -> {}): the frozen processes and the memory kept for evidence "
                    "went with it, and freezing what runs there now is not the same containment, so it is not "
                    "re-applied ({} s of its TTL were left)",
                    previous_boot, clock_.boot_id(), left_ns / 1'000'000'000));
    return;
  }
  // Kernel ids change across boots: the cgroup and the credential are found again by name.
  auto resolved = resolver_.resolve_cgroup(t.cgroup_path);
  if (!resolved) {
    lapse(fmt::format("the host rebooted and its cgroup cannot be found again: {}", resolved.error().message));
    return;
  }
  ledger::Rebase rebase{.boot_id = clock_.boot_id(),
                        .expires_at_boot_ns = clock_.boot_ns() + static_cast<uint64_t>(left_ns),
                        .cgroup_id = resolved->cgroup_id,
                        .credential_id = t.credential_id};
  if (handle.action == ActionKind::deny_credential) {
    auto credential = credential_lookup_(t.credential_path);
    if (!credential) {
      lapse(fmt::format("the host rebooted and {} is no longer a catalogued credential", t.credential_path));
      return;
    }
    rebase.credential_id = credential->credential_id;
  }
  RollbackHandle again = handle;
  again.boot_id = rebase.boot_id;
  again.expires_at_boot_ns = rebase.expires_at_boot_ns;
  again.target.cgroup_id = rebase.cgroup_id;
  again.target.credential_id = rebase.credential_id;
  if (auto ok = check_target_locked(again); !ok) {
    lapse(fmt::format("the host rebooted and its target is now protected: {}", ok.error().message));
    return;
  }
  if (auto applied = enforce_locked(again); !applied) {
    spdlog::error("reconcile: re-applying {} after the reboot failed: {}; marked failed", handle.handle,
                  applied.error().message);
    (void)transition_locked(handle, ActionState::failed, "reconcile", "re-apply after reboot failed",
                            applied.error().message);
    alert_locked("action_lapsed_by_reboot",
                 fmt::format("{} {} {} could not be re-applied after the reboot: {}", handle.handle,
                             containment::to_string(handle.action), t.describe(), applied.error().message));
    return;
  }
  const std::string note = fmt::format("re-applied after reboot (boot {} -> {}) for the {} s left of its TTL",
                                       previous_boot, rebase.boot_id, left_ns / 1'000'000'000);
  (void)rebase_locked(handle, rebase, "reconcile", note);
  const std::string message =
      fmt::format("{} {} {} {}, until {}", handle.handle, containment::to_string(handle.action),
                  again.target.describe(), note, format_rfc3339_ns(static_cast<uint64_t>(*handle.expires_at_ns)));
  spdlog::warn("reconcile: {}", message);
  alert_locked("action_reapplied_after_reboot", message);
}

void ContainmentExecutor::reconcile() {
  {
    std::lock_guard lock(mutex_);
    auto active = ledger_.list({.states = {ActionState::active}});
    auto blocks = maps_.egress_blocks();
    auto denies = maps_.credential_denies();
    if (!active || !blocks || !denies) {
      spdlog::error("reconcile: cannot read the ledger or the pinned maps; leaving everything as it is");
      return;
    }
    const std::string boot = clock_.boot_id();
    const uint64_t now_boot = clock_.boot_ns();
    for (const auto& handle : *active) {
      const auto& t = handle.target;
      if (!handle.boot_id.empty() && handle.boot_id != boot) {
        reapply_after_reboot_locked(handle);
        continue;
      }
      if (!handle.boot_id.empty() && handle.expires_at_boot_ns != 0 && handle.expires_at_boot_ns <= now_boot) {
        continue;  // the sweep below expires it
      }
      std::string vanished;
      if (handle.action == ActionKind::block_egress) {
        bool found = false;
        for (const auto& [cgroup, block] : *blocks) found |= cgroup == t.cgroup_id;
        if (!found) vanished = fmt::format("nhg_egress_blocks has no entry for cgroup {}", t.cgroup_id);
      } else if (handle.action == ActionKind::deny_credential) {
        bool found = false;
        for (const auto& [key, value] : *denies)
          found |= key.credential_id == t.credential_id && key.cgroup_id == t.cgroup_id;
        if (!found)
          vanished = fmt::format("nhg_credential_denies has no entry for credential {} in cgroup {}", t.credential_id,
                                 t.cgroup_id);
      } else if (handle.action == ActionKind::freeze) {
        auto frozen = containment::is_frozen(cgroup2_root_ + t.cgroup_path);
        if (!frozen || !*frozen) vanished = fmt::format("cgroup {} is not frozen", t.cgroup_path);
      }
      if (handle.boot_id.empty()) {
        // Written before boot ids were kept. Its pins still holding it means this boot; without
        // them it may be an earlier one: re-applying is the side that keeps the containment.
        if (!vanished.empty()) {
          reapply_after_reboot_locked(handle);
        } else {
          (void)rebase_locked(handle,
                              {.boot_id = boot,
                               .expires_at_boot_ns = handle.expires_at_boot_ns,
                               .cgroup_id = t.cgroup_id,
                               .credential_id = t.credential_id},
                              "reconcile", "boot id recorded (its kernel state is in this boot's pins)");
        }
        continue;
      }
      if (!vanished.empty()) {
        spdlog::error("reconcile: {} ({} {}) is active in the ledger but its kernel state vanished: {}; marked failed",
                      handle.handle, containment::to_string(handle.action), t.describe(), vanished);
        (void)transition_locked(handle, ActionState::failed, "reconcile", "kernel state vanished", vanished);
      } else {
        spdlog::info("reconcile: adopted {} ({} {}), active until {}", handle.handle,
                     containment::to_string(handle.action), t.describe(),
                     handle.expires_at_ns ? format_rfc3339_ns(static_cast<uint64_t>(*handle.expires_at_ns)) : "-");
      }
    }
    for (const auto& [cgroup, block] : *blocks) {
      bool owned = false;
      for (const auto& handle : *active)
        owned |= handle.target.cgroup_id == cgroup && handle.action == ActionKind::block_egress;
      if (!owned && block.expires_at_ns > now_boot) {
        spdlog::warn(
            "reconcile: pinned egress block on cgroup {} (rule {}) has no active ledger entry; left in place "
            "until it expires in the kernel",
            cgroup, block.rule_id);
      }
    }
  }
  sweep();
}

}  // namespace nhiguard::containment
