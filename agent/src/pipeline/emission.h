// Emission: what the agent writes down and reports. Two stages share one Emitter (the event log,
// the reporter's outbox queue, the count of lines written):
//
// EventEmission (after enrichment): each observation becomes one JSON line in the event log and
// one report for the collector, with a new event id ("ev_" + ULID) that the decisions about it
// name; then it goes on to correlation. The line is written whether or not the policy acts on it.
//
// DecisionEmission (the last stage): each outcome of a decision becomes one "decision" line and
// one decision report (with its handle, if an action was taken, held or dry-run), an alert when
// the rate limit tripped, and one log line (warning when something was held, contained, alerted or
// failed). It counts decisions by outcome for status.
//
// A line the event log refuses (disk full) is logged and counted by the log; the report still goes
// to the outbox. Thread-safety: the event loop's thread; the counts may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "events/event_log.h"
#include "pipeline/stages.h"
#include "reporter/reporter.h"

namespace nhiguard::pipeline {

class Emitter {
 public:
  Emitter(events::JsonLineWriter& event_log, reporter::Reporter& reporter, std::string hostname)
      : event_log_(event_log), reporter_(reporter), hostname_(std::move(hostname)) {}

  // Writes one event-log line; `lost` says what is missing from the file if the write fails.
  void write(const nlohmann::json& line, const std::string& lost);
  void report(reporter::Report report) {
    reporter_.add(std::move(report));
    ++reports_;
  }
  const std::string& hostname() const { return hostname_; }
  uint64_t lines_written() const { return written_.load(); }
  uint64_t reports() const { return reports_.load(); }

 private:
  events::JsonLineWriter& event_log_;
  reporter::Reporter& reporter_;
  const std::string hostname_;
  std::atomic<uint64_t> written_ = 0;
  std::atomic<uint64_t> reports_ = 0;
};

class EventEmission final : public ObservationSink {
 public:
  EventEmission(Emitter& emitter, ObservationSink& next) : emitter_(emitter), next_(next) {}
  void on_observation(Observation& observation) override;

 private:
  void emit_open(const events::FileOpenEvent& event, Observation& observation);
  void emit_egress(const events::EgressEvent& event, Observation& observation);
  void emit_memory_access(const events::MemoryAccessEvent& event, Observation& observation);
  void emit_block_device(const events::BlockDeviceOpenEvent& event, Observation& observation);

  Emitter& emitter_;
  ObservationSink& next_;
};

// Decisions by outcome, and those whose action was due and not carried out.
struct DecisionCounts {
  uint64_t observe = 0, alert = 0, hold = 0, contain = 0, not_carried_out = 0;
};

class DecisionEmission final : public OutcomeSink {
 public:
  explicit DecisionEmission(Emitter& emitter) : emitter_(emitter) {}
  void on_outcome(const Outcome& outcome) override;
  DecisionCounts counts() const;

 private:
  Emitter& emitter_;
  std::atomic<uint64_t> decisions_[5] = {};  // by policy::Outcome (1..4)
  std::atomic<uint64_t> failed_ = 0;
};

}  // namespace nhiguard::pipeline
