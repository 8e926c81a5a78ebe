#include "store/sqlite_report_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <utility>

#include <fmt/format.h>

#include "common/sqlite_db.h"

namespace nhiguard::collector {
namespace {

using sqlite::exec;
using sqlite::Migration;
using sqlite::sqlite_error;
using sqlite::Statement;
using sqlite::Transaction;

// Append only: a shipped migration never changes; later ones add tables or columns. Proto messages
// are stored serialized (body columns) and are the source of truth; the other columns exist for
// queries. Unsigned 64-bit values are stored bit-for-bit in INTEGER columns.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);
CREATE TABLE agents (
  agent_id      TEXT PRIMARY KEY NOT NULL,
  hostname      TEXT NOT NULL,
  agent_version TEXT NOT NULL,
  reported_mode INTEGER NOT NULL,
  required_mode INTEGER NOT NULL DEFAULT 0,
  connected     INTEGER NOT NULL,
  first_seen_ns INTEGER NOT NULL,
  last_seen_ns  INTEGER NOT NULL,
  outbox_id     TEXT NOT NULL,
  peer          TEXT NOT NULL
);
CREATE TABLE outboxes (
  agent_id      TEXT NOT NULL,
  outbox_id     TEXT NOT NULL,
  acked_through INTEGER NOT NULL,
  first_seen_ns INTEGER NOT NULL,
  PRIMARY KEY (agent_id, outbox_id)
) WITHOUT ROWID;
CREATE TABLE reports (
  agent_id       TEXT NOT NULL,
  outbox_id      TEXT NOT NULL,
  sequence       INTEGER NOT NULL,
  kind           TEXT NOT NULL,
  event_id       TEXT NOT NULL,
  created_at_ns  INTEGER NOT NULL,
  received_at_ns INTEGER NOT NULL,
  body           BLOB NOT NULL,
  PRIMARY KEY (agent_id, outbox_id, sequence)
) WITHOUT ROWID;
CREATE TABLE lost_ranges (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id       TEXT NOT NULL,
  outbox_id      TEXT NOT NULL,
  first          INTEGER NOT NULL,
  last           INTEGER NOT NULL,
  source         TEXT NOT NULL,  -- 'agent' (ReportsDropped) or 'collector' (gap found at hello)
  reason         TEXT NOT NULL,
  recorded_at_ns INTEGER NOT NULL
);
CREATE INDEX lost_by_outbox ON lost_ranges(agent_id, outbox_id, first);
CREATE TABLE decisions (
  agent_id       TEXT NOT NULL,
  outbox_id      TEXT NOT NULL,
  sequence       INTEGER NOT NULL,
  decision_id    TEXT NOT NULL,
  handle         TEXT NOT NULL,
  time_ns        INTEGER NOT NULL,
  received_at_ns INTEGER NOT NULL,
  body           BLOB NOT NULL,
  PRIMARY KEY (agent_id, outbox_id, sequence)
) WITHOUT ROWID;
CREATE INDEX decisions_by_received ON decisions(received_at_ns);
CREATE TABLE actions (
  agent_id      TEXT NOT NULL,
  handle        TEXT NOT NULL,
  action        INTEGER NOT NULL,
  state         INTEGER NOT NULL,
  created_at_ns INTEGER NOT NULL,
  updated_at_ns INTEGER NOT NULL,
  body          BLOB NOT NULL,
  PRIMARY KEY (agent_id, handle)
) WITHOUT ROWID;
CREATE INDEX actions_by_handle ON actions(handle);
CREATE INDEX actions_by_created ON actions(created_at_ns);
CREATE TABLE action_history (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id   TEXT NOT NULL,
  handle     TEXT NOT NULL,
  to_state   INTEGER NOT NULL,
  command_id TEXT NOT NULL,
  body       BLOB NOT NULL
);
CREATE INDEX history_by_handle ON action_history(agent_id, handle, id);
CREATE TABLE commands (
  command_id      TEXT PRIMARY KEY NOT NULL,
  agent_id        TEXT NOT NULL,
  handle          TEXT NOT NULL,
  state           INTEGER NOT NULL,
  issued_at_ns    INTEGER NOT NULL,
  sent_at_ns      INTEGER,
  completed_at_ns INTEGER,
  body            BLOB NOT NULL,
  result          BLOB
);
CREATE INDEX commands_by_agent ON commands(agent_id, state, issued_at_ns);
CREATE INDEX commands_by_handle ON commands(handle, issued_at_ns);
)sql"},
    // Listing agents counted every report row; a per-outbox counter, kept by store_reports in the
    // same transaction, answers at once however large the store grows.
    {2, R"sql(
ALTER TABLE outboxes ADD COLUMN reports_stored INTEGER NOT NULL DEFAULT 0;
UPDATE outboxes SET reports_stored =
  (SELECT COUNT(*) FROM reports r WHERE r.agent_id = outboxes.agent_id AND r.outbox_id = outboxes.outbox_id);
)sql"},
    // Retention (prune_events) deletes old event reports by kind and age.
    {3, R"sql(
CREATE INDEX reports_by_kind_received ON reports(kind, received_at_ns);
)sql"},
};
static_assert(kMigrations[std::size(kMigrations) - 1].version == SqliteReportStore::kSchemaVersion);

constexpr std::string_view kFleetModeKey = "fleet_mode";

// Steps a statement that returns no rows.
Result<void> run(sqlite3* db, Statement& stmt, std::string_view what) {
  const int rc = stmt.step();
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
  return {};
}

Result<Statement*> checked(sqlite3* db, Statement& stmt, std::string_view what) {
  if (stmt.prepare_status() != SQLITE_OK) return fail(sqlite_error(db, stmt.prepare_status(), what));
  return &stmt;
}

std::string serialize(const google::protobuf::MessageLite& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  return bytes;
}

template <typename Message>
Result<Message> parse_stored(const std::string& bytes, std::string_view what) {
  Message message;
  if (!message.ParseFromString(bytes))
    return fail(Error{EUCLEAN, fmt::format("{}: stored message does not parse", what)});
  return message;
}

std::string_view kind_of(const v1::Report& report) {
  switch (report.body_case()) {
    case v1::Report::kCredentialAccess:
      return "credential_access";
    case v1::Report::kEgress:
      return "egress";
    case v1::Report::kDecision:
      return "decision";
    case v1::Report::kActionUpdate:
      return "action_update";
    case v1::Report::kCommandResult:
      return "command_result";
    case v1::Report::kReportsDropped:
      return "reports_dropped";
    case v1::Report::kAlert:
      return "alert";
    case v1::Report::kEvidence:
      return "evidence";
    case v1::Report::kControlAudit:
      return "control_audit";
    case v1::Report::kMemoryAccess:
      return "memory_access";
    case v1::Report::kBlockDeviceOpen:
      return "block_device_open";
    case v1::Report::BODY_NOT_SET:
      break;
  }
  return "unknown";  // a body field this collector does not know (a newer agent): kept whole
}

std::string_view event_id_of(const v1::Report& report) {
  switch (report.body_case()) {
    case v1::Report::kCredentialAccess:
      return report.credential_access().event_id();
    case v1::Report::kEgress:
      return report.egress().event_id();
    case v1::Report::kMemoryAccess:
      return report.memory_access().event_id();
    case v1::Report::kBlockDeviceOpen:
      return report.block_device_open().event_id();
    case v1::Report::kDecision:
      return report.decision().decision_id();
    case v1::Report::kActionUpdate:
      return report.action_update().action().handle();
    case v1::Report::kCommandResult:
      return report.command_result().command_id();
    default:
      return {};
  }
}

std::string_view command_kind(const v1::Command& command) {
  switch (command.body_case()) {
    case v1::Command::kApprove:
      return "approve";
    case v1::Command::kReject:
      return "reject";
    case v1::Command::kRollback:
      return "rollback";
    case v1::Command::kSetMode:
      return "set_mode";
    case v1::Command::BODY_NOT_SET:
      break;
  }
  return "unknown";
}

std::string_view command_handle(const v1::Command& command) {
  switch (command.body_case()) {
    case v1::Command::kApprove:
      return command.approve().handle();
    case v1::Command::kReject:
      return command.reject().handle();
    case v1::Command::kRollback:
      return command.rollback().handle();
    default:
      return {};
  }
}

// Advances `acked_through` over stored reports and lost ranges; returns the new value.
Result<uint64_t> advance_watermark(sqlite3* db, std::string_view agent_id, std::string_view outbox_id,
                                   uint64_t acked_through) {
  Statement next(db,
                 "SELECT sequence FROM reports WHERE agent_id = ?1 AND outbox_id = ?2 AND sequence > ?3 "
                 "ORDER BY sequence");
  Statement lost(db,
                 "SELECT MAX(last) FROM lost_ranges WHERE agent_id = ?1 AND outbox_id = ?2 AND first <= ?3 AND "
                 "last >= ?3");
  if (auto ok = checked(db, next, "prepare watermark"); !ok) return fail(std::move(ok.error()));
  if (auto ok = checked(db, lost, "prepare watermark"); !ok) return fail(std::move(ok.error()));
  for (;;) {
    const uint64_t before = acked_through;
    next.reset();
    next.bind(1, agent_id);
    next.bind(2, outbox_id);
    next.bind(3, static_cast<int64_t>(acked_through));
    for (;;) {
      const int rc = next.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, "watermark scan"));
      if (static_cast<uint64_t>(next.int_at(0)) != acked_through + 1) break;
      ++acked_through;
    }
    lost.reset();
    lost.bind(1, agent_id);
    lost.bind(2, outbox_id);
    lost.bind(3, static_cast<int64_t>(acked_through + 1));
    const int rc = lost.step();
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, "watermark lost ranges"));
    if (!lost.is_null(0)) acked_through = static_cast<uint64_t>(lost.int_at(0));
    if (acked_through == before) return acked_through;
  }
}

Result<void> record_lost(sqlite3* db, std::string_view agent_id, std::string_view outbox_id, uint64_t first,
                         uint64_t last, std::string_view source, std::string_view reason, int64_t now_ns) {
  Statement insert(db,
                   "INSERT INTO lost_ranges (agent_id, outbox_id, first, last, source, reason, recorded_at_ns) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  if (auto ok = checked(db, insert, "prepare lost range"); !ok) return fail(std::move(ok.error()));
  insert.bind(1, agent_id);
  insert.bind(2, outbox_id);
  insert.bind(3, static_cast<int64_t>(first));
  insert.bind(4, static_cast<int64_t>(last));
  insert.bind(5, source);
  insert.bind(6, reason);
  insert.bind(7, now_ns);
  return run(db, insert, "record lost range");
}

Result<v1::CommandStatus> read_command_row(const Statement& row) {
  // Columns: command_id, agent_id, state, body, result
  v1::CommandStatus status;
  auto command = parse_stored<v1::Command>(row.text_at(3), "command " + row.text_at(0));
  if (!command) return fail(std::move(command.error()));
  status.set_command_id(row.text_at(0));
  status.set_agent_id(row.text_at(1));
  status.set_state(static_cast<v1::CommandState>(row.int_at(2)));
  status.set_kind(std::string(command_kind(*command)));
  status.set_handle(std::string(command_handle(*command)));
  if (command->has_set_mode()) status.set_mode(command->set_mode().mode());
  status.set_issued_by(command->issued_by());
  status.set_issued_at_unix_ns(command->issued_at_unix_ns());
  if (!row.is_null(4)) {
    auto result = parse_stored<v1::CommandResult>(row.text_at(4), "command result " + row.text_at(0));
    if (!result) return fail(std::move(result.error()));
    *status.mutable_result() = std::move(*result);
  }
  return status;
}

constexpr const char* kCommandColumns = "command_id, agent_id, state, body, result";

}  // namespace

Result<std::unique_ptr<SqliteReportStore>> SqliteReportStore::open(const std::string& path) {
  auto db = sqlite::open_durable(path, {"collector store", kMigrations});
  if (!db) return fail(std::move(db.error()));
  return std::unique_ptr<SqliteReportStore>(new SqliteReportStore(path, *db));
}

SqliteReportStore::~SqliteReportStore() {
  sqlite3_close_v2(db_);
}

Result<AgentSession> SqliteReportStore::open_session(const AgentHello& in) {
  std::lock_guard lock(mutex_);
  const auto& hello = in.hello;
  const std::string what = fmt::format("open session of agent {}", in.agent_id);
  Transaction tx(db_);
  if (auto ok = tx.begin(what); !ok) return fail(std::move(ok.error()));

  Statement upsert(db_, R"sql(
INSERT INTO agents (agent_id, hostname, agent_version, reported_mode, required_mode, connected, first_seen_ns,
                    last_seen_ns, outbox_id, peer)
VALUES (?1, ?2, ?3, ?4, 0, 1, ?5, ?5, ?6, ?7)
ON CONFLICT (agent_id) DO UPDATE SET hostname = ?2, agent_version = ?3, reported_mode = ?4, connected = 1,
                                     last_seen_ns = ?5, outbox_id = ?6, peer = ?7)sql");
  if (auto ok = checked(db_, upsert, what); !ok) return fail(std::move(ok.error()));
  upsert.bind(1, in.agent_id);
  upsert.bind(2, hello.hostname());
  upsert.bind(3, hello.agent_version());
  upsert.bind(4, static_cast<int64_t>(hello.mode()));
  upsert.bind(5, in.now_ns);
  upsert.bind(6, hello.outbox_id());
  upsert.bind(7, in.peer);
  if (auto ok = run(db_, upsert, what); !ok) return fail(std::move(ok.error()));

  Statement outbox(db_,
                   "INSERT INTO outboxes (agent_id, outbox_id, acked_through, first_seen_ns) VALUES (?1, ?2, 0, ?3) "
                   "ON CONFLICT DO NOTHING");
  if (auto ok = checked(db_, outbox, what); !ok) return fail(std::move(ok.error()));
  outbox.bind(1, in.agent_id);
  outbox.bind(2, hello.outbox_id());
  outbox.bind(3, in.now_ns);
  if (auto ok = run(db_, outbox, what); !ok) return fail(std::move(ok.error()));

  Statement acked(db_, "SELECT acked_through FROM outboxes WHERE agent_id = ?1 AND outbox_id = ?2");
  if (auto ok = checked(db_, acked, what); !ok) return fail(std::move(ok.error()));
  acked.bind(1, in.agent_id);
  acked.bind(2, hello.outbox_id());
  if (const int rc = acked.step(); rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
  AgentSession session;
  session.acked_through = static_cast<uint64_t>(acked.int_at(0));

  // Reports the agent no longer holds were acknowledged by some collector: if this one does not
  // have them (its database was restored from an older copy, or replaced), record the gap as lost
  // so acks can advance, and say so.
  const uint64_t first_held =
      hello.lowest_pending_sequence() != 0 ? hello.lowest_pending_sequence() : hello.highest_sequence() + 1;
  if (first_held > session.acked_through + 1) {
    const uint64_t first = session.acked_through + 1, last = first_held - 1;
    if (auto ok = record_lost(db_, in.agent_id, hello.outbox_id(), first, last, "collector",
                              "acknowledged before but missing from this collector's database", in.now_ns);
        !ok)
      return fail(std::move(ok.error()));
    session.gap_recorded = last - first + 1;
  }
  auto advanced = advance_watermark(db_, in.agent_id, hello.outbox_id(), session.acked_through);
  if (!advanced) return fail(std::move(advanced.error()));
  if (*advanced != session.acked_through) {
    Statement update(db_, "UPDATE outboxes SET acked_through = ?3 WHERE agent_id = ?1 AND outbox_id = ?2");
    if (auto ok = checked(db_, update, what); !ok) return fail(std::move(ok.error()));
    update.bind(1, in.agent_id);
    update.bind(2, hello.outbox_id());
    update.bind(3, static_cast<int64_t>(*advanced));
    if (auto ok = run(db_, update, what); !ok) return fail(std::move(ok.error()));
    session.acked_through = *advanced;
  }

  Statement mode(db_,
                 "SELECT (SELECT value FROM settings WHERE key = ?2), required_mode FROM agents WHERE agent_id = ?1");
  if (auto ok = checked(db_, mode, what); !ok) return fail(std::move(ok.error()));
  mode.bind(1, in.agent_id);
  mode.bind(2, kFleetModeKey);
  if (const int rc = mode.step(); rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
  const auto fleet = mode.is_null(0) ? v1::MODE_UNSPECIFIED : static_cast<v1::Mode>(std::stoi(mode.text_at(0)));
  session.required_mode = fleet != v1::MODE_UNSPECIFIED ? fleet : static_cast<v1::Mode>(mode.int_at(1));
  if (auto ok = tx.commit(what); !ok) return fail(std::move(ok.error()));
  return session;
}

Result<void> SqliteReportStore::close_session(std::string_view agent_id, std::string_view peer, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE agents SET connected = 0, last_seen_ns = ?2 WHERE agent_id = ?1 AND peer = ?3");
  if (auto ok = checked(db_, update, "close session"); !ok) return fail(std::move(ok.error()));
  update.bind(1, agent_id);
  update.bind(2, now_ns);
  update.bind(3, peer);
  return run(db_, update, fmt::format("close session of agent {}", agent_id));
}

Result<StoreOutcome> SqliteReportStore::store_reports(std::span<const IngestRecord> records) {
  std::lock_guard lock(mutex_);
  StoreOutcome outcome;
  if (records.empty()) return outcome;
  const std::string what = fmt::format("store {} reports", records.size());
  Transaction tx(db_);
  if (auto ok = tx.begin(what); !ok) return fail(std::move(ok.error()));

  Statement insert(db_,
                   "INSERT INTO reports (agent_id, outbox_id, sequence, kind, event_id, created_at_ns, received_at_ns, "
                   "body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING");
  Statement decision(db_,
                     "INSERT INTO decisions (agent_id, outbox_id, sequence, decision_id, handle, time_ns, "
                     "received_at_ns, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  Statement action(db_, R"sql(
INSERT INTO actions (agent_id, handle, action, state, created_at_ns, updated_at_ns, body)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (agent_id, handle) DO UPDATE SET action = ?3, state = ?4, created_at_ns = ?5, updated_at_ns = ?6,
                                             body = ?7)sql");
  Statement history(db_,
                    "INSERT INTO action_history (agent_id, handle, to_state, command_id, body) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)");
  Statement complete(db_,
                     "UPDATE commands SET state = ?3, completed_at_ns = ?4, result = ?5 "
                     "WHERE command_id = ?1 AND agent_id = ?2 AND result IS NULL");
  Statement held(db_,
                 "SELECT sequence FROM reports WHERE agent_id = ?1 AND outbox_id = ?2 AND sequence BETWEEN ?3 AND ?4 "
                 "AND sequence != ?5 LIMIT 1");
  Statement covering(db_,
                     "SELECT first, last FROM lost_ranges WHERE agent_id = ?1 AND outbox_id = ?2 AND source = 'agent' "
                     "AND first <= ?3 ORDER BY first DESC LIMIT 1");
  for (Statement* stmt : {&insert, &decision, &action, &history, &complete, &held, &covering}) {
    if (auto ok = checked(db_, *stmt, what); !ok) return fail(std::move(ok.error()));
  }

  Statement read(db_, "SELECT acked_through FROM outboxes WHERE agent_id = ?1 AND outbox_id = ?2");
  Statement write(db_,
                  "UPDATE outboxes SET acked_through = ?3, reports_stored = reports_stored + ?4 "
                  "WHERE agent_id = ?1 AND outbox_id = ?2");
  for (Statement* stmt : {&read, &write}) {
    if (auto ok = checked(db_, *stmt, what); !ok) return fail(std::move(ok.error()));
  }
  struct OutboxState {
    uint64_t acked_before = 0;  // the watermark when this batch began
    uint64_t stored = 0;        // new reports in this batch
  };
  std::map<std::pair<std::string, std::string>, OutboxState> outboxes;  // every outbox of the batch
  for (const IngestRecord& r : records) {
    const v1::Report& report = r.report;
    auto [slot, first_seen] = outboxes.try_emplace({r.agent_id, r.outbox_id});
    OutboxState& outbox = slot->second;
    if (first_seen) {
      read.reset();
      read.bind(1, r.agent_id);
      read.bind(2, r.outbox_id);
      const int rc = read.step();
      if (rc == SQLITE_DONE)
        return fail(Error{ENOENT, fmt::format("{}: agent {} outbox {} has no session", what, r.agent_id, r.outbox_id)});
      if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
      outbox.acked_before = static_cast<uint64_t>(read.int_at(0));
    }
    // At or below the watermark: stored (or accounted for) before, whether or not its row is still
    // kept (old events may be pruned): a late resend is a duplicate, never a new report.
    if (report.sequence() <= outbox.acked_before) {
      ++outcome.duplicates;
      continue;
    }
    // The symmetric rule: a report the agent declared dropped cannot arrive afterwards.
    covering.reset();
    covering.bind(1, r.agent_id);
    covering.bind(2, r.outbox_id);
    covering.bind(3, static_cast<int64_t>(report.sequence()));
    if (const int rc = covering.step(); rc == SQLITE_ROW) {
      if (static_cast<uint64_t>(covering.int_at(1)) >= report.sequence())
        return fail(Error{EINVAL, fmt::format("agent {} outbox {}: report {} was declared dropped ({}-{})", r.agent_id,
                                              r.outbox_id, report.sequence(), covering.int_at(0), covering.int_at(1))});
    } else if (rc != SQLITE_DONE) {
      return fail(sqlite_error(db_, rc, what));
    }
    insert.reset();
    insert.bind(1, r.agent_id);
    insert.bind(2, r.outbox_id);
    insert.bind(3, static_cast<int64_t>(report.sequence()));
    insert.bind(4, kind_of(report));
    insert.bind(5, event_id_of(report));
    insert.bind(6, report.created_at_unix_ns());
    insert.bind(7, r.received_at_ns);
    insert.bind_blob(8, r.raw);
    if (auto ok = run(db_, insert, what); !ok) return fail(std::move(ok.error()));
    if (sqlite3_changes(db_) == 0) {
      ++outcome.duplicates;  // stored before: everything it implies is stored too
      continue;
    }
    ++outcome.stored;
    ++outbox.stored;

    switch (report.body_case()) {
      case v1::Report::kDecision: {
        const auto& d = report.decision();
        decision.reset();
        decision.bind(1, r.agent_id);
        decision.bind(2, r.outbox_id);
        decision.bind(3, static_cast<int64_t>(report.sequence()));
        decision.bind(4, d.decision_id());
        decision.bind(5, d.handle());
        decision.bind(6, d.time_unix_ns());
        decision.bind(7, r.received_at_ns);
        decision.bind_blob(8, serialize(d));
        if (auto ok = run(db_, decision, what); !ok) return fail(std::move(ok.error()));
        break;
      }
      case v1::Report::kActionUpdate:
      case v1::Report::kCommandResult: {
        const bool is_result = report.has_command_result();
        const v1::RollbackHandle* handle = nullptr;
        if (is_result && report.command_result().has_action()) handle = &report.command_result().action();
        if (!is_result) handle = &report.action_update().action();
        bool result_of_own_command = false;
        if (is_result) {
          const auto& result = report.command_result();
          complete.reset();
          complete.bind(1, result.command_id());
          complete.bind(2, r.agent_id);  // an agent completes only its own commands
          complete.bind(3, static_cast<int64_t>(v1::COMMAND_STATE_DONE));
          complete.bind(4, result.completed_at_unix_ns() != 0 ? result.completed_at_unix_ns() : r.received_at_ns);
          complete.bind_blob(5, serialize(result));
          if (auto ok = run(db_, complete, what); !ok) return fail(std::move(ok.error()));
          result_of_own_command = sqlite3_changes(db_) > 0;
          if (result_of_own_command) outcome.completed_commands.push_back(result.command_id());
        }
        // Reports of one outbox arrive in order: the latest one holds the action's current state.
        // A result for a command this agent was never sent (or answered before) is kept as a report
        // only: it changes no action (the agent's action updates carry every change anyway).
        if (handle != nullptr && !handle->handle().empty() && (!is_result || result_of_own_command)) {
          action.reset();
          action.bind(1, r.agent_id);
          action.bind(2, handle->handle());
          action.bind(3, static_cast<int64_t>(handle->action()));
          action.bind(4, static_cast<int64_t>(handle->state()));
          action.bind(5, handle->created_at_unix_ns());
          action.bind(6, handle->updated_at_unix_ns());
          action.bind_blob(7, serialize(*handle));
          if (auto ok = run(db_, action, what); !ok) return fail(std::move(ok.error()));
        }
        if (!is_result) {
          const auto& change = report.action_update().change();
          history.reset();
          history.bind(1, r.agent_id);
          history.bind(2, handle->handle());
          history.bind(3, static_cast<int64_t>(change.to_state()));
          history.bind(4, change.command_id());
          history.bind_blob(5, serialize(change));
          if (auto ok = run(db_, history, what); !ok) return fail(std::move(ok.error()));
        }
        break;
      }
      case v1::Report::kReportsDropped: {
        const auto& dropped = report.reports_dropped();
        for (const auto& range : dropped.ranges()) {
          // A sequence is either stored or dropped, never both: a range over what this outbox
          // already holds (or acknowledged) is a broken or hostile agent, and the whole batch of
          // that agent is refused (the pipeline stores the other agents' reports without it).
          if (range.first() <= outbox.acked_before)
            return fail(Error{EINVAL, fmt::format("agent {} outbox {} report {}: dropped range {}-{} reaches into "
                                                  "sequences already acknowledged (through {})",
                                                  r.agent_id, r.outbox_id, report.sequence(), range.first(),
                                                  range.last(), outbox.acked_before)});
          held.reset();
          held.bind(1, r.agent_id);
          held.bind(2, r.outbox_id);
          held.bind(3, static_cast<int64_t>(range.first()));
          held.bind(4, static_cast<int64_t>(range.last()));
          held.bind(5, static_cast<int64_t>(report.sequence()));
          const int rc = held.step();
          if (rc == SQLITE_ROW)
            return fail(Error{EINVAL, fmt::format("agent {} outbox {} report {}: dropped range {}-{} covers report {}, "
                                                  "which is stored",
                                                  r.agent_id, r.outbox_id, report.sequence(), range.first(),
                                                  range.last(), held.int_at(0))});
          if (rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
          if (auto ok = record_lost(db_, r.agent_id, r.outbox_id, range.first(), range.last(), "agent",
                                    dropped.reason(), r.received_at_ns);
              !ok)
            return fail(std::move(ok.error()));
        }
        break;
      }
      default:
        break;  // events, alerts, evidence metadata, unknown bodies: the reports row is the record
    }
  }

  for (const auto& [key, outbox] : outboxes) {
    const uint64_t before = outbox.acked_before;
    const uint64_t stored_here = outbox.stored;
    auto after = advance_watermark(db_, key.first, key.second, before);
    if (!after) return fail(std::move(after.error()));
    if (*after != before || stored_here != 0) {
      write.reset();
      write.bind(1, key.first);
      write.bind(2, key.second);
      write.bind(3, static_cast<int64_t>(*after));
      write.bind(4, static_cast<int64_t>(stored_here));
      if (auto ok = run(db_, write, what); !ok) return fail(std::move(ok.error()));
    }
    outcome.acks.push_back({key.first, key.second, *after});
  }
  if (auto ok = tx.commit(what); !ok) return fail(std::move(ok.error()));
  return outcome;
}

Result<v1::CommandStatus> SqliteReportStore::add_command(const CommandRecord& record) {
  std::lock_guard lock(mutex_);
  const auto& command = record.command;
  const std::string what = fmt::format("queue command {} for agent {}", command.command_id(), record.agent_id);
  Statement insert(db_,
                   "INSERT INTO commands (command_id, agent_id, handle, state, issued_at_ns, body) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  if (auto ok = checked(db_, insert, what); !ok) return fail(std::move(ok.error()));
  insert.bind(1, command.command_id());
  insert.bind(2, record.agent_id);
  insert.bind(3, command_handle(command));
  insert.bind(4, static_cast<int64_t>(v1::COMMAND_STATE_PENDING));
  insert.bind(5, command.issued_at_unix_ns());
  insert.bind_blob(6, serialize(command));
  if (auto ok = run(db_, insert, what); !ok) return fail(std::move(ok.error()));
  v1::CommandStatus status;
  status.set_command_id(command.command_id());
  status.set_agent_id(record.agent_id);
  status.set_kind(std::string(command_kind(command)));
  status.set_handle(std::string(command_handle(command)));
  if (command.has_set_mode()) status.set_mode(command.set_mode().mode());
  status.set_state(v1::COMMAND_STATE_PENDING);
  status.set_issued_by(command.issued_by());
  status.set_issued_at_unix_ns(command.issued_at_unix_ns());
  return status;
}

Result<std::vector<v1::Command>> SqliteReportStore::undelivered_commands(std::string_view agent_id) {
  std::lock_guard lock(mutex_);
  const std::string what = fmt::format("list undelivered commands of agent {}", agent_id);
  Statement select(db_,
                   "SELECT body FROM commands WHERE agent_id = ?1 AND state IN (?2, ?3) ORDER BY issued_at_ns, "
                   "command_id");
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, agent_id);
  select.bind(2, static_cast<int64_t>(v1::COMMAND_STATE_PENDING));
  select.bind(3, static_cast<int64_t>(v1::COMMAND_STATE_SENT));
  std::vector<v1::Command> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    auto command = parse_stored<v1::Command>(select.text_at(0), what);
    if (!command) return fail(std::move(command.error()));
    out.push_back(std::move(*command));
  }
}

Result<void> SqliteReportStore::mark_command_sent(std::string_view command_id, int64_t now_ns) {
  std::lock_guard lock(mutex_);
  Statement update(db_, "UPDATE commands SET state = ?2, sent_at_ns = ?3 WHERE command_id = ?1 AND state = ?4");
  if (auto ok = checked(db_, update, "mark command sent"); !ok) return fail(std::move(ok.error()));
  update.bind(1, command_id);
  update.bind(2, static_cast<int64_t>(v1::COMMAND_STATE_SENT));
  update.bind(3, now_ns);
  update.bind(4, static_cast<int64_t>(v1::COMMAND_STATE_PENDING));
  return run(db_, update, fmt::format("mark command {} sent", command_id));
}

Result<v1::CommandStatus> SqliteReportStore::get_command(std::string_view command_id) {
  std::lock_guard lock(mutex_);
  const std::string what = fmt::format("read command {}", command_id);
  Statement select(db_, fmt::format("SELECT {} FROM commands WHERE command_id = ?1", kCommandColumns));
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, command_id);
  const int rc = select.step();
  if (rc == SQLITE_DONE) return fail(Error{ENOENT, fmt::format("unknown command {}", command_id)});
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
  return read_command_row(select);
}

Result<v1::Mode> SqliteReportStore::fleet_mode() {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT value FROM settings WHERE key = ?1");
  if (auto ok = checked(db_, select, "read fleet mode"); !ok) return fail(std::move(ok.error()));
  select.bind(1, kFleetModeKey);
  const int rc = select.step();
  if (rc == SQLITE_DONE) return v1::MODE_UNSPECIFIED;
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, "read fleet mode"));
  return static_cast<v1::Mode>(std::stoi(select.text_at(0)));
}

Result<void> SqliteReportStore::set_fleet_mode(v1::Mode mode) {
  std::lock_guard lock(mutex_);
  Statement upsert(db_, "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2");
  if (auto ok = checked(db_, upsert, "set fleet mode"); !ok) return fail(std::move(ok.error()));
  upsert.bind(1, kFleetModeKey);
  upsert.bind(2, std::to_string(static_cast<int>(mode)));
  return run(db_, upsert, "set fleet mode");
}

Result<void> SqliteReportStore::set_required_mode(std::string_view agent_id, v1::Mode mode) {
  std::lock_guard lock(mutex_);
  const std::string what = fmt::format("set required mode of agent {}", agent_id);
  Statement update(db_, "UPDATE agents SET required_mode = ?2 WHERE agent_id = ?1");
  if (auto ok = checked(db_, update, what); !ok) return fail(std::move(ok.error()));
  update.bind(1, agent_id);
  update.bind(2, static_cast<int64_t>(mode));
  if (auto ok = run(db_, update, what); !ok) return fail(std::move(ok.error()));
  if (sqlite3_changes(db_) == 0) return fail(Error{ENOENT, fmt::format("unknown agent {}", agent_id)});
  return {};
}

Result<std::vector<v1::AgentSummary>> SqliteReportStore::list_agents() {
  std::lock_guard lock(mutex_);
  const char* what = "list agents";
  // Lost reports are added up with TOTAL (floating point, exact below 2^53), clamped to the signed
  // 64-bit range: SUM stops the whole listing with "integer overflow" once an agent's ranges add up
  // past 2^63, and rows written before ranges were validated may hold anything.
  Statement select(db_, R"sql(
SELECT a.agent_id, a.hostname, a.agent_version, a.reported_mode, a.required_mode, a.connected, a.first_seen_ns,
       a.last_seen_ns, a.outbox_id, a.peer,
       (SELECT acked_through FROM outboxes o WHERE o.agent_id = a.agent_id AND o.outbox_id = a.outbox_id),
       (SELECT COALESCE(SUM(reports_stored), 0) FROM outboxes o WHERE o.agent_id = a.agent_id),
       (SELECT CAST(MIN(TOTAL(MAX(last - first + 1, 0)), 9223372036854775807.0) AS INTEGER) FROM lost_ranges l
        WHERE l.agent_id = a.agent_id),
       (SELECT COUNT(*) FROM commands c WHERE c.agent_id = a.agent_id AND c.state IN (?1, ?2)),
       (SELECT value FROM settings WHERE key = ?3)
FROM agents a ORDER BY a.agent_id)sql");
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, static_cast<int64_t>(v1::COMMAND_STATE_PENDING));
  select.bind(2, static_cast<int64_t>(v1::COMMAND_STATE_SENT));
  select.bind(3, kFleetModeKey);
  std::vector<v1::AgentSummary> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    v1::AgentSummary a;
    a.set_agent_id(select.text_at(0));
    a.set_hostname(select.text_at(1));
    a.set_agent_version(select.text_at(2));
    a.set_reported_mode(static_cast<v1::Mode>(select.int_at(3)));
    const auto fleet = select.is_null(14) ? v1::MODE_UNSPECIFIED : static_cast<v1::Mode>(std::stoi(select.text_at(14)));
    a.set_required_mode(fleet != v1::MODE_UNSPECIFIED ? fleet : static_cast<v1::Mode>(select.int_at(4)));
    a.set_connected(select.int_at(5) != 0);
    a.set_first_seen_unix_ns(select.int_at(6));
    a.set_last_seen_unix_ns(select.int_at(7));
    a.set_outbox_id(select.text_at(8));
    a.set_peer(select.text_at(9));
    a.set_acked_through_sequence(static_cast<uint64_t>(select.int_at(10)));
    a.set_reports_stored(static_cast<uint64_t>(select.int_at(11)));
    a.set_reports_dropped(static_cast<uint64_t>(select.int_at(12)));
    a.set_pending_commands(static_cast<uint64_t>(select.int_at(13)));
    out.push_back(std::move(a));
  }
}

Result<bool> SqliteReportStore::agent_exists(std::string_view agent_id) {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT 1 FROM agents WHERE agent_id = ?1");
  if (auto ok = checked(db_, select, "look up agent"); !ok) return fail(std::move(ok.error()));
  select.bind(1, agent_id);
  const int rc = select.step();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, "look up agent"));
  return rc == SQLITE_ROW;
}

Result<std::vector<v1::StoredDecision>> SqliteReportStore::list_decisions(std::string_view agent_id, uint32_t limit) {
  std::lock_guard lock(mutex_);
  const char* what = "list incidents";
  Statement select(db_,
                   "SELECT agent_id, sequence, received_at_ns, body FROM decisions WHERE (?1 = '' OR agent_id = ?1) "
                   "ORDER BY received_at_ns DESC, sequence DESC LIMIT ?2");
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, agent_id);
  select.bind(2, static_cast<int64_t>(limit));
  std::vector<v1::StoredDecision> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    v1::StoredDecision d;
    d.set_agent_id(select.text_at(0));
    d.set_sequence(static_cast<uint64_t>(select.int_at(1)));
    d.set_received_at_unix_ns(select.int_at(2));
    auto body = parse_stored<v1::Decision>(select.text_at(3), what);
    if (!body) return fail(std::move(body.error()));
    *d.mutable_decision() = std::move(*body);
    out.push_back(std::move(d));
  }
}

namespace {

// Fills history and commands of `action` (its agent id and handle set).
Result<void> fill_action_details(sqlite3* db, v1::StoredAction& action, bool with_history) {
  const std::string what = fmt::format("read details of action {}", action.action().handle());
  if (with_history) {
    Statement select(db, "SELECT body FROM action_history WHERE agent_id = ?1 AND handle = ?2 ORDER BY id");
    if (auto ok = checked(db, select, what); !ok) return fail(std::move(ok.error()));
    select.bind(1, action.agent_id());
    select.bind(2, action.action().handle());
    for (;;) {
      const int rc = select.step();
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
      auto change = parse_stored<v1::StateChange>(select.text_at(0), what);
      if (!change) return fail(std::move(change.error()));
      *action.add_history() = std::move(*change);
    }
  }
  Statement commands(db, fmt::format("SELECT {} FROM commands WHERE agent_id = ?1 AND handle = ?2 ORDER BY "
                                     "issued_at_ns, command_id",
                                     kCommandColumns));
  if (auto ok = checked(db, commands, what); !ok) return fail(std::move(ok.error()));
  commands.bind(1, action.agent_id());
  commands.bind(2, action.action().handle());
  for (;;) {
    const int rc = commands.step();
    if (rc == SQLITE_DONE) return {};
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
    auto status = read_command_row(commands);
    if (!status) return fail(std::move(status.error()));
    *action.add_commands() = std::move(*status);
  }
}

}  // namespace

Result<std::vector<v1::StoredAction>> SqliteReportStore::list_actions(const ActionQuery& query) {
  std::lock_guard lock(mutex_);
  const char* what = "list actions";
  std::string states;
  for (auto state : query.states) states += (states.empty() ? "" : ",") + std::to_string(static_cast<int>(state));
  Statement select(db_, fmt::format("SELECT agent_id, body FROM actions WHERE (?1 = '' OR agent_id = ?1) {} "
                                    "ORDER BY created_at_ns DESC, handle DESC LIMIT ?2",
                                    states.empty() ? "" : "AND state IN (" + states + ")"));
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, query.agent_id);
  select.bind(2, static_cast<int64_t>(query.limit));
  std::vector<v1::StoredAction> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    v1::StoredAction a;
    a.set_agent_id(select.text_at(0));
    auto body = parse_stored<v1::RollbackHandle>(select.text_at(1), what);
    if (!body) return fail(std::move(body.error()));
    *a.mutable_action() = std::move(*body);
    out.push_back(std::move(a));
  }
  for (auto& a : out) {
    if (auto ok = fill_action_details(db_, a, query.with_history); !ok) return fail(std::move(ok.error()));
  }
  return out;
}

Result<v1::StoredAction> SqliteReportStore::find_action(std::string_view agent_id, std::string_view handle) {
  std::lock_guard lock(mutex_);
  const std::string what = fmt::format("look up action {}", handle);
  Statement select(db_,
                   "SELECT agent_id, body FROM actions WHERE handle = ?1 AND (?2 = '' OR agent_id = ?2) "
                   "ORDER BY agent_id LIMIT 11");
  if (auto ok = checked(db_, select, what); !ok) return fail(std::move(ok.error()));
  select.bind(1, handle);
  select.bind(2, agent_id);
  int rc = select.step();
  if (rc == SQLITE_DONE) {
    if (!agent_id.empty()) return fail(Error{ENOENT, fmt::format("agent {} reported no action {}", agent_id, handle)});
    return fail(Error{ENOENT, fmt::format("no agent reported an action {}", handle)});
  }
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
  v1::StoredAction a;
  a.set_agent_id(select.text_at(0));
  const std::string body_bytes = select.text_at(1);
  // Handles are ULIDs made by the agent that acted: two agents reporting one means a broken or
  // hostile agent. Commanding either could miss the real action, so neither is chosen: the
  // operator names the agent.
  std::vector<std::string> agents = {a.agent_id()};
  while ((rc = select.step()) == SQLITE_ROW) agents.push_back(select.text_at(0));
  if (rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  if (agents.size() > 1)
    return fail(
        Error{ENOTSUP,
              fmt::format("action {} was reported by more than one agent ({}{}): not choosing which "
                          "one to command; name the agent (--agent ID)",
                          handle, fmt::join(agents.begin(), agents.begin() + std::min<size_t>(agents.size(), 10), ", "),
                          agents.size() > 10 ? ", ..." : "")});
  auto body = parse_stored<v1::RollbackHandle>(body_bytes, what);
  if (!body) return fail(std::move(body.error()));
  *a.mutable_action() = std::move(*body);
  if (auto ok = fill_action_details(db_, a, true); !ok) return fail(std::move(ok.error()));
  return a;
}

Result<std::vector<std::string>> SqliteReportStore::agent_ids() {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT agent_id FROM agents ORDER BY agent_id");
  if (auto ok = checked(db_, select, "list agent ids"); !ok) return fail(std::move(ok.error()));
  std::vector<std::string> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, "list agent ids"));
    out.push_back(select.text_at(0));
  }
}

Result<uint64_t> SqliteReportStore::prune_events(int64_t received_before_ns, uint32_t max_rows) {
  std::lock_guard lock(mutex_);
  const char* what = "prune old events";
  Statement prune(db_, R"sql(
DELETE FROM reports WHERE (agent_id, outbox_id, sequence) IN (
  SELECT agent_id, outbox_id, sequence FROM reports
  WHERE kind IN ('credential_access', 'egress', 'memory_access', 'block_device_open') AND received_at_ns < ?1
  ORDER BY received_at_ns LIMIT ?2))sql");
  if (auto ok = checked(db_, prune, what); !ok) return fail(std::move(ok.error()));
  prune.bind(1, received_before_ns);
  prune.bind(2, static_cast<int64_t>(max_rows));
  if (auto ok = run(db_, prune, what); !ok) return fail(std::move(ok.error()));
  return static_cast<uint64_t>(sqlite3_changes(db_));
}

Result<uint64_t> SqliteReportStore::count_reports(std::string_view agent_id) {
  std::lock_guard lock(mutex_);
  Statement select(db_, "SELECT COUNT(*) FROM reports WHERE agent_id = ?1");
  if (auto ok = checked(db_, select, "count reports"); !ok) return fail(std::move(ok.error()));
  select.bind(1, agent_id);
  const int rc = select.step();
  if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, "count reports"));
  return static_cast<uint64_t>(select.int_at(0));
}

}  // namespace nhiguard::collector
