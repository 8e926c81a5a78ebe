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
  Result<containment::RollbackHandle> contain_locked(const ContainRequestSpec& request, std::string_view actor);

  std::mutex mutex_;
  kernel::KernelSensor& sensor_;
  ledger::RollbackLedger& ledger_;
  containment::ProtectedTargets& protected_;
  containment::TargetResolver& resolver_;
  std::string cgroup2_root_;
  CredentialLookup credential_lookup_;
};

}  // namespace nhiguard::daemon
