#include "pipeline/correlation_stage.h"

#include <sys/socket.h>
#include <time.h>

#include <fmt/format.h>

#include "common/clock.h"
#include "records/block_device_record.h"

namespace nhiguard::pipeline {

policy::IdentityFacts identity_facts(const identity::ResolvedIdentity& resolved) {
  const auto& w = resolved.workload;
  const auto& p = resolved.process;
  return policy::IdentityFacts{
      .uri = w.uri,
      .kind = std::string(identity::to_string(w.kind)),
      .unit = w.unit,
      .user_unit = w.user_unit,
      .session = w.session,
      .session_uid = w.session_uid,
      .container_id = w.container_id,
      .pod_uid = w.pod_uid,
      .exe = p.exe,
      .uid = p.uid,
      .cgroup_path = w.cgroup_path,
      .cgroup_id = w.cgroup_id,
      .pid = p.pid,
      .pid_start_ns = p.start_ns,
      .comm = p.comm,
  };
}

policy::CredentialFacts credential_facts(const catalogue::ResolvedCredential& credential) {
  return {credential.credential_id, credential.path, credential.aliases, credential.credential_class};
}

void CorrelationStage::on_observation(Observation& observation) {
  if (const auto* device = observation.block_device()) {
    correlate(Trigger{.input = {.event = policy::TriggerInput::Event::block_device_open,
                                .event_ids = {observation.event_id},
                                .event_boot_ns = device->ts_ns,
                                .identity = identity_facts(observation.identity),
                                .device = records::block_device_path(*device)},
                      .identity = observation.identity});
    return;
  }
  if (!observation.credential_known) return;
  if (const auto* access = observation.memory_access()) {
    correlate(Trigger{.input = {.event = policy::TriggerInput::Event::memory_access,
                                .event_ids = {observation.event_id},
                                .event_boot_ns = access->ts_ns,
                                .identity = identity_facts(observation.identity),
                                .credential = credential_facts(*observation.credential)},
                      .identity = observation.identity});
    return;
  }
  if (const auto* open = observation.open()) {
    if (open->denied || !open->readable() || open->repeat_summary) return;
    correlate(Trigger{.input = {.event = policy::TriggerInput::Event::credential_read,
                                .event_ids = {observation.event_id},
                                .event_boot_ns = open->ts_ns,
                                .identity = identity_facts(observation.identity),
                                .credential = credential_facts(*observation.credential)},
                      .identity = observation.identity});
    return;
  }
  const auto& egress = *observation.egress();
  if (egress.denied) return;
  policy::DestinationFacts destination{.address = egress.address, .port = egress.port};
  destination.text = egress.family == AF_INET6 ? fmt::format("[{}]:{}", egress.address_string(), egress.port)
                                               : fmt::format("{}:{}", egress.address_string(), egress.port);
  correlate(Trigger{.input = {.event = policy::TriggerInput::Event::tainted_egress,
                              .event_ids = {observation.event_id},
                              .event_boot_ns = egress.ts_ns,
                              .identity = identity_facts(observation.identity),
                              .credential = credential_facts(*observation.credential),
                              .destination = destination,
                              .taint_inferred = egress.taint_from_cgroup_window},
                    .identity = observation.identity});
}

void CorrelationStage::correlate(const Trigger& trigger) {
  const auto& input = trigger.input;
  const int64_t now_wall = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  if (input.credential) {
    if (input.event == policy::TriggerInput::Event::credential_read) {
      learned_.record_read(now_wall, *input.credential, input.identity);
    } else if (input.destination) {
      learned_.record_egress(now_wall, input.identity, *input.destination);
    }
  }
  auto kind = engine_.trigger_of(input);
  if (!kind) return;

  const auto now = std::chrono::steady_clock::now();
  const std::string key =
      fmt::format("{}|{}|{}|{}|{}|{}|{}", policy::to_string(*kind), input.identity.uri, input.identity.cgroup_id,
                  input.credential ? input.credential->id : 0, input.destination ? input.destination->text : "",
                  input.device, input.taint_inferred);
  if (auto seen = recent_triggers_.find(key); seen != recent_triggers_.end() && now - seen->second < kQuietPeriod) {
    ++suppressed_;
    return;
  }
  if (recent_triggers_.size() >= kMaxQuietTriggers) expire(now);
  if (recent_triggers_.size() < kMaxQuietTriggers) recent_triggers_[key] = now;
  next_.on_trigger(trigger);
}

void CorrelationStage::expire(std::chrono::steady_clock::time_point now) {
  std::erase_if(recent_triggers_, [&](const auto& entry) { return now - entry.second >= kQuietPeriod; });
}

}  // namespace nhiguard::pipeline
