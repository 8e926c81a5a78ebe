// Pipeline: the agent's event path, wired once (pipeline/stages.h says what each stage does):
//
//   input() ─► decode ─► enrichment ─► event emission ─► correlation ─► decision ─► execution ─►
//   decision emission
//
// The parts the stages use (identity resolver, watched credentials, policy engine, containment
// executor, event log, reporter, ...) are owned by whoever wires the agent (daemon/agent_daemon.cpp,
// a unit test, a replay) and must outlive the pipeline. Feed it from any EventSource:
// `source.consume(pipeline.input())`.
//
// Thread-safety: input() and housekeeping() on one thread (the event loop); counts() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "catalogue/watched_credentials.h"
#include "config/agent_config.h"
#include "containment/containment_executor.h"
#include "containment/protected_targets.h"
#include "events/event_log.h"
#include "identity/cmdline_redactor.h"
#include "identity/identity_resolver.h"
#include "kernel/event_source.h"
#include "pipeline/correlation_stage.h"
#include "pipeline/decision_stage.h"
#include "pipeline/decode_stage.h"
#include "pipeline/emission.h"
#include "pipeline/enrichment_stage.h"
#include "pipeline/execution_stage.h"
#include "policy/decision_engine.h"
#include "policy/learned_set.h"
#include "policy/rate_limiter.h"
#include "reporter/reporter.h"

namespace nhiguard::pipeline {

struct PipelineParts {
  std::shared_ptr<const identity::CmdlineRedactor> redactor;  // null: argv kept as the kernel sent it
  identity::IdentityResolver& identities;
  catalogue::WatchedCredentials& credentials;
  const policy::DecisionEngine& engine;
  policy::LearnedSet& learned;
  policy::ActionRateLimiter& rate_limiter;
  const std::atomic<config::AgentMode>& mode;
  containment::ProtectedTargets& protected_targets;
  std::string cgroup2_root;
  containment::ContainmentExecutor& executor;
  events::JsonLineWriter& event_log;
  reporter::Reporter& reporter;
  std::string hostname;
};

// What the path has counted since it was wired (status).
struct PipelineCounts {
  uint64_t undecodable_records = 0;
  uint64_t candidates_dismissed = 0;
  uint64_t block_device_opens_allowed = 0;  // opens by block_device_readers: no event
  uint64_t events_written = 0;              // event-log lines: events and decisions
  uint64_t reports_emitted = 0;             // reports handed to the reporter (its flush writes them)
  uint64_t decisions_suppressed = 0;
  DecisionCounts decisions;

  // status's `decisions` object: each outcome's count, the suppressed and the not carried out.
  nlohmann::json decisions_json() const;
};

class Pipeline {
 public:
  explicit Pipeline(PipelineParts parts);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  kernel::RecordSink& input() { return decode_; }
  // Expiry of the quiet period and of exited processes.
  void housekeeping(std::chrono::steady_clock::time_point now, uint64_t now_boot_ns);
  PipelineCounts counts() const;

 private:
  // Declared from the last stage to the first: each is built with a reference to the next.
  Emitter emitter_;
  DecisionEmission decision_emission_;
  ExecutionStage execution_;
  DecisionStage decision_;
  CorrelationStage correlation_;
  EventEmission event_emission_;
  EnrichmentStage enrichment_;
  DecodeStage decode_;
};

}  // namespace nhiguard::pipeline
