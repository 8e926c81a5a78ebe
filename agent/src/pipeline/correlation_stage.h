// CorrelationStage: which observations the policy is asked about, and how often.
//
// Not decided on: an open the kernel denied (containment already holds: the reader was killed
// before it read a byte, or BPF LSM refused the open or fd), a write-only open (a tool storing a
// new credential reads nothing), a repeat summary (it counts reads whose first was decided on
// already), an open of a credential the agent no longer lists, a denied egress and an egress of a
// process that read no known credential.
//
// A memory access is decided on when its target's credential is one the catalogue lists; a block
// device open that reached here (its opener is not an allowed reader) always is.
//
// Every other observation feeds the learned set (while learning) and, when the policy has a trigger
// for it, becomes a Trigger for the decision stage, unless an identical trigger (same trigger,
// identity, credential and destination) was passed on within the quiet period: a job that reads its
// token every few seconds must not flood the log, the collector or the ledger, and an action a
// person rolled back is not re-taken at once by the next identical read. Suppressed triggers are
// counted (status decisions.suppressed). The quiet table is bounded; past its bound every trigger is
// decided (nothing is suppressed that could not be remembered).
//
// Thread-safety: the event loop's thread; the count may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "policy/decision_engine.h"
#include "policy/learned_set.h"
#include "pipeline/stages.h"

namespace nhiguard::pipeline {

// The policy's view of an identity and a credential (policy/policy.h), from the agent's.
policy::IdentityFacts identity_facts(const identity::ResolvedIdentity& resolved);
policy::CredentialFacts credential_facts(const catalogue::ResolvedCredential& credential);

class CorrelationStage final : public ObservationSink {
 public:
  static constexpr auto kQuietPeriod = std::chrono::minutes(10);
  static constexpr size_t kMaxQuietTriggers = 65536;

  CorrelationStage(const policy::DecisionEngine& engine, policy::LearnedSet& learned, TriggerSink& next)
      : engine_(engine), learned_(learned), next_(next) {}

  void on_observation(Observation& observation) override;

  // Forgets quiet-period entries older than the period.
  void expire(std::chrono::steady_clock::time_point now);
  uint64_t suppressed() const { return suppressed_.load(); }

 private:
  void correlate(const Trigger& trigger);

  const policy::DecisionEngine& engine_;
  policy::LearnedSet& learned_;
  TriggerSink& next_;
  std::map<std::string, std::chrono::steady_clock::time_point> recent_triggers_;
  std::atomic<uint64_t> suppressed_ = 0;
};

}  // namespace nhiguard::pipeline
