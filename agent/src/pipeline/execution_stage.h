// ExecutionStage: carries a decision out through the containment executor, which applies the
// action (through the EnforcementMaps, cgroupfs or a pidfd) and records it in the rollback ledger:
//   dry run  -> recorded `dry_run`, nothing applied
//   hold     -> recorded `held` with its target resolved and checked; a person approves it
//   contain  -> applied, then recorded; counted by the rate limiter
// The target is the offender's cgroup for a reversible action (with the decision's TTL) and the
// process (by pid and start time) for an irreversible one; a deny names the credential read.
// Observe and alert decisions pass with no handle. What became of the decision goes on to the
// decision emission, with the executor's error when the action was due and not carried out.
//
// Thread-safety: the event loop's thread (the executor and rate limiter are thread-safe).
#pragma once

#include "containment/containment_executor.h"
#include "pipeline/stages.h"
#include "policy/rate_limiter.h"

namespace nhiguard::pipeline {

class ExecutionStage final : public DecisionSink {
 public:
  ExecutionStage(containment::ContainmentExecutor& executor, policy::ActionRateLimiter& rate_limiter, OutcomeSink& next)
      : executor_(executor), rate_limiter_(rate_limiter), next_(next) {}

  void on_decision(const policy::Decision& decision, const Trigger& trigger) override;

  // The executor's request for a decision's action (hold or contain).
  static containment::ContainRequestSpec request_for(const policy::Decision& decision,
                                                     const policy::TriggerInput& input);

 private:
  containment::ContainmentExecutor& executor_;
  policy::ActionRateLimiter& rate_limiter_;
  OutcomeSink& next_;
};

}  // namespace nhiguard::pipeline
