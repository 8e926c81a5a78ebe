#include "pipeline/emission.h"

#include <time.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/json_escape.h"
#include "common/ulid.h"
#include "records/block_device_record.h"
#include "records/credential_access_record.h"
#include "records/decision_record.h"
#include "records/egress_record.h"
#include "records/memory_access_record.h"
#include "reporter/wire_records.h"

namespace nhiguard::pipeline {
namespace {

std::string new_event_id() {
  return "ev_" + new_ulid();
}

}  // namespace

void Emitter::write(const nlohmann::json& line, const std::string& lost) {
  if (auto written = event_log_.write(line); !written) {
    spdlog::error("event log: {} ({} lost from the file)", written.error().message, lost);
  } else {
    ++written_;
  }
}

void EventEmission::on_observation(Observation& observation) {
  if (const auto* open = observation.open()) {
    emit_open(*open, observation);
  } else if (const auto* egress = observation.egress()) {
    emit_egress(*egress, observation);
  } else if (const auto* access = observation.memory_access()) {
    emit_memory_access(*access, observation);
  } else {
    emit_block_device(*observation.block_device(), observation);
  }
  next_.on_observation(observation);
}

void EventEmission::emit_open(const events::FileOpenEvent& event, Observation& observation) {
  const auto& credential = *observation.credential;
  const auto& identity = observation.identity;
  observation.event_id = new_event_id();
  auto record = records::credential_access_to_wire(event, credential, identity,
                                                   static_cast<int64_t>(observation.wall_ns), observation.event_id);
  auto line = records::credential_access_line(record, event, emitter_.hostname());
  emitter_.write(line, fmt::format("the event for pid {} and {} is", event.process.tgid, credential.path));
  emitter_.report(reporter::credential_access_report(std::move(record), event.ts_ns));
  // The JSON line is the record; the log line repeats it for people at debug level, so a flood of
  // reads does not double the agent's work.
  spdlog::debug("credential access: {} {} ({}, id {}) by pid {} {} uid {} of {}", line["access"].get<std::string>(),
                escape_bytes(credential.path), catalogue::to_string(credential.credential_class),
                credential.credential_id, event.process.tgid, escape_bytes(identity.process.exe), event.process.uid,
                identity.workload.uri);
}

void EventEmission::emit_egress(const events::EgressEvent& event, Observation& observation) {
  const catalogue::ResolvedCredential* taint = observation.credential ? &*observation.credential : nullptr;
  const auto& identity = observation.identity;
  observation.event_id = new_event_id();
  auto record =
      records::egress_to_wire(event, taint, identity, static_cast<int64_t>(observation.wall_ns), observation.event_id);
  auto line = records::egress_line(record, emitter_.hostname());
  emitter_.write(line, fmt::format("egress event of pid {}", event.process.tgid));
  emitter_.report(reporter::egress_report(std::move(record), event.ts_ns));
  if (event.denied) {
    spdlog::info("egress denied: pid {} {} of {} to {} port {} ({}), block rule {}", event.process.tgid,
                 escape_bytes(identity.process.exe), identity.workload.uri, event.address_string(), event.port,
                 events::to_string(event.hook), event.rule_id);
  }
}

void EventEmission::emit_memory_access(const events::MemoryAccessEvent& event, Observation& observation) {
  const catalogue::ResolvedCredential* taint = observation.credential ? &*observation.credential : nullptr;
  const auto& identity = observation.identity;
  const auto& target = *observation.target;
  observation.event_id = new_event_id();
  auto record = records::memory_access_to_wire(event, taint, identity, target,
                                               static_cast<int64_t>(observation.wall_ns), observation.event_id);
  auto line = records::memory_access_line(record, emitter_.hostname());
  emitter_.write(
      line, fmt::format("the memory-access event of pid {} into pid {} is", event.process.tgid, event.target_tgid));
  emitter_.report(reporter::memory_access_report(std::move(record), event.ts_ns));
  spdlog::warn("credential memory access: pid {} {} of {} did {} on pid {} {} holding credential {} ({}), result {}",
               event.process.tgid, escape_bytes(identity.process.exe), identity.workload.uri,
               events::to_string(event.how), event.target_tgid, escape_bytes(target.process.exe),
               event.taint_credential_id, taint ? escape_bytes(taint->path) : "not catalogued", event.result);
}

void EventEmission::emit_block_device(const events::BlockDeviceOpenEvent& event, Observation& observation) {
  const auto& identity = observation.identity;
  observation.event_id = new_event_id();
  auto record =
      records::block_device_to_wire(event, identity, static_cast<int64_t>(observation.wall_ns), observation.event_id);
  auto line = records::block_device_line(record, emitter_.hostname());
  emitter_.write(line, fmt::format("the block-device event of pid {} is", event.process.tgid));
  emitter_.report(reporter::block_device_open_report(std::move(record), event.ts_ns));
  spdlog::warn("block device {} opened for reading by pid {} {} of {}, not an allowed block device reader",
               records::block_device_path(event), event.process.tgid, escape_bytes(identity.process.exe),
               identity.workload.uri);
}

void DecisionEmission::on_outcome(const Outcome& outcome) {
  const auto& decision = outcome.decision;
  const auto& input = outcome.trigger.input;
  if (!outcome.error.empty()) ++failed_;
  ++decisions_[static_cast<int>(decision.outcome)];
  const uint64_t now_wall = clock_ns(CLOCK_REALTIME);
  const std::string decision_id = "dc_" + new_ulid();
  auto record =
      records::build_decision_record(decision, input, outcome.handle, outcome.error, emitter_.hostname(), now_wall);
  record["decision_id"] = decision_id;
  emitter_.report(reporter::decision_report(
      records::decision_to_wire(decision, input, outcome.trigger.identity, outcome.handle, decision_id, now_wall),
      input.event_boot_ns));
  emitter_.write(record, fmt::format("the decision record of rule {} is", decision.rule));
  for (const auto& gate : decision.gates) {
    if (gate.gate == "rate_limit" && gate.tripped) {
      // The circuit breaker is open: a person should know even before looking at the held action.
      spdlog::error("rate limit reached: {}; automated containment is held for approval until the window passes",
                    gate.detail);
      emitter_.report(reporter::alert_report("policy_rate_limit", gate.detail, 1));
    }
  }
  const std::string line = records::decision_log_line(decision, outcome.handle, outcome.error);
  if (!outcome.error.empty() || decision.outcome >= policy::Outcome::hold || decision.alert) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
}

DecisionCounts DecisionEmission::counts() const {
  return {.observe = decisions_[1].load(),
          .alert = decisions_[2].load(),
          .hold = decisions_[3].load(),
          .contain = decisions_[4].load(),
          .not_carried_out = failed_.load()};
}

}  // namespace nhiguard::pipeline
