#include "pipeline/decision_stage.h"

#include <sys/types.h>

#include <cerrno>
#include <chrono>

namespace nhiguard::pipeline {

void DecisionStage::on_trigger(const Trigger& trigger) {
  auto decision = engine_.decide(trigger.input, gate_facts(trigger.input));
  if (!decision) return;
  next_.on_decision(*decision, trigger);
}

policy::GateFacts DecisionStage::gate_facts(const policy::TriggerInput& input) {
  policy::GateFacts facts;
  const auto& identity = input.identity;
  if (!identity.cgroup_path.empty()) {
    if (auto ok = protected_.check_cgroup(identity.cgroup_path); !ok && ok.error().code == EPERM) {
      facts.target_protected = true;
      facts.target_protected_reason = ok.error().message;
    } else if (ok) {
      auto contents = protected_.check_cgroup_contents(cgroup2_root_, identity.cgroup_path);
      if (!contents && contents.error().code == EPERM) {
        facts.cgroup_hosts_protected = true;
        facts.cgroup_hosts_protected_reason = contents.error().message;
      }
    }
  }
  if (!facts.target_protected && identity.pid != 0) {
    if (auto ok = protected_.check_process(static_cast<pid_t>(identity.pid), identity.pid_start_ns);
        !ok && ok.error().code == EPERM) {
      facts.target_protected = true;
      facts.target_protected_reason = ok.error().message;
    }
  }
  if (input.credential) facts.learned_readers = learned_.readers_of(*input.credential);
  facts.recent_automated_actions =
      rate_limiter_.recent(std::chrono::steady_clock::now(), engine_.policy().rate_limit.window);
  facts.agent_observe_mode = mode_.load() == config::AgentMode::observe;
  return facts;
}

}  // namespace nhiguard::pipeline
