// IngestStore: the write side of agent streams — sessions (hello, goodbye), the reports themselves
// and their retention. What the group commit (ingest/ingest_pipeline.h) and each stream's protocol
// (ingest/agent_ingest.h) need of storage; a backend implements it with CommandStore and QueryStore
// (see report_store.h).
//
// Reports are keyed by (agent id, outbox id, sequence): store_reports() is idempotent on that key,
// so a report sent twice (a retry after a lost ack, a resend after a reconnect) is stored once.
// For every (agent, outbox) the store keeps `acked_through`: the highest sequence S such that every
// sequence 1..S is stored or accounted for as lost (a range the agent declared dropped, or a gap the
// collector recorded at hello because an earlier collector acked it). Only that number is ever
// acked, so an agent deletes nothing the store does not hold.
//
// Every method is atomic: it either fully happens (and is durable on return) or returns an Error and
// changes nothing. Implementations are thread-safe (callers share one instance across threads).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::collector {

// What the collector learns when an agent says hello.
struct AgentHello {
  std::string agent_id;  // from the certificate (or Hello.agent_id with --insecure)
  std::string peer;      // remote address, for the operator's listing
  v1::Hello hello;
  int64_t now_ns = 0;
};

struct AgentSession {
  uint64_t acked_through = 0;  // for hello.outbox_id
  v1::Mode required_mode = v1::MODE_UNSPECIFIED;
  uint64_t gap_recorded = 0;  // sequences recorded as lost at this hello (see the header comment)
};

// One validated report, ready to store (see ingest/agent_ingest.h).
struct IngestRecord {
  std::string agent_id;
  std::string outbox_id;
  int64_t received_at_ns = 0;
  v1::Report report;
  std::string raw;  // the report's bytes as received: kept whole, so nothing is lost to parsing
};

struct OutboxAck {
  std::string agent_id;
  std::string outbox_id;
  uint64_t acked_through = 0;
};

struct StoreOutcome {
  std::vector<OutboxAck> acks;                  // one per (agent, outbox) in the batch
  std::vector<std::string> completed_commands;  // command ids whose result was stored by this batch
  uint64_t stored = 0;                          // new reports
  uint64_t duplicates = 0;                      // reports already stored, skipped
};

class IngestStore {
 public:
  virtual ~IngestStore() = default;

  // Registers (or updates) the agent, marks it connected, and answers the hello: acked_through for
  // its outbox (recording a lost gap as described above) and the mode the collector requires of it
  // (its own, or the fleet's kill switch: see CommandStore).
  virtual Result<AgentSession> open_session(const AgentHello& hello) = 0;
  // Marks the agent disconnected, unless a newer connection (another peer) has taken over since.
  virtual Result<void> close_session(std::string_view agent_id, std::string_view peer, int64_t now_ns) = 0;

  // Stores a batch in one transaction: idempotent per (agent, outbox, sequence). Decisions, action
  // updates (with their history), command results (completing the command) and declared drops go to
  // their tables as well. Returns the acks to send and the commands completed.
  // EINVAL (nothing stored) when a record contradicts what the store holds: a dropped range over a
  // stored or acknowledged sequence, or a report inside a range its agent declared dropped. Such a
  // record names its agent in the message; the caller stores the other agents' records without it.
  // A command result changes an action only when it completes a command of that agent.
  virtual Result<StoreOutcome> store_reports(std::span<const IngestRecord> records) = 0;

  // Retention: deletes up to `max_rows` event reports (credential_access, egress, memory_access,
  // block_device_open) received before `received_before_ns`, oldest first, in one transaction;
  // returns how many. Decisions, action
  // updates, command results, drops, alerts, actions, history and commands are never pruned (the
  // audit trail), and acks stay correct: a pruned sequence is below its outbox's watermark, and
  // anything at or below the watermark is a duplicate however often it is resent.
  virtual Result<uint64_t> prune_events(int64_t received_before_ns, uint32_t max_rows) = 0;
};

}  // namespace nhiguard::collector
