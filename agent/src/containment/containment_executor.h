// ContainmentExecutor: applies one narrow containment action, records it in the rollback ledger
// with its handle, undoes it on rollback or expiry, and reconciles the ledger with the kernel's
// pinned state at start (re-applying what a reboot took away).
//
// Order of effects: enforcement first, record second, so a full or broken disk never means no
// containment. Egress blocks and credential denies carry their expiry into the kernel, which lifts
// them by itself; the kill of kill_* is done. Then the ledger row is written. If that write fails
// (ENOSPC, EIO, EROFS, a lock), the enforcement stays, an `unrecorded_action` alert goes to the
// alert sink with a log line naming what failed, and the action is kept in memory: status lists it
// (unrecorded()), rollback and the sweeper work on it as on a recorded one, and every sweep retries
// the writes it is owed, in order, until the ledger takes them (then an `unrecorded_action_recorded`
// alert). Later state changes of a not-yet-recorded action queue behind its record.
// A freeze has no kernel expiry: its TTL is kept by the sweeper from the in-memory record. If the
// agent stops before the ledger takes the row, nothing remembers the freeze: the log line of the
// alert names the cgroup and the thaw (write 0 to cgroup.freeze) so a person can lift it.
// An apply that fails is recorded `failed` with the error (nothing is in force).
//
// Shared kernel keys: the kernel holds one entry per cgroup for egress blocks and one per
// (credential, cgroup) for denies, so the executor writes each key from every active action on it:
// a deny's entry carries the latest expiry among them; a block's is "all destinations" if any of
// them blocks all, else the union of their destinations, with the latest expiry. Rolling back or
// expiring one action rewrites the entry from the others (deleting it only with the last), so no
// action lifts another's containment. A freeze thaws only when no other active freeze holds the
// cgroup. While no agent runs, a shared block keeps its broadest form until the latest expiry (the
// kernel has one expiry per key): containment never lapses early; the next sweep narrows it.
//
// One clock: TTLs, expiry and the sweeper count in CLOCK_BOOTTIME (the kernel's clock, which no one
// can step) of the boot recorded with each action (Clock::boot_id). Wall-clock times are for
// display and reports, and for one decision only: after a reboot (the action's boot id differs,
// its pins are gone) an egress block or deny whose wall-clock expiry is still ahead is re-applied
// for what is left of it (its cgroup and credential resolved again, ids change across boots); a
// freeze is not (its processes are gone with the boot), nor is anything past its expiry or whose
// target is gone: those become `lapsed_by_reboot`. Both outcomes are logged and alerted.
//
// Containment follows the process: when a block or deny applies, every process of the target's
// subtree carries the target cgroup in the kernel (EnforcementMaps::follow_processes, inherited by
// its children), so moving to another cgroup does not leave the block or deny behind; the last
// block or deny of a cgroup to end (rollback, expiry) removes it from every process. Processes that
// move into the cgroup later are contained by its own entry. Blocks and denies on a cgroup deeper
// than the kernel's walks reach (NHG_MAX_CGROUP_DEPTH levels) are refused: they would never match.
//
// Every target is checked against the protected targets (the agent, its ancestors, PID 1, the
// agent's cgroup, break-glass entries) before anything is applied. Held actions (policy `hold`) are
// recorded with their target resolved and checked; approve() checks again, then applies them as
// contain() would. Dry runs are recorded in state `dry_run` and never touch the kernel.
//
// Thread-safety: all public methods serialize on one mutex (the control socket thread and the
// event loop both call in). The alert sink is called with the mutex held: it must not call back.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue/credential_catalogue.h"
#include "common/clock.h"
#include "common/result.h"
#include "containment/action.h"
#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "kernel/enforcement_maps.h"
#include "ledger/rollback_ledger.h"

namespace nhiguard::containment {

struct ContainRequestSpec {
  containment::ActionKind action = containment::ActionKind::block_egress;
  containment::TargetRequest target;      // --unit / --cgroup / --pid
  std::string credential_path;            // deny_credential
  std::vector<std::string> destinations;  // block_egress: CIDR[:port]; empty = all
  std::chrono::milliseconds ttl{std::chrono::minutes(15)};
  std::string reason;
  std::string rule = "manual";
  std::vector<std::string> trigger_event_ids;
  uint64_t pid_start_ns = 0;  // with target.pid: the process key the decision saw (0 = any start)
  std::string workload_uri;   // the identity, for the record
};

// An action in force (or changed) that the ledger has not taken yet.
struct UnrecordedAction {
  containment::RollbackHandle handle;  // as the ledger will hold it once the writes land
  std::string ledger_error;            // why the last write attempt failed
  int64_t since_ns = 0;                // CLOCK_REALTIME of the first failed write
  size_t writes_owed = 0;              // ledger writes queued for it
};

class ContainmentExecutor {
 public:
  using CredentialLookup = std::function<std::optional<catalogue::ResolvedCredential>(std::string_view path)>;
  // kind ("unrecorded_action", "unrecorded_action_recorded", "action_reapplied_after_reboot",
  // "action_lapsed_by_reboot") and a message with the handle, action and target.
  using AlertSink = std::function<void(std::string_view kind, const std::string& message)>;

  ContainmentExecutor(kernel::EnforcementMaps& maps, ledger::RollbackLedger& ledger,
                      containment::ProtectedTargets& protected_targets, containment::TargetResolver& resolver,
                      std::string cgroup2_root, CredentialLookup credential_lookup, const Clock& clock);

  // Where alerts go (the reporter, once it runs); until set they are only logged.
  void set_alert_sink(AlertSink sink);

  // Applies the action and returns its handle. Refusals (protected target, unknown unit, bad
  // destination) are errors with nothing applied.
  Result<containment::RollbackHandle> contain(const ContainRequestSpec& request, std::string_view actor);

  // A policy `hold`: resolves and checks the target as contain() would, and records the handle in
  // state `held` with nothing applied. Its TTL starts when a person approves it.
  Result<containment::RollbackHandle> hold(const ContainRequestSpec& request, std::string_view actor);

  // A dry run: the handle contain() would have made, recorded in state `dry_run` (dry_run set),
  // nothing applied. A target contain() would refuse is refused here the same way.
  Result<containment::RollbackHandle> record_dry_run(const ContainRequestSpec& request, std::string_view actor);

  // Executes a held action: re-checks the target (it may have become protected), sets its expiry
  // from now, applies it and marks it active (or irreversible). A failure to apply leaves it
  // `failed` with the error. Not held: EINVAL; approving twice is an error.
  Result<containment::RollbackHandle> approve(std::string_view handle, std::string_view actor,
                                              std::string_view note = "approved");

  // Declines a held action (held -> rejected); idempotent on a terminal handle.
  Result<containment::RollbackHandle> reject(std::string_view handle, std::string_view actor,
                                             std::string_view note = "rejected");

  // Undoes an active action (recorded or not yet); idempotent (an expired or rolled-back handle is
  // returned as it is). Other actions on the same kernel key keep theirs in force. Irreversible
  // actions report that they cannot be rolled back (EPERM). `note` goes to the ledger history.
  Result<containment::RollbackHandle> rollback(std::string_view handle, std::string_view actor,
                                               std::string_view note = "rolled back");

  // Retries the ledger writes owed, then expires every action whose TTL has passed on the boot
  // clock: rewrites (or removes) its kernel state and marks it `expired`.
  void sweep();

  // At start: every `active` action is checked against the kernel. Same boot: one whose state
  // vanished is marked `failed` with why. Another boot: re-applied or `lapsed_by_reboot` (header
  // comment). Then sweep(). Kernel entries with no ledger row are logged and left to expire.
  void reconcile();

  // The stored handle, or the in-memory one of an action the ledger has not taken yet.
  Result<containment::RollbackHandle> get(std::string_view handle);
  // The ledger's list with the not-yet-recorded actions merged in (newest first, same filter).
  Result<std::vector<containment::RollbackHandle>> list(const ledger::ListFilter& filter);
  // Actions the ledger owes writes for, oldest first (status shows them).
  std::vector<UnrecordedAction> unrecorded();

  // The kernel's 32-bit id of a handle (in egress events as block_rule_id).
  static uint32_t kernel_rule_id(std::string_view handle);

 private:
  struct PendingWrite {
    std::string handle;
    std::string what;  // "record active", "transition to expired": for log lines
    std::function<Result<void>()> write;
  };

  // Validates, resolves and checks the request and builds its handle (state not yet decided).
  Result<containment::RollbackHandle> prepare_locked(const ContainRequestSpec& request);
  // prepare_locked, then records the handle in `state` (held or dry_run) with nothing applied.
  Result<containment::RollbackHandle> record_unapplied_locked(const ContainRequestSpec& request, std::string_view actor,
                                                              containment::ActionState state, std::string_view note);
  // The protected-target checks of a prepared or stored handle.
  Result<void> check_target_locked(const containment::RollbackHandle& handle);
  // Carries out a prepared (record) or approved (held) handle, then records it (header comment).
  Result<containment::RollbackHandle> execute_locked(containment::RollbackHandle handle, std::string_view actor,
                                                     bool record, std::string_view note);

  // Kernel / cgroupfs side. `adding` is in force from now on even if no list holds it yet;
  // `ending` are no longer (their key is rewritten from the others).
  Result<void> enforce_locked(const containment::RollbackHandle& adding);
  Result<void> release_locked(const containment::RollbackHandle& ending, const std::set<std::string>& ending_ids);
  // Writes the target cgroup into the followed cgroups of every process of its subtree, so the
  // block or deny holds for them after they move out (a failure is logged and alerted: the cgroup's
  // own entry is in force regardless).
  void follow_target_locked(const containment::RollbackHandle& adding);
  // Is the cgroup still the target of an active block or deny of this boot, other than `ending_ids`?
  Result<bool> cgroup_contained_locked(uint64_t cgroup_id, const std::set<std::string>& ending_ids);
  // With the last block or deny on the cgroup ending, its processes no longer carry it.
  Result<void> unfollow_if_released_locked(uint64_t cgroup_id, const std::set<std::string>& ending_ids);
  Result<void> write_block_key_locked(uint64_t cgroup_id, const std::vector<containment::RollbackHandle>& sharing);
  Result<void> write_deny_key_locked(const nhg_deny_key& key, const std::vector<containment::RollbackHandle>& sharing);
  // Active actions of this boot and in force now, recorded or not, sharing `subject`'s kernel key
  // (same kind and key), without `ending_ids`, with `adding` when given.
  Result<std::vector<containment::RollbackHandle>> sharing_key_locked(const containment::RollbackHandle& subject,
                                                                      const std::set<std::string>& ending_ids,
                                                                      const containment::RollbackHandle* adding);

  // Ledger side, tolerant of a ledger that does not take writes (header comment). Each returns the
  // handle as it is (or will be) stored.
  containment::RollbackHandle record_locked(const containment::RollbackHandle& handle, std::string_view actor,
                                            std::string_view note);
  Result<containment::RollbackHandle> transition_locked(const containment::RollbackHandle& current,
                                                        containment::ActionState to, std::string_view actor,
                                                        std::string_view note, std::string last_error = {},
                                                        std::optional<ledger::Expiry> expiry = std::nullopt);
  containment::RollbackHandle rebase_locked(const containment::RollbackHandle& current, const ledger::Rebase& rebase,
                                            std::string_view actor, std::string_view note);
  // Queues a write the ledger refused (or that must follow one still queued for the same handle).
  void owe_write_locked(const containment::RollbackHandle& will_be, std::string what, std::string error,
                        std::function<Result<void>()> write);
  void flush_pending_locked();
  Result<containment::RollbackHandle> get_locked(std::string_view handle);
  Result<std::vector<containment::RollbackHandle>> active_locked();
  void alert_locked(std::string_view kind, const std::string& message);

  // reconcile() for one action of another boot (or of unknown boot with no kernel state).
  void reapply_after_reboot_locked(const containment::RollbackHandle& handle);

  std::mutex mutex_;
  kernel::EnforcementMaps& maps_;
  ledger::RollbackLedger& ledger_;
  containment::ProtectedTargets& protected_;
  containment::TargetResolver& resolver_;
  std::string cgroup2_root_;
  CredentialLookup credential_lookup_;
  const Clock& clock_;
  AlertSink alert_sink_;
  std::deque<PendingWrite> pending_;
  std::map<std::string, UnrecordedAction, std::less<>> unrecorded_;
};

}  // namespace nhiguard::containment
