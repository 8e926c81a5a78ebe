// Outbox: the agent's durable queue of reports for the collector. Everything the collector is told
// is written here first; the reporter thread sends from here and deletes only what the collector
// acknowledged.
//
// Storage: one SQLite file (the agent passes <state_dir>/outbox.db), WAL with synchronous=FULL, 0600
// in a 0700 directory (common/sqlite_db.h). A report is durable when append() returns.
//
// Sequence numbers: every report gets the next per-agent sequence number, 1, 2, 3, ..., assigned in
// append()'s transaction together with the durable `last_seq`, so a number is never reused, also
// after every row was acknowledged and deleted, and across restarts. The rows always cover
// (acked_seq, last_seq] without a gap: a row covers [seq, seq_end] (seq_end == seq except for a
// drop marker, below).
//
// Acknowledgement: acknowledge(N) means the collector stored every report up to N (the highest
// contiguous sequence it holds). Rows ending at or before N are deleted, in one transaction with
// the durable `acked_seq`. An acknowledgement below the current one changes nothing (a late ack);
// one beyond last_seq is refused (EINVAL): the collector cannot hold what was never written.
//
// Bounded size: the outbox holds at most max_bytes of reports (payload bytes plus a fixed overhead
// per row). When an append would go past it, the oldest droppable reports (low value: allowed
// egress, plain credential accesses) that are not in flight are replaced by drop markers until the
// outbox is at 90% of its bound. A drop marker is a report of kind `dropped` covering the range
// [seq, seq_end] of what it replaced, with a JSON payload counting the dropped reports by type; it
// is sent like any other report, so the collector learns of every drop and the sequence stays
// gap-free. Adjacent markers merge. Reports that are not droppable (actions, decisions, command
// results, notices) are never dropped: if nothing droppable is left, they are stored beyond the
// bound (over_capacity in stats) and a droppable report that arrives then becomes a drop marker
// itself. Every dropped report is counted in the durable `dropped_total`.
//
// In flight: take_for_send() marks what it returns as in flight, under the same lock, so eviction
// never replaces a report that may already be on the wire (the collector may hold it);
// release_in_flight() after a disconnect makes them evictable again.
//
// Marks: small durable integers the feeders keep with the outbox (e.g. the ledger history position
// already turned into reports), written in the same transaction as the reports they account for,
// so a crash can neither lose nor repeat them.
//
// Stream id: a ULID made when the file is created. A new outbox (the state directory was wiped)
// has a new stream id, so the collector can tell "sequence 1 again" from a duplicate.
//
// Thread-safety: every method may be called from any thread (one internal mutex): the event loop
// appends while the reporter thread reads and acknowledges.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

struct sqlite3;

namespace nhiguard::reporter {

// What a report is. Stored as numbers: never renumber.
enum class ReportKind : uint8_t {
  event = 1,           // a JSON event line (credential_access, egress, ...)
  action_update = 2,   // a rollback handle after a state change (from the ledger's history)
  decision = 3,        // a policy decision record
  command_result = 4,  // the outcome of a command from the collector
  notice = 5,          // the agent about itself (kernel drops, outbox full, mode changes)
  dropped = 6,         // drop marker: the reports [seq, seq_end] were dropped from a full outbox
  control_audit = 7,   // a local control-socket command (from the ledger's audit trail)
};
std::string_view to_string(ReportKind kind);

// A report as the producers hand it in.
struct Report {
  ReportKind kind = ReportKind::event;
  std::string type;            // the payload's "type" ("credential_access", "egress", "action", ...)
  std::string payload;         // JSON text
  uint64_t event_boot_ns = 0;  // the kernel's CLOCK_BOOTTIME stamp of the event, 0 when none
  int64_t event_wall_ns = 0;   // the event's time on CLOCK_REALTIME, 0 when none
  bool droppable = false;      // low value: may be replaced by a drop marker when the outbox is full
};

// A report as stored, with its sequence range.
struct StoredReport {
  uint64_t seq = 0;
  uint64_t seq_end = 0;  // == seq, except for drop markers
  Report report;
  int64_t stored_wall_ns = 0;  // when it was written to the outbox
};

struct OutboxOptions {
  std::string path;                   // the SQLite file
  uint64_t max_bytes = 256ull << 20;  // bound on stored report bytes (see above)
};

struct OutboxStats {
  std::string stream_id;
  uint64_t last_seq = 0;   // the last sequence assigned
  uint64_t acked_seq = 0;  // the collector holds everything up to here
  uint64_t in_flight_through = 0;
  uint64_t rows = 0;   // stored rows (a drop marker is one row)
  uint64_t bytes = 0;  // accounted bytes (payload + per-row overhead)
  uint64_t max_bytes = 0;
  uint64_t dropped_total = 0;  // reports ever replaced by drop markers (durable)
  uint64_t evictions = 0;      // eviction rounds since open
  bool over_capacity = false;  // undroppable reports alone exceed max_bytes
};

// The sequence numbers an append assigned: [first, last]; empty when nothing was appended.
struct AppendResult {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t dropped = 0;  // reports (new or old) turned into drop markers by this append
};

class Outbox {
 public:
  static constexpr int kSchemaVersion = 1;
  // Accounted per row on top of its payload: sequence, kind, type and index entries.
  static constexpr uint64_t kRowOverheadBytes = 64;

  static Result<std::unique_ptr<Outbox>> open(OutboxOptions options);
  ~Outbox();
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  // Appends `reports` in order, in one transaction, with the marks set to the given values. On
  // error nothing is written (no sequence is used, no mark moves).
  Result<AppendResult> append(std::span<const Report> reports,
                              std::span<const std::pair<std::string, int64_t>> marks = {});

  // The value of a mark; 0 when never set.
  Result<int64_t> mark(std::string_view key);

  // Stored reports with seq > after, ascending, at most max_count of them and about max_bytes of
  // payload (always at least one when any is there); they are in flight from now on.
  Result<std::vector<StoredReport>> take_for_send(uint64_t after, size_t max_count, size_t max_bytes);

  // The collector holds every report up to `seq`: deletes them (see the header comment).
  Result<void> acknowledge(uint64_t seq);

  // Nothing is on the wire any more (the stream ended): sent, unacknowledged reports may be evicted.
  void release_in_flight();

  OutboxStats stats();
  const std::string& path() const { return options_.path; }

 private:
  Outbox(OutboxOptions options, sqlite3* db) : options_(std::move(options)), db_(db) {}
  Result<void> load_state();
  // Replaces the oldest droppable rows past the in-flight ones with drop markers until `needed`
  // more bytes fit under the low-water mark. Returns how many reports were dropped.
  Result<uint64_t> evict_locked(uint64_t needed, int64_t now_ns);
  // Appends a drop marker for `seq` (a droppable report that found no room), merging it into the
  // last row when that is a marker past the in-flight ones.
  Result<void> drop_new_locked(uint64_t seq, std::string_view type, int64_t now_ns);

  const OutboxOptions options_;
  std::mutex mutex_;
  sqlite3* db_;
  // Cached durable state; written to disk in the same transactions that change it.
  std::string stream_id_;
  uint64_t last_seq_ = 0;
  uint64_t acked_seq_ = 0;
  uint64_t dropped_total_ = 0;
  // Derived from the rows at open and kept up to date.
  uint64_t rows_ = 0;
  uint64_t bytes_ = 0;
  uint64_t kept_bytes_ = 0;  // the part of bytes_ in rows that are never dropped (incl. markers)
  uint64_t in_flight_through_ = 0;
  uint64_t evictions_ = 0;
  bool over_capacity_logged_ = false;  // said once per episode, not per append
};

// A drop marker's payload: {"type":"reports_dropped","reason":"outbox full","count":N,
// "by_type":{...},"first_seq":S,"last_seq":E,"first_dropped_at":..,"last_dropped_at":..}.
// Exposed for tests and for the collector-facing conversion.
std::string drop_marker_payload(uint64_t first_seq, uint64_t last_seq,
                                std::span<const std::pair<std::string, uint64_t>> counts_by_type,
                                int64_t first_dropped_ns, int64_t last_dropped_ns);

}  // namespace nhiguard::reporter
