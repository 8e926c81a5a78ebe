// The agent's event path as stages, and what passes between them. Each stage is a type with one job;
// it knows the next only through the interface below that it is given at construction, and hands
// the event forward (nothing returns to a hub):
//
//   EventSource ──records──► DecodeStage ──KernelEvent──► EnrichmentStage ──Observation──►
//   EventEmission ──Observation (with its event id)──► CorrelationStage ──Trigger──►
//   DecisionStage ──Decision──► ExecutionStage ──Outcome──► DecisionEmission
//
//   source       kernel/event_source.h: the ring buffer, a replay file, synthetic records
//   decode       bytes -> typed event; the kernel's argv redacted before anything keeps it
//   enrichment   process table, credential match (WatchedCredentials), workload identity,
//                the block-device allow-list (an allowed reader's open goes no further)
//   emission     the event's JSON line (event log) and report (outbox), with its event id
//   correlation  learning, what is decided on at all (denied, write-only, repeat summaries),
//                the trigger, the quiet period for repeats
//   decision     the policy engine with the safety gates' facts (protected targets, learned
//                readers, rate limit, agent mode)
//   execution    the containment executor: contain, hold or dry run, recorded in the rollback
//                ledger (enforcement first, record second: containment/containment_executor.h)
//   emission     the decision's JSON line and report, alerts, one log line
//
// pipeline/pipeline.h wires the stages once. The types passed are borrowed for the call: a stage
// that keeps anything copies it. Thread-safety: the whole path runs on the event loop's thread.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "catalogue/credential_catalogue.h"
#include "containment/action.h"
#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "policy/decision_engine.h"

namespace nhiguard::pipeline {

// decode -> enrichment
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(events::KernelEvent& event) = 0;
};

// A credential open, an egress attempt, a reach into a credential holder's memory or a block
// device read, with who made it and the credential it concerns.
struct Observation {
  std::variant<const events::FileOpenEvent*, const events::EgressEvent*, const events::MemoryAccessEvent*,
               const events::BlockDeviceOpenEvent*>
      event;
  // Open: the credential opened (path empty when the kernel matched an id the agent no longer
  // lists: a sync raced the open). Egress: the credential the process read (its taint), if known.
  // Memory access: the credential the target holds (its taint), if known. Block device: none.
  std::optional<catalogue::ResolvedCredential> credential;
  bool credential_known = false;  // the credential is one the catalogue lists
  identity::ResolvedIdentity identity;
  std::optional<identity::ResolvedIdentity> target;  // memory access: the process reached into
  uint64_t wall_ns = 0;                              // the event's time on CLOCK_REALTIME
  std::string event_id;                              // "ev_" + ULID, given by the event emission

  const events::FileOpenEvent* open() const {
    auto* p = std::get_if<const events::FileOpenEvent*>(&event);
    return p ? *p : nullptr;
  }
  const events::EgressEvent* egress() const {
    auto* p = std::get_if<const events::EgressEvent*>(&event);
    return p ? *p : nullptr;
  }
  const events::MemoryAccessEvent* memory_access() const {
    auto* p = std::get_if<const events::MemoryAccessEvent*>(&event);
    return p ? *p : nullptr;
  }
  const events::BlockDeviceOpenEvent* block_device() const {
    auto* p = std::get_if<const events::BlockDeviceOpenEvent*>(&event);
    return p ? *p : nullptr;
  }
};

// enrichment -> emission -> correlation
class ObservationSink {
 public:
  virtual ~ObservationSink() = default;
  virtual void on_observation(Observation& observation) = 0;
};

// What the policy is asked about: the trigger input and the identity it was built from.
struct Trigger {
  policy::TriggerInput input;
  const identity::ResolvedIdentity& identity;
};

// correlation -> decision
class TriggerSink {
 public:
  virtual ~TriggerSink() = default;
  virtual void on_trigger(const Trigger& trigger) = 0;
};

// decision -> execution
class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  virtual void on_decision(const policy::Decision& decision, const Trigger& trigger) = 0;
};

// What became of a decision: the handle of its action (taken, held or dry run), or why there is
// none although one was due.
struct Outcome {
  const policy::Decision& decision;
  const Trigger& trigger;
  const containment::RollbackHandle* handle = nullptr;
  std::string error;  // non-empty: the action was due and not carried out
};

// execution -> emission
class OutcomeSink {
 public:
  virtual ~OutcomeSink() = default;
  virtual void on_outcome(const Outcome& outcome) = 0;
};

}  // namespace nhiguard::pipeline
