// ContainmentExecutor: applies one narrow containment action, records it in the rollback ledger
// with its handle, undoes it on rollback or expiry, and reconciles the ledger with the kernel's
// pinned state at start.
//
// Order of effects, so that no kernel state ever exists without a ledger row:
//   reversible (block_egress, deny_credential, freeze): record `active` -> apply -> on failure
//   transition to `failed` with the error; irreversible (kill_*): apply -> record `irreversible`
//   (a kill cannot be undone; if the ledger write fails the kill is still logged with its reason).
// Every target is checked against the protected targets (the agent, its ancestors, PID 1, the
// agent's cgroup, break-glass entries) before anything is applied.
//
// TTLs: egress blocks and credential denies carry their expiry into the kernel, which ignores them
// after it with or without an agent; freeze has no kernel-side expiry: the sweeper thaws it, and a
// restarted agent thaws what expired while it was down.
//
// Held actions (policy `hold`) are recorded with their target resolved and checked; approve()
// checks again, then applies them as contain() would. Dry runs are recorded in state `dry_run`
// and never touch the kernel.
//
// Thread-safety: all public methods serialize on one mutex (the control socket thread and the
// event loop both call in).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue/credential_catalogue.h"
#include "common/result.h"
#include "containment/action.h"
#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "kernel/kernel_sensor.h"
#include "ledger/rollback_ledger.h"

namespace nhiguard::daemon {

struct ContainRequestSpec {
  containment::ActionKind action = containment::ActionKind::block_egress;
  containment::TargetRequest target;          // --unit / --cgroup / --pid
  std::string credential_path;                // deny_credential
  std::vector<std::string> destinations;      // block_egress: CIDR[:port]; empty = all
  std::chrono::milliseconds ttl{std::chrono::minutes(15)};
  std::string reason;
  std::string rule = "manual";
  std::vector<std::string> trigger_event_ids;
  uint64_t pid_start_ns = 0;   // with target.pid: the process key the decision saw (0 = any start)
  std::string workload_uri;    // the identity, for the record
};

class ContainmentExecutor {
 public:
  using CredentialLookup = std::function<std::optional<catalogue::ResolvedCredential>(std::string_view path)>;

  ContainmentExecutor(kernel::KernelSensor& sensor, ledger::RollbackLedger& ledger,
                      containment::ProtectedTargets& protected_targets, containment::TargetResolver& resolver,
                      std::string cgroup2_root, CredentialLookup credential_lookup);

  // Applies the action and returns its handle. Refusals (protected target, unknown unit, bad
  // destination, an active block already on that cgroup) are errors with nothing applied.
  Result<containment::RollbackHandle> contain(const ContainRequestSpec& request, std::string_view actor);

  // A policy `hold`: resolves and checks the target as contain() would, and records the handle in
  // state `held` with nothing applied. Its TTL starts when a person approves it.
  Result<containment::RollbackHandle> hold(const ContainRequestSpec& request, std::string_view actor);

  // A dry run: the handle contain() would have made, recorded in state `dry_run` (dry_run set),
  // nothing applied. A target contain() would refuse is refused here the same way.
  Result<containment::RollbackHandle> record_dry_run(const ContainRequestSpec& request, std::string_view actor);

  // Executes a held action: re-checks the target (it may have become protected, or already be
  // blocked), sets its expiry from now, marks it active (or irreversible) and applies it. A failure
  // to apply leaves it `failed` with the error. Not held: EINVAL; approving twice is an error.
  Result<containment::RollbackHandle> approve(std::string_view handle, std::string_view actor,
                                              std::string_view note = "approved");

  // Declines a held action (held -> rejected); idempotent on a terminal handle.
  Result<containment::RollbackHandle> reject(std::string_view handle, std::string_view actor,
                                             std::string_view note = "rejected");

  // Undoes an active action; idempotent (an expired or rolled-back handle is returned as it is).
  // Irreversible actions report that they cannot be rolled back (EPERM). `note` goes to the ledger
  // history (the collector passes the command that asked for it).
  Result<containment::RollbackHandle> rollback(std::string_view handle, std::string_view actor,
                                               std::string_view note = "rolled back");

  // Expires every action whose TTL has passed: removes its kernel state and marks it `expired`.
  void sweep();

  // At start: every `active` action is checked against the kernel; one whose state vanished is
  // marked `failed` with why, one that expired while no agent ran is expired (and a freeze thawed).
  // Kernel entries with no ledger row are logged and left to expire on their own.
  void reconcile();

  // The kernel's 32-bit id of a handle (in egress events as block_rule_id).
  static uint32_t kernel_rule_id(std::string_view handle);

 private:
  Result<void> undo_locked(const containment::RollbackHandle& handle);
  // Validates, resolves and checks the request and builds its handle (state not yet decided).
  Result<containment::RollbackHandle> prepare_locked(const ContainRequestSpec& request);
  // prepare_locked, then records the handle in `state` (held or dry_run) with nothing applied.
  Result<containment::RollbackHandle> record_unapplied_locked(const ContainRequestSpec& request,
                                                              std::string_view actor, containment::ActionState state,
                                                              std::string_view note);
  // The protected-target and one-block-per-cgroup checks of a prepared or stored handle.
  Result<void> check_target_locked(const containment::RollbackHandle& handle);
  // Applies a handle to the kernel / cgroupfs / processes: records it first (reversible kinds,
  // `record` true) or transitions it afterwards (held ones), per the ordering above.
  Result<containment::RollbackHandle> apply_locked(containment::RollbackHandle handle, std::string_view actor,
                                                   bool record, std::string_view note);

  std::mutex mutex_;
  kernel::KernelSensor& sensor_;
  ledger::RollbackLedger& ledger_;
  containment::ProtectedTargets& protected_;
  containment::TargetResolver& resolver_;
  std::string cgroup2_root_;
  CredentialLookup credential_lookup_;
};

}  // namespace nhiguard::daemon
