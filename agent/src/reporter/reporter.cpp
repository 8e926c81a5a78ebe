#include "reporter/reporter.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "reporter/wire_records.h"

namespace nhiguard::reporter {
namespace {

constexpr std::string_view kLedgerMark = "ledger_history";
constexpr std::string_view kAuditMark = "ledger_audit";

}  // namespace

Result<std::unique_ptr<Reporter>> Reporter::open(ReporterOptions options, ledger::RollbackLedger& ledger,
                                                 CommandHandler& handler) {
  auto outbox = Outbox::open({.path = options.outbox_path, .max_bytes = options.outbox_max_bytes});
  if (!outbox) return fail(std::move(outbox.error()));
  std::unique_ptr<Reporter> reporter(new Reporter(std::move(options), std::move(*outbox), ledger, handler));
  const auto& collector = reporter->options_.collector;
  if (!collector.address.empty()) {
    reporter->link_ = std::make_unique<CollectorLink>(
        CollectorLinkOptions{
            .address = collector.address,
            .pki_dir = collector.pki,
            .insecure = collector.insecure,
            .hostname = reporter->options_.hostname,
            .trust_domain = reporter->options_.trust_domain,
        },
        *reporter->outbox_, handler);
  }
  return reporter;
}

Reporter::Reporter(ReporterOptions options, std::unique_ptr<Outbox> outbox, ledger::RollbackLedger& ledger,
                   CommandHandler& handler)
    : options_(std::move(options)), outbox_(std::move(outbox)), ledger_(ledger), handler_(handler) {}

Reporter::~Reporter() {
  stop();
}

void Reporter::start() {
  const auto stats = outbox_->stats();
  if (!link_) {
    spdlog::info(
        "no collector configured (collector.address): reports are kept in the outbox {} ({} pending, at "
        "most {} bytes; when full, the oldest low-value reports make room)",
        outbox_->path(), stats.last_seq - stats.acked_seq, stats.max_bytes);
    return;
  }
  spdlog::info("reporting to collector {} ({}) from outbox {} ({} pending)", options_.collector.address,
               options_.collector.insecure ? "plaintext, collector.insecure" : "mTLS with " + options_.collector.pki,
               outbox_->path(), stats.last_seq - stats.acked_seq);
  link_->start();
  // The collector's required mode (the kill switch) must be in force before the agent contains
  // anything; the sensor's events wait in the ring buffer meanwhile.
  if (!link_->await_first_answer(kFirstAnswerWait)) {
    spdlog::warn("collector {} has not answered yet: the agent runs in {} mode until it does",
                 options_.collector.address, config::to_string(handler_.current_mode()));
  }
}

void Reporter::stop() {
  flush();
  if (link_) link_->stop();
}

uint64_t Reporter::queued_bytes(const Report& report) {
  return sizeof(Report) + report.payload.size() + report.type.size();
}

bool Reporter::make_room_locked(const Report& report) {
  const uint64_t needed = queued_bytes(report);
  auto fits = [&] { return queue_.size() < kMaxQueued && queue_bytes_ + needed <= options_.memory_queue_max_bytes; };
  // The outbox has refused writes for a while: keep what matters, count what goes.
  while (!fits()) {
    auto low = std::find_if(queue_.begin(), queue_.end(), [](const Report& r) { return r.droppable; });
    if (low == queue_.end()) break;
    queue_bytes_ -= queued_bytes(*low);
    queue_.erase(low);
    ++queue_dropped_;
    ++queue_dropped_total_;
  }
  if (fits()) return true;
  if (report.droppable) {
    ++queue_dropped_;
    ++queue_dropped_total_;
    return false;
  }
  ++lost_by_type_[report.type];
  const uint64_t lost = ++lost_total_;
  if ((lost & (lost - 1)) == 0) {  // 1st, 2nd, 4th ... loss
    spdlog::error(
        "reporter: the outbox refuses writes and the memory queue is full ({} report(s), {} of {} bytes): "
        "a {} report is not kept ({} such loss(es) so far); a reports_lost alert follows once the outbox "
        "takes writes",
        queue_.size(), queue_bytes_, options_.memory_queue_max_bytes, report.type, lost);
  }
  return false;
}

void Reporter::add(Report report) {
  std::lock_guard lock(mutex_);
  if (!make_room_locked(report)) return;
  queue_bytes_ += queued_bytes(report);
  queue_.push_back(std::move(report));
}

bool Reporter::load_mark(std::optional<int64_t>& position, std::string_view key, std::string_view what) {
  if (position) return true;
  // Read once; afterwards it only moves with the appends of flush().
  auto stored = outbox_->mark(key);
  if (!stored) {
    spdlog::error("reporter: {}; {} follow at the next flush", stored.error().message, what);
    return false;
  }
  position = *stored;
  return true;
}

void Reporter::flush() {
  std::lock_guard flushing(flush_mutex_);
  std::vector<Report> batch;
  uint64_t dropped_before_outbox = 0;
  std::map<std::string, uint64_t> lost_before_outbox;
  {
    std::lock_guard lock(mutex_);
    batch.swap(queue_);
    queue_bytes_ = 0;
    dropped_before_outbox = queue_dropped_;
    lost_before_outbox = lost_by_type_;
  }
  // New ledger history, as ActionUpdates, with the position they bring the mark to.
  std::vector<std::pair<std::string, int64_t>> marks;
  if (load_mark(ledger_position_, kLedgerMark, "action updates")) {
    if (auto history = ledger_.history_after(*ledger_position_, kLedgerBatch); !history) {
      spdlog::error("reporter: {}; action updates follow at the next flush", history.error().message);
    } else if (!history->empty()) {
      for (const auto& change : *history) {
        auto handle = ledger_.get(change.handle);
        if (!handle) {
          spdlog::error("reporter: action update {} of {}: {}", change.seq, change.handle, handle.error().message);
          continue;
        }
        batch.push_back(action_update_report(*handle, change));
      }
      marks.emplace_back(std::string(kLedgerMark), history->back().seq);
    }
  }
  // The control audit trail, the same way (its own mark).
  std::optional<int64_t> audit_reached;
  if (load_mark(audit_position_, kAuditMark, "control audit records")) {
    if (auto audit = ledger_.audit_after(*audit_position_, kLedgerBatch); !audit) {
      spdlog::error("reporter: {}; control audit records follow at the next flush", audit.error().message);
    } else if (!audit->empty()) {
      for (const auto& entry : *audit) batch.push_back(control_audit_report(entry));
      audit_reached = audit->back().seq;
      marks.emplace_back(std::string(kAuditMark), *audit_reached);
    }
  }
  if (dropped_before_outbox > 0) {
    batch.push_back(alert_report(
        "outbox_unwritable",
        fmt::format("{} low-value report(s) dropped while the outbox could not be written", dropped_before_outbox),
        dropped_before_outbox));
  }
  // How many alerts sit at the end of the batch, made here from the counters: they are made again
  // from the counters after a failed append.
  size_t counter_alerts = dropped_before_outbox > 0 ? 1 : 0;
  if (!lost_before_outbox.empty()) {
    uint64_t lost = 0;
    std::vector<std::string> parts;
    for (const auto& [type, count] : lost_before_outbox) {
      lost += count;
      parts.push_back(fmt::format("{} {}", count, type));
    }
    batch.push_back(alert_report(
        "reports_lost",
        fmt::format("{} report(s) that are never dropped ({}) were lost: the outbox could not be written and the "
                    "in-memory queue was full ({} bytes); decisions are also in the event log when it was writable",
                    lost, fmt::join(parts, ", "), options_.memory_queue_max_bytes),
        lost));
    ++counter_alerts;
  }
  if (batch.empty()) return;

  auto appended = outbox_->append(batch, marks);
  if (!appended) {
    uint64_t failures = 0;
    size_t waiting = 0;
    {
      std::lock_guard lock(mutex_);
      failures = ++flush_failures_;
      // Put the batch back in front of what arrived meanwhile (the alert and the action updates are
      // made again from their sources next time).
      batch.resize(batch.size() - counter_alerts);
      std::erase_if(batch, [](const Report& r) {
        return r.kind == ReportKind::action_update || r.kind == ReportKind::control_audit;
      });
      // What arrived meanwhile goes behind the batch, each through the bound again.
      std::vector<Report> arrived;
      arrived.swap(queue_);
      queue_bytes_ = 0;
      for (auto& r : batch) queue_bytes_ += queued_bytes(r);
      queue_ = std::move(batch);
      for (auto& r : arrived) {
        if (!make_room_locked(r)) continue;
        queue_bytes_ += queued_bytes(r);
        queue_.push_back(std::move(r));
      }
      waiting = queue_.size();
    }
    if ((failures & (failures - 1)) == 0) {  // 1st, 2nd, 4th, 8th ... failure
      spdlog::error("reporter: {} (failure #{}); {} report(s) wait in memory and are written at the next attempt",
                    appended.error().message, failures, waiting);
    }
    return;
  }
  for (const auto& [name, position] : marks) {
    if (name == kLedgerMark) ledger_position_ = position;
  }
  if (audit_reached) audit_position_ = audit_reached;
  {
    std::lock_guard lock(mutex_);
    queue_dropped_ -= dropped_before_outbox;
    for (const auto& [type, count] : lost_before_outbox) {
      if ((lost_by_type_[type] -= count) == 0) lost_by_type_.erase(type);
    }
    if (appended->dropped > 0) {
      // The drop markers carry the exact ranges; the alert is what an operator's console shows.
      const auto stats = outbox_->stats();
      queue_.push_back(alert_report(
          "outbox_full",
          fmt::format("outbox {} reached its {} bytes: {} low-value report(s) dropped ({} in total); the collector "
                      "has been unreachable or slow",
                      outbox_->path(), stats.max_bytes, appended->dropped, stats.dropped_total),
          appended->dropped));
    }
  }
  if (link_) link_->notify();
}

nlohmann::json Reporter::status() {
  const auto stats = outbox_->stats();
  nlohmann::json collector = link_ ? link_->status() : nlohmann::json{{"state", "disabled"}};
  size_t queued = 0;
  uint64_t queued_bytes_now = 0;
  uint64_t queue_dropped = 0;
  uint64_t lost = 0;
  {
    std::lock_guard lock(mutex_);
    queued = queue_.size();
    queued_bytes_now = queue_bytes_;
    queue_dropped = queue_dropped_total_;
    lost = lost_total_;
  }
  collector["outbox"] = {
      {"path", outbox_->path()},
      {"outbox_id", stats.stream_id},
      {"last_sequence", stats.last_seq},
      {"acked_sequence", stats.acked_seq},
      {"pending_reports", stats.last_seq - stats.acked_seq},
      {"rows", stats.rows},
      {"bytes", stats.bytes},
      {"max_bytes", stats.max_bytes},
      {"dropped_total", stats.dropped_total + queue_dropped},
      {"over_capacity", stats.over_capacity},
      {"queued_in_memory", queued},
      {"queued_in_memory_bytes", queued_bytes_now},
      {"memory_queue_max_bytes", options_.memory_queue_max_bytes},
      {"lost_in_memory", lost},
  };
  return collector;
}

}  // namespace nhiguard::reporter
