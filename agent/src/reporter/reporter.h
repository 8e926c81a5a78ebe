// Reporter: everything the agent tells the collector, in one place. It owns the durable outbox
// (<state_dir>/outbox.db) and, when collector.address is set, the CollectorLink that sends it.
//
// Feeding: producers on the event loop hand reports to add() (credential accesses, egress,
// decisions, alerts); flush(), called by the event loop after every poll, writes them together with
// every new entry of the rollback ledger's history (as ActionUpdates) and of its control audit
// trail (as ControlAudit reports) into the outbox in one
// transaction, with the ledger position as an outbox mark, so a crash neither loses nor repeats an
// action update. Then the link is woken. Until flush() succeeds the reports wait in memory; a flush
// that fails (disk full) is retried at the next one.
//
// The memory queue is bounded (kMaxQueued reports, ReporterOptions::memory_queue_max_bytes bytes):
// while the outbox refuses writes, a report that does not fit first makes room by dropping the
// oldest low-value (droppable) one; when none is left, the new report is not kept. Nothing goes
// silently: a dropped low-value report is counted into an `outbox_unwritable` alert, and a report
// that is never dropped otherwise (decision, alert, command result) is counted by type into a
// `reports_lost` alert, logged at once (1st, 2nd, 4th ... time) and shown in status
// (`lost_in_memory`). Both alerts are written as soon as the outbox takes writes again. Action
// updates never wait here: they are made from the ledger's history at each flush, so none is lost.
// The oldest queued reports are kept, the newest refused: the start of an incident is what its
// later reports are read against.
// When the outbox itself fills and drops reports (drop markers, see outbox.h), an `outbox_full`
// alert follows them.
//
// Without a collector address the outbox is still written (bounded, low-value reports dropped
// first), so a collector configured later receives what happened meanwhile.
//
// Thread-safety: add(), flush(), status() may be called from any thread; flush() is meant for the
// event loop. Commands from the collector run on the link's worker thread through the
// CommandHandler.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "config/agent_config.h"
#include "ledger/rollback_ledger.h"
#include "reporter/collector_link.h"
#include "reporter/outbox.h"

namespace nhiguard::reporter {

struct ReporterOptions {
  std::string outbox_path;
  uint64_t outbox_max_bytes = 256ull << 20;
  config::CollectorConfig collector;
  std::string hostname;
  std::string trust_domain;
  // Bound of the in-memory queue (payload and per-report bookkeeping), used only while the outbox
  // refuses writes.
  uint64_t memory_queue_max_bytes = 64ull << 20;
};

class Reporter {
 public:
  static constexpr size_t kMaxQueued = 100'000;
  static constexpr size_t kLedgerBatch = 512;
  // How long start() waits for the collector's first answer (its Welcome sets the required mode).
  static constexpr std::chrono::milliseconds kFirstAnswerWait{3000};

  static Result<std::unique_ptr<Reporter>> open(ReporterOptions options, ledger::RollbackLedger& ledger,
                                                CommandHandler& handler);
  ~Reporter();

  // Starts the link (when a collector is configured) and waits up to kFirstAnswerWait for the
  // collector's first answer, so a kill switch set meanwhile applies before any containment.
  void start();
  // Writes what is queued, then stops the link; unsent reports stay in the outbox.
  void stop();

  void add(Report report);
  void flush();

  // {"collector": link status or {"state": "disabled"}, "outbox": {...}}
  nlohmann::json status();

 private:
  Reporter(ReporterOptions options, std::unique_ptr<Outbox> outbox, ledger::RollbackLedger& ledger,
           CommandHandler& handler);

  const ReporterOptions options_;
  std::unique_ptr<Outbox> outbox_;
  ledger::RollbackLedger& ledger_;
  CommandHandler& handler_;
  std::unique_ptr<CollectorLink> link_;

  // Bytes one queued report is accounted for.
  static uint64_t queued_bytes(const Report& report);
  // Whether `report` may join the queue, dropping the oldest droppable report to make room; counts
  // what is not kept. Caller holds mutex_.
  bool make_room_locked(const Report& report);

  std::mutex mutex_;  // guards queue_ and the counters below
  std::vector<Report> queue_;
  uint64_t queue_bytes_ = 0;    // queued_bytes() summed over queue_
  uint64_t queue_dropped_ = 0;  // dropped before reaching the outbox, not yet reported
  uint64_t queue_dropped_total_ = 0;
  // Undroppable reports that found no room, by type, not yet reported; and in total.
  std::map<std::string, uint64_t> lost_by_type_;
  uint64_t lost_total_ = 0;
  uint64_t flush_failures_ = 0;
  std::mutex flush_mutex_;  // one flush at a time; guards ledger_position_
  // The ledger history position already in the outbox (its mark), cached after the first read.
  std::optional<int64_t> ledger_position_;
  std::optional<int64_t> audit_position_;  // the same for the ledger's control audit trail
  // Fills `position` from the outbox mark `key` unless already known; false (logged) when unreadable.
  bool load_mark(std::optional<int64_t>& position, std::string_view key, std::string_view what);
};

}  // namespace nhiguard::reporter
