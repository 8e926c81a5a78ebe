// DecisionStage: the policy engine decides each trigger with the facts its safety gates need,
// gathered here: whether the target (the process, its cgroup, or a protected process inside that
// cgroup) is protected, the readers learned for the credential, the containments the policy took
// within the rate-limit window, and whether the agent is in observe mode. Only a refusal (EPERM)
// by the protected targets means protected; a process or cgroup that vanished is not a protection.
// A trigger no rule answers goes no further.
//
// Thread-safety: the event loop's thread (the protected targets, learned set, rate limiter and mode
// are shared with the control thread and are thread-safe).
#pragma once

#include <atomic>
#include <string>

#include "config/agent_config.h"
#include "containment/protected_targets.h"
#include "pipeline/stages.h"
#include "policy/decision_engine.h"
#include "policy/learned_set.h"
#include "policy/rate_limiter.h"

namespace nhiguard::pipeline {

class DecisionStage final : public TriggerSink {
 public:
  DecisionStage(const policy::DecisionEngine& engine, containment::ProtectedTargets& protected_targets,
                std::string cgroup2_root, const policy::LearnedSet& learned, policy::ActionRateLimiter& rate_limiter,
                const std::atomic<config::AgentMode>& mode, DecisionSink& next)
      : engine_(engine),
        protected_(protected_targets),
        cgroup2_root_(std::move(cgroup2_root)),
        learned_(learned),
        rate_limiter_(rate_limiter),
        mode_(mode),
        next_(next) {}

  void on_trigger(const Trigger& trigger) override;

 private:
  policy::GateFacts gate_facts(const policy::TriggerInput& input);

  const policy::DecisionEngine& engine_;
  containment::ProtectedTargets& protected_;
  const std::string cgroup2_root_;
  const policy::LearnedSet& learned_;
  policy::ActionRateLimiter& rate_limiter_;
  const std::atomic<config::AgentMode>& mode_;
  DecisionSink& next_;
};

}  // namespace nhiguard::pipeline
