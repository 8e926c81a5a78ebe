#include "reporter/outbox.h"

#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/sqlite_db.h"
#include "common/ulid.h"

namespace nhiguard::reporter {
namespace {

using sqlite::sqlite_error;
using sqlite::Statement;
using sqlite::Transaction;

// Append only, as for the ledger. `meta` holds the durable counters (last_seq, acked_seq,
// dropped_total), the stream id, and the feeders' marks ("mark:<name>").
constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE reports (
  seq            INTEGER PRIMARY KEY NOT NULL,
  seq_end        INTEGER NOT NULL,
  kind           INTEGER NOT NULL,
  type           TEXT NOT NULL,
  droppable      INTEGER NOT NULL,
  event_boot_ns  INTEGER NOT NULL,
  event_wall_ns  INTEGER NOT NULL,
  stored_wall_ns INTEGER NOT NULL,
  payload        BLOB NOT NULL
);
CREATE INDEX reports_droppable ON reports(droppable, seq);
CREATE TABLE meta (
  key   TEXT PRIMARY KEY NOT NULL,
  value NOT NULL
);
)sql"},
};
static_assert(kMigrations[std::size(kMigrations) - 1].version == Outbox::kSchemaVersion);

constexpr std::string_view kDroppedType = "reports_dropped";
// Eviction frees down to this share of max_bytes, so a full outbox evicts in rounds rather than
// on every append.
constexpr uint64_t kLowWaterPercent = 90;

int64_t now_wall_ns() {
  return static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
}

uint64_t row_bytes(uint64_t payload_bytes) {
  return payload_bytes + Outbox::kRowOverheadBytes;
}

Result<void> set_meta(sqlite3* db, std::string_view key, int64_t value, std::string_view what) {
  Statement stmt(db, "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2");
  if (stmt.prepare_status() != SQLITE_OK) return fail(sqlite_error(db, stmt.prepare_status(), what));
  stmt.bind(1, key);
  stmt.bind(2, value);
  if (const int rc = stmt.step(); rc != SQLITE_DONE) return fail(sqlite_error(db, rc, what));
  return {};
}

// A drop marker's counts, read back from its payload to merge another run into it.
struct DropCounts {
  std::map<std::string, uint64_t> by_type;
  int64_t first_dropped_ns = 0;
  int64_t last_dropped_ns = 0;

  uint64_t total() const {
    uint64_t n = 0;
    for (const auto& [type, count] : by_type) n += count;
    return n;
  }
  void add(const std::string& type, uint64_t count, int64_t at_ns) {
    by_type[type] += count;
    if (first_dropped_ns == 0 || at_ns < first_dropped_ns) first_dropped_ns = at_ns;
    last_dropped_ns = std::max(last_dropped_ns, at_ns);
  }
  void merge(const DropCounts& other) {
    for (const auto& [type, count] : other.by_type) by_type[type] += count;
    if (other.first_dropped_ns != 0 && (first_dropped_ns == 0 || other.first_dropped_ns < first_dropped_ns)) {
      first_dropped_ns = other.first_dropped_ns;
    }
    last_dropped_ns = std::max(last_dropped_ns, other.last_dropped_ns);
  }
  std::string payload(uint64_t first_seq, uint64_t last_seq) const {
    std::vector<std::pair<std::string, uint64_t>> counts(by_type.begin(), by_type.end());
    return drop_marker_payload(first_seq, last_seq, counts, first_dropped_ns, last_dropped_ns);
  }
};

Result<DropCounts> parse_drop_counts(const std::string& payload, uint64_t seq) {
  try {
    auto json = nlohmann::json::parse(payload);
    DropCounts counts;
    for (const auto& [type, count] : json.at("by_type").items()) counts.by_type[type] = count.get<uint64_t>();
    counts.first_dropped_ns = json.value("first_dropped_ns", int64_t{0});
    counts.last_dropped_ns = json.value("last_dropped_ns", int64_t{0});
    return counts;
  } catch (const nlohmann::json::exception& e) {
    return fail(Error{EUCLEAN, fmt::format("outbox drop marker at sequence {}: {}", seq, e.what())});
  }
}

// One row as eviction sees it (no payload, except for markers).
struct RowHead {
  uint64_t seq = 0;
  uint64_t seq_end = 0;
  ReportKind kind = ReportKind::event;
  std::string type;
  bool droppable = false;
  uint64_t payload_bytes = 0;
};

}  // namespace

std::string_view to_string(ReportKind kind) {
  switch (kind) {
    case ReportKind::event:
      return "event";
    case ReportKind::action_update:
      return "action_update";
    case ReportKind::decision:
      return "decision";
    case ReportKind::command_result:
      return "command_result";
    case ReportKind::notice:
      return "notice";
    case ReportKind::dropped:
      return "dropped";
    case ReportKind::control_audit:
      return "control_audit";
  }
  return "unknown";
}

std::string drop_marker_payload(uint64_t first_seq, uint64_t last_seq,
                                std::span<const std::pair<std::string, uint64_t>> counts_by_type,
                                int64_t first_dropped_ns, int64_t last_dropped_ns) {
  nlohmann::json by_type = nlohmann::json::object();
  uint64_t total = 0;
  for (const auto& [type, count] : counts_by_type) {
    by_type[type] = count;
    total += count;
  }
  return nlohmann::json{
      {"type", kDroppedType},
      {"reason", "outbox full"},
      {"count", total},
      {"by_type", by_type},
      {"first_seq", first_seq},
      {"last_seq", last_seq},
      {"first_dropped_at", format_rfc3339_ns(static_cast<uint64_t>(first_dropped_ns))},
      {"last_dropped_at", format_rfc3339_ns(static_cast<uint64_t>(last_dropped_ns))},
      {"first_dropped_ns", first_dropped_ns},
      {"last_dropped_ns", last_dropped_ns},
  }
      .dump();
}

Result<std::unique_ptr<Outbox>> Outbox::open(OutboxOptions options) {
  if (options.max_bytes == 0) return fail(Error{EINVAL, "open outbox " + options.path + ": max_bytes must be > 0"});
  auto db = sqlite::open_durable(options.path, {.label = "outbox", .migrations = kMigrations});
  if (!db) return fail(std::move(db.error()));
  std::unique_ptr<Outbox> outbox(new Outbox(std::move(options), *db));
  if (auto loaded = outbox->load_state(); !loaded) return fail(std::move(loaded.error()));
  return outbox;
}

Outbox::~Outbox() {
  sqlite3_close_v2(db_);
}

Result<void> Outbox::load_state() {
  const std::string what = "open outbox " + options_.path;
  std::lock_guard lock(mutex_);
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return begun;
  {
    Statement meta(db_, "SELECT key, value FROM meta");
    if (meta.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, meta.prepare_status(), what));
    for (int rc = meta.step(); rc != SQLITE_DONE; rc = meta.step()) {
      if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
      const std::string key = meta.text_at(0);
      if (key == "stream_id") stream_id_ = meta.text_at(1);
      if (key == "last_seq") last_seq_ = static_cast<uint64_t>(meta.int_at(1));
      if (key == "acked_seq") acked_seq_ = static_cast<uint64_t>(meta.int_at(1));
      if (key == "dropped_total") dropped_total_ = static_cast<uint64_t>(meta.int_at(1));
    }
  }
  uint64_t min_seq = 0;
  uint64_t max_seq_end = 0;
  {
    Statement sums(db_,
                   "SELECT count(*), coalesce(sum(length(payload)), 0), coalesce(min(seq), 0), "
                   "coalesce(max(seq_end), 0), coalesce(sum(CASE WHEN droppable = 0 THEN 1 ELSE 0 END), 0), "
                   "coalesce(sum(CASE WHEN droppable = 0 THEN length(payload) ELSE 0 END), 0) FROM reports");
    if (sums.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, sums.prepare_status(), what));
    if (const int rc = sums.step(); rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    rows_ = static_cast<uint64_t>(sums.int_at(0));
    bytes_ = static_cast<uint64_t>(sums.int_at(1)) + rows_ * kRowOverheadBytes;
    min_seq = static_cast<uint64_t>(sums.int_at(2));
    max_seq_end = static_cast<uint64_t>(sums.int_at(3));
    kept_bytes_ = static_cast<uint64_t>(sums.int_at(5)) + static_cast<uint64_t>(sums.int_at(4)) * kRowOverheadBytes;
  }
  // The rows must cover (acked_seq, last_seq]; anything else means the file was edited or is from
  // another program, and sending from it could skip or repeat reports.
  if (acked_seq_ > last_seq_ || (rows_ > 0 && (min_seq != acked_seq_ + 1 || max_seq_end != last_seq_)) ||
      (rows_ == 0 && acked_seq_ != last_seq_)) {
    return fail(Error{EUCLEAN, fmt::format("{}: stored reports {}..{} do not match acked {} / last {} sequence (the "
                                           "file is damaged; move it aside to start a new one)",
                                           what, min_seq, max_seq_end, acked_seq_, last_seq_)});
  }
  if (stream_id_.empty()) {
    stream_id_ = new_ulid();
    Statement insert(db_, "INSERT INTO meta (key, value) VALUES ('stream_id', ?1)");
    if (insert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, insert.prepare_status(), what));
    insert.bind(1, stream_id_);
    if (const int rc = insert.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  }
  return txn.commit(what);
}

Result<AppendResult> Outbox::append(std::span<const Report> reports,
                                    std::span<const std::pair<std::string, int64_t>> marks) {
  const std::string what = fmt::format("outbox append of {} report(s)", reports.size());
  for (const auto& r : reports) {
    if (r.kind == ReportKind::dropped) return fail(Error{EINVAL, what + ": drop markers are made by the outbox"});
    if (to_string(r.kind) == "unknown")
      return fail(Error{EINVAL, fmt::format("{}: unknown kind {}", what, int(r.kind))});
  }
  std::lock_guard lock(mutex_);
  // Work on copies of the cached state; they replace it only once the transaction committed.
  const uint64_t saved_last = last_seq_, saved_rows = rows_, saved_bytes = bytes_, saved_dropped = dropped_total_,
                 saved_kept = kept_bytes_;
  auto restore = [&] {
    last_seq_ = saved_last;
    rows_ = saved_rows;
    bytes_ = saved_bytes;
    dropped_total_ = saved_dropped;
    kept_bytes_ = saved_kept;
  };
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return fail(std::move(begun.error()));
  const int64_t now = now_wall_ns();
  AppendResult result;
  const uint64_t evictions_before = evictions_;
  Statement insert(db_,
                   "INSERT INTO reports (seq, seq_end, kind, type, droppable, event_boot_ns, event_wall_ns, "
                   "stored_wall_ns, payload) VALUES (?1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (insert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, insert.prepare_status(), what));
  auto failed = [&](Error e) -> Result<AppendResult> {
    restore();
    evictions_ = evictions_before;
    return fail(std::move(e));
  };
  for (const auto& r : reports) {
    const uint64_t seq = last_seq_ + 1;
    const uint64_t size = row_bytes(r.payload.size());
    if (bytes_ + size > options_.max_bytes) {
      auto evicted = evict_locked(size, now);
      if (!evicted) return failed(std::move(evicted.error()));
      result.dropped += *evicted;
    }
    if (bytes_ + size > options_.max_bytes && r.droppable) {
      // No room even after eviction: the new low-value report is itself dropped, and counted.
      if (auto dropped = drop_new_locked(seq, r.type, now); !dropped) return failed(std::move(dropped.error()));
      ++result.dropped;
    } else {
      insert.reset();
      insert.bind(1, static_cast<int64_t>(seq));
      insert.bind(2, static_cast<int64_t>(r.kind));
      insert.bind(3, r.type);
      insert.bind(4, int64_t{r.droppable});
      insert.bind(5, static_cast<int64_t>(r.event_boot_ns));
      insert.bind(6, r.event_wall_ns);
      insert.bind(7, now);
      insert.bind_blob(8, r.payload);
      if (const int rc = insert.step(); rc != SQLITE_DONE) return failed(sqlite_error(db_, rc, what));
      ++rows_;
      bytes_ += size;
      if (!r.droppable) kept_bytes_ += size;
      if (bytes_ > options_.max_bytes && !over_capacity_logged_) {
        over_capacity_logged_ = true;
        spdlog::error(
            "outbox {} holds more than its {} bytes in reports that are never dropped (actions, decisions, "
            "notices): keeping them all until the collector acknowledges them",
            options_.path, options_.max_bytes);
      }
    }
    last_seq_ = seq;
    if (result.first == 0) result.first = seq;
    result.last = seq;
  }
  if (!reports.empty()) {
    if (auto ok = set_meta(db_, "last_seq", static_cast<int64_t>(last_seq_), what); !ok) return failed(ok.error());
  }
  if (result.dropped > 0) {
    if (auto ok = set_meta(db_, "dropped_total", static_cast<int64_t>(dropped_total_), what); !ok) {
      return failed(ok.error());
    }
  }
  for (const auto& [key, value] : marks) {
    if (auto ok = set_meta(db_, "mark:" + key, value, what); !ok) return failed(ok.error());
  }
  if (auto committed = txn.commit(what); !committed) return failed(committed.error());
  return result;
}

Result<uint64_t> Outbox::evict_locked(uint64_t needed, int64_t now_ns) {
  const std::string what = "outbox eviction";
  const uint64_t low_water = options_.max_bytes / 100 * kLowWaterPercent;
  const uint64_t target = bytes_ + needed > low_water ? bytes_ + needed - low_water : 0;
  const uint64_t floor = std::max(in_flight_through_, acked_seq_);

  // Only droppable rows are read (index reports_droppable; markers are never droppable), oldest
  // first, until enough bytes are found: an outbox full of undroppable reports costs one index probe.
  std::vector<RowHead> picked;
  {
    Statement pick(db_,
                   "SELECT seq, seq_end, type, length(payload) FROM reports WHERE droppable = 1 AND seq > ?1 "
                   "ORDER BY seq");
    if (pick.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, pick.prepare_status(), what));
    pick.bind(1, static_cast<int64_t>(floor));
    uint64_t found = 0;
    for (int rc = pick.step(); rc != SQLITE_DONE && found < target; rc = pick.step()) {
      if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
      RowHead h{static_cast<uint64_t>(pick.int_at(0)),
                static_cast<uint64_t>(pick.int_at(1)),
                ReportKind::event,
                pick.text_at(2),
                true,
                static_cast<uint64_t>(pick.int_at(3))};
      found += row_bytes(h.payload_bytes);
      picked.push_back(std::move(h));
    }
  }
  if (picked.empty()) return uint64_t{0};

  // A marker row adjacent to a run (ending just before it or starting just after it) and not in
  // flight joins the run's marker. Rows cover the sequence without gaps, so adjacency is by number.
  auto adjacent_marker = [&](uint64_t seq, bool ending_at) -> Result<std::optional<std::pair<RowHead, DropCounts>>> {
    Statement find(db_, ending_at ? "SELECT seq, seq_end, kind, length(payload), payload FROM reports "
                                    "WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"
                                  : "SELECT seq, seq_end, kind, length(payload), payload FROM reports WHERE seq = ?1");
    if (find.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, find.prepare_status(), what));
    find.bind(1, static_cast<int64_t>(seq));
    const int rc = find.step();
    if (rc == SQLITE_DONE) return std::optional<std::pair<RowHead, DropCounts>>{};
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    RowHead h{static_cast<uint64_t>(find.int_at(0)),
              static_cast<uint64_t>(find.int_at(1)),
              static_cast<ReportKind>(find.int_at(2)),
              {},
              false,
              static_cast<uint64_t>(find.int_at(3))};
    if (h.kind != ReportKind::dropped || h.seq <= floor || (ending_at && h.seq_end != seq)) {
      return std::optional<std::pair<RowHead, DropCounts>>{};
    }
    auto counts = parse_drop_counts(find.text_at(4), h.seq);
    if (!counts) return fail(std::move(counts.error()));
    return std::optional<std::pair<RowHead, DropCounts>>(std::pair{std::move(h), std::move(*counts)});
  };

  uint64_t dropped = 0;
  size_t i = 0;
  while (i < picked.size()) {
    // One run: consecutive picked rows whose sequences touch.
    size_t j = i;
    while (j + 1 < picked.size() && picked[j].seq_end + 1 == picked[j + 1].seq) ++j;
    uint64_t first = picked[i].seq;
    uint64_t last = picked[j].seq_end;
    DropCounts counts;
    for (size_t k = i; k <= j; ++k) {
      counts.add(picked[k].type, 1, now_ns);
      rows_ -= 1;
      bytes_ -= row_bytes(picked[k].payload_bytes);
    }
    dropped += j - i + 1;
    for (const bool before : {true, false}) {
      auto marker = adjacent_marker(before ? first - 1 : last + 1, before);
      if (!marker) return fail(std::move(marker.error()));
      if (!*marker) continue;
      const auto& [head, existing] = **marker;
      counts.merge(existing);
      rows_ -= 1;
      bytes_ -= row_bytes(head.payload_bytes);
      kept_bytes_ -= row_bytes(head.payload_bytes);
      if (before) {
        first = head.seq;
      } else {
        last = head.seq_end;
      }
    }
    // The run's rows and the markers it absorbed are exactly the rows in [first, last].
    Statement del(db_, "DELETE FROM reports WHERE seq >= ?1 AND seq <= ?2");
    if (del.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, del.prepare_status(), what));
    del.bind(1, static_cast<int64_t>(first));
    del.bind(2, static_cast<int64_t>(last));
    if (const int rc = del.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
    const std::string payload = counts.payload(first, last);
    Statement insert(db_,
                     "INSERT INTO reports (seq, seq_end, kind, type, droppable, event_boot_ns, event_wall_ns, "
                     "stored_wall_ns, payload) VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6)");
    if (insert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, insert.prepare_status(), what));
    insert.bind(1, static_cast<int64_t>(first));
    insert.bind(2, static_cast<int64_t>(last));
    insert.bind(3, static_cast<int64_t>(ReportKind::dropped));
    insert.bind(4, kDroppedType);
    insert.bind(5, counts.last_dropped_ns);
    insert.bind_blob(6, payload);
    if (const int rc = insert.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
    rows_ += 1;
    bytes_ += row_bytes(payload.size());
    kept_bytes_ += row_bytes(payload.size());
    i = j + 1;
  }

  ++evictions_;
  dropped_total_ += dropped;
  spdlog::error(
      "outbox {} is full ({} bytes allowed): dropped the {} oldest low-value report(s) not yet sent; drop "
      "markers report them to the collector; actions, decisions and notices are kept",
      options_.path, options_.max_bytes, dropped);
  return dropped;
}

Result<void> Outbox::drop_new_locked(uint64_t seq, std::string_view type, int64_t now_ns) {
  const std::string what = fmt::format("outbox drop of new report {}", seq);
  const uint64_t floor = std::max(in_flight_through_, acked_seq_);
  DropCounts counts;
  uint64_t first = seq;
  {
    Statement last(db_, "SELECT seq, seq_end, kind, length(payload), payload FROM reports ORDER BY seq DESC LIMIT 1");
    if (last.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, last.prepare_status(), what));
    const int rc = last.step();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
    if (rc == SQLITE_ROW && static_cast<ReportKind>(last.int_at(2)) == ReportKind::dropped &&
        static_cast<uint64_t>(last.int_at(1)) + 1 == seq && static_cast<uint64_t>(last.int_at(0)) > floor) {
      first = static_cast<uint64_t>(last.int_at(0));
      auto parsed = parse_drop_counts(last.text_at(4), first);
      if (!parsed) return fail(std::move(parsed.error()));
      counts = std::move(*parsed);
      rows_ -= 1;
      bytes_ -= row_bytes(static_cast<uint64_t>(last.int_at(3)));
      kept_bytes_ -= row_bytes(static_cast<uint64_t>(last.int_at(3)));
    }
  }
  counts.add(std::string(type), 1, now_ns);
  const std::string payload = counts.payload(first, seq);
  Statement upsert(db_,
                   "INSERT OR REPLACE INTO reports (seq, seq_end, kind, type, droppable, event_boot_ns, "
                   "event_wall_ns, stored_wall_ns, payload) VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?5, ?6)");
  if (upsert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, upsert.prepare_status(), what));
  upsert.bind(1, static_cast<int64_t>(first));
  upsert.bind(2, static_cast<int64_t>(seq));
  upsert.bind(3, static_cast<int64_t>(ReportKind::dropped));
  upsert.bind(4, kDroppedType);
  upsert.bind(5, now_ns);
  upsert.bind_blob(6, payload);
  if (const int rc = upsert.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  rows_ += 1;
  bytes_ += row_bytes(payload.size());
  kept_bytes_ += row_bytes(payload.size());
  dropped_total_ += 1;
  return {};
}

Result<int64_t> Outbox::mark(std::string_view key) {
  const std::string what = fmt::format("outbox mark {}", key);
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT value FROM meta WHERE key = ?1");
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, "mark:" + std::string(key));
  const int rc = select.step();
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
  return select.int_at(0);
}

Result<std::vector<StoredReport>> Outbox::take_for_send(uint64_t after, size_t max_count, size_t max_bytes) {
  const std::string what = fmt::format("outbox read after {}", after);
  std::lock_guard lock(mutex_);
  Statement select(db_,
                   "SELECT seq, seq_end, kind, type, droppable, event_boot_ns, event_wall_ns, stored_wall_ns, "
                   "payload FROM reports WHERE seq > ?1 ORDER BY seq LIMIT ?2");
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, static_cast<int64_t>(after));
  select.bind(2, static_cast<int64_t>(std::max<size_t>(max_count, 1)));
  std::vector<StoredReport> out;
  size_t bytes = 0;
  for (int rc = select.step(); rc != SQLITE_DONE; rc = select.step()) {
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    StoredReport s;
    s.seq = static_cast<uint64_t>(select.int_at(0));
    s.seq_end = static_cast<uint64_t>(select.int_at(1));
    s.report.kind = static_cast<ReportKind>(select.int_at(2));
    s.report.type = select.text_at(3);
    s.report.droppable = select.int_at(4) != 0;
    s.report.event_boot_ns = static_cast<uint64_t>(select.int_at(5));
    s.report.event_wall_ns = select.int_at(6);
    s.stored_wall_ns = select.int_at(7);
    s.report.payload = select.text_at(8);
    bytes += s.report.payload.size();
    in_flight_through_ = std::max(in_flight_through_, s.seq_end);
    out.push_back(std::move(s));
    if (bytes >= max_bytes) break;
  }
  return out;
}

Result<void> Outbox::acknowledge(uint64_t seq) {
  const std::string what = fmt::format("outbox acknowledge {}", seq);
  std::lock_guard lock(mutex_);
  if (seq <= acked_seq_) return {};  // late or repeated: already done
  if (seq > last_seq_) {
    return fail(Error{EINVAL, fmt::format("{}: beyond the last sequence written ({}); the collector cannot hold it",
                                          what, last_seq_)});
  }
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return begun;
  uint64_t gone_rows = 0;
  uint64_t gone_bytes = 0;
  uint64_t gone_kept = 0;
  // `seq <= ?1` lets SQLite walk the primary key from the start instead of scanning every row.
  {
    Statement sums(db_,
                   "SELECT count(*), coalesce(sum(length(payload)), 0), "
                   "coalesce(sum(CASE WHEN droppable = 0 THEN length(payload) + ?2 ELSE 0 END), 0) "
                   "FROM reports WHERE seq <= ?1 AND seq_end <= ?1");
    if (sums.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, sums.prepare_status(), what));
    sums.bind(1, static_cast<int64_t>(seq));
    sums.bind(2, static_cast<int64_t>(kRowOverheadBytes));
    if (const int rc = sums.step(); rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    gone_rows = static_cast<uint64_t>(sums.int_at(0));
    gone_bytes = static_cast<uint64_t>(sums.int_at(1)) + gone_rows * kRowOverheadBytes;
    gone_kept = static_cast<uint64_t>(sums.int_at(2));
  }
  {
    Statement del(db_, "DELETE FROM reports WHERE seq <= ?1 AND seq_end <= ?1");
    if (del.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, del.prepare_status(), what));
    del.bind(1, static_cast<int64_t>(seq));
    if (const int rc = del.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  }
  if (auto ok = set_meta(db_, "acked_seq", static_cast<int64_t>(seq), what); !ok) return ok;
  if (auto committed = txn.commit(what); !committed) return committed;
  acked_seq_ = seq;
  rows_ -= gone_rows;
  bytes_ -= gone_bytes;
  kept_bytes_ -= gone_kept;
  if (bytes_ <= options_.max_bytes) over_capacity_logged_ = false;
  return {};
}

void Outbox::release_in_flight() {
  std::lock_guard lock(mutex_);
  in_flight_through_ = 0;
}

OutboxStats Outbox::stats() {
  std::lock_guard lock(mutex_);
  return OutboxStats{
      .stream_id = stream_id_,
      .last_seq = last_seq_,
      .acked_seq = acked_seq_,
      .in_flight_through = in_flight_through_,
      .rows = rows_,
      .bytes = bytes_,
      .max_bytes = options_.max_bytes,
      .dropped_total = dropped_total_,
      .evictions = evictions_,
      .over_capacity = kept_bytes_ > options_.max_bytes,
  };
}

}  // namespace nhiguard::reporter
