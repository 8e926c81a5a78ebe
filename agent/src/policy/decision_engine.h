// DecisionEngine: from one detection event to one decision — which trigger fired, which rule
// answers it, what the outcome is (observe, alert, hold, contain), which action, and which safety
// gates passed or tripped on the way. Pure: no clock, no kernel, no /proc; the daemon gathers the
// facts (GateFacts) and carries the decision out, so every row of the decision table is a unit test.
//
// Triggers, per event:
//   credential read  -> canary_read when the file is a policy canary; otherwise unexpected_reader
//                       when some policy credential entry covers the file and none of the covering
//                       entries lists the reader (readers, or owner) as allowed. A file no entry
//                       covers has no allow-list: no trigger.
//   tainted egress   -> unexpected_egress when the destination is outside both defaults.egress and
//                       the egress of every identities entry that matches the process. Egress
//                       attributed by the cgroup window (taint_inferred) is decided at the rule's
//                       confidence lowered one step (certain -> high -> medium -> low).
//   memory access    -> credential_memory_access, always: the target holds a credential (its taint)
//                       and another process reached into its memory (ptrace attach/seize,
//                       process_vm_readv, /proc/PID/mem or environ). The credential is the target's.
//   block device     -> block_device_read when no selector of block_device_readers (or, unset, the
//                       built-in list) matches the opener. There is no credential: the device is.
// The first rule (file order) with that trigger whose `when` matches answers it; none: no decision.
//
// Outcome, in this order:
//   1. matrix: confidence x impact of the identity's class (default impact when it has none):
//                    impact  low      medium   high     critical
//        confidence low      observe  alert    alert    alert
//                   medium   contain  hold     hold     hold
//                   high     contain  contain  hold     hold
//                   certain  contain  contain  contain  hold
//   2. action: the narrowest action of the rule's response (default block_egress). An irreversible
//      one (kill_*) needs `certain` confidence and an unshared identity (gate `irreversible`);
//      otherwise the next reversible action of the response is taken, or, with none, the outcome
//      is at most hold. An action needs a narrow target: a cgroup other than the root for
//      block_egress/freeze/deny_credential, a live process for kill_* (gate `narrow_target`;
//      tripped: at most alert).
//   3. rule mode caps it: observe -> observe, alert -> alert, hold -> hold, enforce -> as is.
//   4. gates: protected_identity (policy `protected`, a protected class, or the agent's own
//      protected targets: at most alert — never contained, never held); blast_radius (the
//      credential has more than one reader in the union of the declared and learned sets, or the
//      cgroup hosts a protected process: at most hold); rate_limit (this host already took max_actions automated
//      containments in the window: a contain becomes hold and raises an alert).
//   5. dry_run: the rule's dry_run, or the agent in observe mode, turns hold and contain into a
//      recorded "would have" (full decision and handle; nothing applied, nothing waits).
//   6. ttl: every reversible action gets the rule's ttl or the policy default (15m).
//
// Thread-safety: decide() is const and reentrant; the engine holds a shared_ptr<const Policy>.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "containment/action.h"
#include "policy/policy.h"

namespace nhiguard::policy {

enum class Outcome : uint8_t { observe = 1, alert = 2, hold = 3, contain = 4 };
std::string_view to_string(Outcome outcome);

struct DestinationFacts {
  std::array<uint8_t, 16> address{};  // IPv4-mapped for IPv4
  uint16_t port = 0;
  std::string text;  // "192.0.2.7:443"
};

// One detection event.
struct TriggerInput {
  enum class Event : uint8_t { credential_read, tainted_egress, memory_access, block_device_open };
  Event event = Event::credential_read;
  std::vector<std::string> event_ids;
  uint64_t event_boot_ns = 0;  // when the kernel saw the event (CLOCK_BOOTTIME); for reports
  IdentityFacts identity;
  std::optional<CredentialFacts> credential;    // read: the file; egress: the credential it read
  std::optional<DestinationFacts> destination;  // egress only
  std::string device;                           // block device: "/dev/loop0"
  // Egress: the process read nothing itself; its cgroup's window attributed the credential (a
  // pipe's sender). The rule's confidence is lowered one step (gate `inferred_taint`).
  bool taint_inferred = false;
};

std::string_view to_string(TriggerInput::Event event);

// What the daemon knows about the host that the policy cannot: each feeds one gate.
struct GateFacts {
  bool target_protected = false;  // the agent's protected targets refuse the process/cgroup
  std::string target_protected_reason;
  bool cgroup_hosts_protected = false;  // a protected process lives in the offender's cgroup
  std::string cgroup_hosts_protected_reason;
  // Workloads seen reading the credential while learning, as selector descriptions
  // (LearnedSet::readers_of): united with the declared readers by the blast-radius gate.
  std::set<std::string> learned_readers;
  size_t recent_automated_actions = 0;  // containments taken by policy within rate_limit.window
  bool agent_observe_mode = false;      // agent mode `observe`: every hold/contain is a dry run
};

struct GateCheck {
  std::string gate;  // matrix, rule_mode, irreversible, narrow_target, protected_identity, blast_radius,
                     // rate_limit, dry_run, ttl
  bool tripped = false;
  std::string detail;
};

struct Decision {
  std::string rule;
  TriggerKind trigger = TriggerKind::unexpected_reader;
  Confidence confidence = Confidence::medium;
  RuleMode rule_mode = RuleMode::alert;
  std::string identity_class;  // "" = none
  Impact impact = Impact::medium;
  Outcome matrix_outcome = Outcome::observe;  // before mode and gates
  Outcome outcome = Outcome::observe;
  bool dry_run = false;
  bool alert = false;                             // raise an alert even though the outcome is hold (rate limit tripped)
  std::optional<containment::ActionKind> action;  // set for hold and contain
  std::chrono::milliseconds ttl{0};               // reversible actions; 0 otherwise
  std::vector<GateCheck> gates;
  std::string reason;  // one sentence: what happened and why this outcome
};

class DecisionEngine {
 public:
  explicit DecisionEngine(std::shared_ptr<const Policy> policy) : policy_(std::move(policy)) {}

  // nullopt: no trigger fired, or no rule answers it.
  std::optional<Decision> decide(const TriggerInput& input, const GateFacts& facts) const;

  // Which trigger, if any, the event fires (step 0 above); exposed for learning and tests.
  std::optional<TriggerKind> trigger_of(const TriggerInput& input) const;

  // The allowed readers the policy declares for a credential (readers and owner of every covering
  // entry), as selector descriptions ("unit=payments.service"): the declared set of the
  // blast-radius gate.
  std::set<std::string> declared_readers(const CredentialFacts& credential) const;

  // Whether the identity matches a protected selector or a protected class.
  bool is_protected(const IdentityFacts& identity) const;

  // Whether the identity may read block devices without an event (block_device_readers).
  bool block_device_reader_allowed(const IdentityFacts& identity) const;

  const Policy& policy() const { return *policy_; }
  std::shared_ptr<const Policy> shared_policy() const { return policy_; }

 private:
  const IdentityPolicy* class_entry(const IdentityFacts& identity) const;
  bool reader_allowed(const CredentialFacts& credential, const IdentityFacts& identity) const;

  std::shared_ptr<const Policy> policy_;
};

// The matrix of step 1.
Outcome matrix_outcome(Confidence confidence, Impact impact);

}  // namespace nhiguard::policy
