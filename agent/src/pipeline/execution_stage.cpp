#include "pipeline/execution_stage.h"

#include <chrono>
#include <optional>

namespace nhiguard::pipeline {

containment::ContainRequestSpec ExecutionStage::request_for(const policy::Decision& decision,
                                                            const policy::TriggerInput& input) {
  const auto& identity = input.identity;
  containment::ContainRequestSpec spec;
  spec.action = *decision.action;
  if (containment::is_reversible(spec.action)) {
    spec.target.cgroup = identity.cgroup_path;
    spec.ttl = decision.ttl;
  } else {
    spec.target.pid = static_cast<pid_t>(identity.pid);
    spec.pid_start_ns = identity.pid_start_ns;
  }
  if (spec.action == containment::ActionKind::deny_credential && input.credential) {
    spec.credential_path = input.credential->path;
  }
  spec.reason = decision.reason;
  spec.rule = decision.rule;
  spec.trigger_event_ids = input.event_ids;
  spec.workload_uri = identity.uri;
  return spec;
}

void ExecutionStage::on_decision(const policy::Decision& decision, const Trigger& trigger) {
  std::optional<containment::RollbackHandle> handle;
  std::string error;
  if (decision.outcome >= policy::Outcome::hold && decision.action) {
    const auto spec = request_for(decision, trigger.input);
    Result<containment::RollbackHandle> result;
    if (decision.dry_run) {
      result = executor_.record_dry_run(spec, "agent");
    } else if (decision.outcome == policy::Outcome::hold) {
      result = executor_.hold(spec, "agent");
    } else {
      result = executor_.contain(spec, "agent");
      if (result) rate_limiter_.record(std::chrono::steady_clock::now());
    }
    if (result) {
      handle = std::move(*result);
    } else {
      error = result.error().message;
    }
  }
  next_.on_outcome(Outcome{
      .decision = decision, .trigger = trigger, .handle = handle ? &*handle : nullptr, .error = std::move(error)});
}

}  // namespace nhiguard::pipeline
