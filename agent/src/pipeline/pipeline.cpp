#include "pipeline/pipeline.h"

namespace nhiguard::pipeline {

Pipeline::Pipeline(PipelineParts parts)
    : emitter_(parts.event_log, parts.reporter, parts.hostname),
      decision_emission_(emitter_),
      execution_(parts.executor, parts.rate_limiter, decision_emission_),
      decision_(parts.engine, parts.protected_targets, parts.cgroup2_root, parts.learned, parts.rate_limiter,
                parts.mode, execution_),
      correlation_(parts.engine, parts.learned, decision_),
      event_emission_(emitter_, correlation_),
      enrichment_(parts.identities, parts.credentials, parts.engine, parts.redactor != nullptr, event_emission_),
      decode_(std::move(parts.redactor), enrichment_) {}

void Pipeline::housekeeping(std::chrono::steady_clock::time_point now, uint64_t now_boot_ns) {
  correlation_.expire(now);
  enrichment_.expire(now_boot_ns);
}

PipelineCounts Pipeline::counts() const {
  return {.undecodable_records = decode_.undecodable(),
          .candidates_dismissed = enrichment_.candidates_dismissed(),
          .block_device_opens_allowed = enrichment_.block_device_opens_allowed(),
          .events_written = emitter_.lines_written(),
          .reports_emitted = emitter_.reports(),
          .decisions_suppressed = correlation_.suppressed(),
          .decisions = decision_emission_.counts()};
}

nlohmann::json PipelineCounts::decisions_json() const {
  return {
      {"observe", decisions.observe},
      {"alert", decisions.alert},
      {"hold", decisions.hold},
      {"contain", decisions.contain},
      {"suppressed", decisions_suppressed},
      {"not_carried_out", decisions.not_carried_out},
  };
}

}  // namespace nhiguard::pipeline
