#include "ledger/rollback_ledger.h"

#include <sqlite3.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/sqlite_db.h"
#include "common/ulid.h"

namespace nhiguard::ledger {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;

namespace {

using sqlite::exec;
using sqlite::Migration;
using sqlite::sqlite_error;
using sqlite::Statement;
using sqlite::Transaction;

// Schema migrations, applied in order, each in its own transaction together with the bump of
// PRAGMA user_version to its number. Append only: a shipped migration never changes, a later issue
// adds {2, "ALTER TABLE actions ADD COLUMN ..."}. Enum columns hold the numeric values of
// ActionKind / ActionState (never renumbered, see action.h) and are validated in code rather than
// by CHECK constraints, which SQLite cannot alter when a kind is added. Unsigned 64-bit fields are
// stored bit-for-bit in INTEGER (int64) columns.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE actions (
  handle                 TEXT PRIMARY KEY NOT NULL,
  action                 INTEGER NOT NULL,
  state                  INTEGER NOT NULL,
  rule                   TEXT NOT NULL,
  reason                 TEXT NOT NULL,
  trigger_event_ids      TEXT NOT NULL,  -- JSON array of strings
  dry_run                INTEGER NOT NULL,
  created_at_ns          INTEGER NOT NULL,
  expires_at_ns          INTEGER,        -- NULL: no expiry (irreversible)
  expires_at_boot_ns     INTEGER NOT NULL,
  updated_at_ns          INTEGER NOT NULL,
  rollback_operation     TEXT NOT NULL,
  last_error             TEXT NOT NULL,
  target_unit            TEXT NOT NULL,
  target_cgroup_path     TEXT NOT NULL,
  target_cgroup_id       INTEGER NOT NULL,
  target_pid             INTEGER NOT NULL,
  target_pid_start_ns    INTEGER NOT NULL,
  target_session_id      INTEGER NOT NULL,
  target_credential_path TEXT NOT NULL,
  target_credential_id   INTEGER NOT NULL,
  target_destinations    TEXT NOT NULL,  -- JSON array of "CIDR[:port]"
  target_workload_uri    TEXT NOT NULL
);
CREATE INDEX actions_by_created ON actions(created_at_ns, handle);
CREATE INDEX actions_by_expiry ON actions(state, expires_at_ns);
CREATE INDEX actions_by_cgroup ON actions(target_cgroup_id);
CREATE TABLE action_history (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  handle     TEXT NOT NULL REFERENCES actions(handle),
  from_state INTEGER,                  -- NULL: the row that recorded the action
  to_state   INTEGER NOT NULL,
  at_ns      INTEGER NOT NULL,
  actor      TEXT NOT NULL,
  note       TEXT NOT NULL
);
CREATE INDEX history_by_handle ON action_history(handle, seq);
)sql"},
    // Local commands are audited: the peer behind a change made through the control socket, and
    // every such command, carried out or not. peer_pid NULL: no control-socket peer.
    {2, R"sql(
ALTER TABLE action_history ADD COLUMN peer_pid INTEGER;
ALTER TABLE action_history ADD COLUMN peer_uid INTEGER;
ALTER TABLE action_history ADD COLUMN peer_gid INTEGER;
ALTER TABLE action_history ADD COLUMN peer_start_ticks INTEGER;
ALTER TABLE action_history ADD COLUMN peer_exe TEXT;
ALTER TABLE action_history ADD COLUMN peer_comm TEXT;
ALTER TABLE action_history ADD COLUMN peer_cgroup TEXT;
CREATE TABLE control_audit (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ns            INTEGER NOT NULL,
  method           TEXT NOT NULL,
  handle           TEXT NOT NULL,
  detail           TEXT NOT NULL,
  outcome          TEXT NOT NULL,
  message          TEXT NOT NULL,
  peer_pid         INTEGER NOT NULL,
  peer_uid         INTEGER NOT NULL,
  peer_gid         INTEGER NOT NULL,
  peer_start_ticks INTEGER NOT NULL,
  peer_exe         TEXT NOT NULL,
  peer_comm        TEXT NOT NULL,
  peer_cgroup      TEXT NOT NULL
);
)sql"},
    // The boot expires_at_boot_ns counts in: a CLOCK_BOOTTIME value of another boot means nothing.
    // Rows of schema 1 have '' (unknown): reconcile gives them the boot whose pins still hold them.
    {3, R"sql(
ALTER TABLE actions ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
)sql"},
};

constexpr int kLatestVersion = kMigrations[std::size(kMigrations) - 1].version;
static_assert(kLatestVersion == RollbackLedger::kSchemaVersion, "add the migration and bump kSchemaVersion together");

constexpr const char* kActionColumns =
    "handle, action, state, rule, reason, trigger_event_ids, dry_run, created_at_ns, expires_at_ns, "
    "expires_at_boot_ns, updated_at_ns, rollback_operation, last_error, target_unit, target_cgroup_path, "
    "target_cgroup_id, target_pid, target_pid_start_ns, target_session_id, target_credential_path, "
    "target_credential_id, target_destinations, target_workload_uri, boot_id";

int64_t now_ns() {
  return static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
}

thread_local const ControlPeer* t_control_peer = nullptr;

constexpr const char* kHistoryColumns =
    "seq, handle, from_state, to_state, at_ns, actor, note, peer_pid, peer_uid, peer_gid, peer_start_ticks, "
    "peer_exe, peer_comm, peer_cgroup";

// Inserts one action_history row, with the thread's control peer when one is set.
Result<void> insert_history(sqlite3* db, std::string_view handle, std::optional<ActionState> from, ActionState to,
                            int64_t at, std::string_view actor, std::string_view note, const std::string& what) {
  Statement history(db,
                    "INSERT INTO action_history (handle, from_state, to_state, at_ns, actor, note, peer_pid, "
                    "peer_uid, peer_gid, peer_start_ticks, peer_exe, peer_comm, peer_cgroup) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  if (history.prepare_status() != SQLITE_OK) return fail(sqlite_error(db, history.prepare_status(), what));
  history.bind(1, handle);
  if (from) {
    history.bind(2, static_cast<int64_t>(*from));
  } else {
    history.bind_null(2);
  }
  history.bind(3, static_cast<int64_t>(to));
  history.bind(4, at);
  history.bind(5, actor);
  history.bind(6, note);
  if (const ControlPeer* peer = t_control_peer) {
    history.bind(7, int64_t{peer->pid});
    history.bind(8, int64_t{peer->uid});
    history.bind(9, int64_t{peer->gid});
    history.bind(10, static_cast<int64_t>(peer->start_time_ticks));
    history.bind(11, peer->exe);
    history.bind(12, peer->comm);
    history.bind(13, peer->cgroup);
  } else {
    for (int i = 7; i <= 13; ++i) history.bind_null(i);
  }
  if (const int rc = history.step(); rc != SQLITE_DONE) return fail(sqlite_error(db, rc, what));
  return {};
}

Result<std::string> to_json_array(const std::vector<std::string>& items, std::string_view what) {
  try {
    return nlohmann::json(items).dump();
  } catch (const nlohmann::json::exception& e) {
    // Only invalid UTF-8 gets here: refuse it loudly rather than store a lossy replacement.
    return fail(Error{EINVAL, fmt::format("{}: {}", what, e.what())});
  }
}

Result<std::vector<std::string>> from_json_array(const std::string& text, std::string_view what) {
  try {
    return nlohmann::json::parse(text).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    return fail(Error{EUCLEAN, fmt::format("{}: {}", what, e.what())});
  }
}

Result<RollbackHandle> read_handle(const Statement& row) {
  RollbackHandle h;
  h.handle = row.text_at(0);
  const auto kind = static_cast<ActionKind>(row.int_at(1));
  const auto state = static_cast<ActionState>(row.int_at(2));
  if (containment::to_string(kind) == "unknown" || containment::to_string(state) == "unknown") {
    return fail(Error{
        EUCLEAN, fmt::format("ledger row {}: unknown action {} or state {}", h.handle, row.int_at(1), row.int_at(2))});
  }
  h.action = kind;
  h.state = state;
  h.rule = row.text_at(3);
  h.reason = row.text_at(4);
  auto triggers = from_json_array(row.text_at(5), fmt::format("ledger row {} trigger_event_ids", h.handle));
  if (!triggers) return fail(std::move(triggers.error()));
  h.trigger_event_ids = std::move(*triggers);
  h.dry_run = row.int_at(6) != 0;
  h.created_at_ns = row.int_at(7);
  if (!row.is_null(8)) h.expires_at_ns = row.int_at(8);
  h.expires_at_boot_ns = static_cast<uint64_t>(row.int_at(9));
  h.updated_at_ns = row.int_at(10);
  h.rollback_operation = row.text_at(11);
  h.last_error = row.text_at(12);
  auto& t = h.target;
  t.unit = row.text_at(13);
  t.cgroup_path = row.text_at(14);
  t.cgroup_id = static_cast<uint64_t>(row.int_at(15));
  t.pid = static_cast<uint32_t>(row.int_at(16));
  t.pid_start_ns = static_cast<uint64_t>(row.int_at(17));
  t.session_id = static_cast<uint32_t>(row.int_at(18));
  t.credential_path = row.text_at(19);
  t.credential_id = static_cast<uint32_t>(row.int_at(20));
  auto destinations = from_json_array(row.text_at(21), fmt::format("ledger row {} target_destinations", h.handle));
  if (!destinations) return fail(std::move(destinations.error()));
  t.destinations = std::move(*destinations);
  t.workload_uri = row.text_at(22);
  h.boot_id = row.text_at(23);
  return h;
}

// Steps a SELECT of kActionColumns to the end.
Result<std::vector<RollbackHandle>> read_all(sqlite3* db, Statement& stmt, std::string_view what) {
  std::vector<RollbackHandle> out;
  for (;;) {
    const int rc = stmt.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
    auto handle = read_handle(stmt);
    if (!handle) return fail(std::move(handle.error()));
    out.push_back(std::move(*handle));
  }
}

// Steps a SELECT of kHistoryColumns to the end.
Result<std::vector<HistoryEntry>> read_history(sqlite3* db, Statement& select, std::string_view what) {
  std::vector<HistoryEntry> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db, rc, what));
    HistoryEntry e;
    e.seq = select.int_at(0);
    e.handle = select.text_at(1);
    if (!select.is_null(2)) e.from_state = static_cast<ActionState>(select.int_at(2));
    e.to_state = static_cast<ActionState>(select.int_at(3));
    e.at_ns = select.int_at(4);
    e.actor = select.text_at(5);
    e.note = select.text_at(6);
    if (!select.is_null(7)) {
      e.peer = ControlPeer{.pid = static_cast<int32_t>(select.int_at(7)),
                           .uid = static_cast<uint32_t>(select.int_at(8)),
                           .gid = static_cast<uint32_t>(select.int_at(9)),
                           .start_time_ticks = static_cast<uint64_t>(select.int_at(10)),
                           .exe = select.text_at(11),
                           .comm = select.text_at(12),
                           .cgroup = select.text_at(13)};
    }
    out.push_back(std::move(e));
  }
}

Error invalid_handle(std::string_view handle) {
  return Error{EINVAL, fmt::format("invalid handle id '{}' (expected rb_ followed by 26 characters of Crockford "
                                   "base32)",
                                   handle)};
}

Error unknown_handle(std::string_view handle) {
  return Error{ENOENT, fmt::format("unknown handle {}", handle)};
}

Result<void> check_actor(std::string_view actor) {
  if (is_known_actor(actor)) return {};
  return fail(Error{EINVAL, fmt::format("unknown actor '{}' (expected one of {})", actor, fmt::join(kActors, ", "))});
}

constexpr ActionState kAllStates[] = {ActionState::held,        ActionState::active,  ActionState::expired,
                                      ActionState::rolled_back, ActionState::failed,  ActionState::irreversible,
                                      ActionState::rejected,    ActionState::dry_run, ActionState::lapsed_by_reboot};

std::string allowed_targets(ActionKind kind, ActionState from) {
  std::vector<std::string_view> names;
  for (ActionState to : kAllStates) {
    if (is_allowed_transition(kind, from, to)) names.push_back(containment::to_string(to));
  }
  return names.empty() ? std::string("nothing") : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

bool is_known_actor(std::string_view actor) {
  return std::find(std::begin(kActors), std::end(kActors), actor) != std::end(kActors);
}

bool is_allowed_transition(ActionKind kind, ActionState from, ActionState to) {
  switch (from) {
    case ActionState::held:
      return (to == ActionState::active && containment::is_reversible(kind)) ||
             (to == ActionState::irreversible && !containment::is_reversible(kind)) || to == ActionState::rejected ||
             to == ActionState::failed;
    case ActionState::active:
      return to == ActionState::expired || to == ActionState::rolled_back || to == ActionState::failed ||
             to == ActionState::lapsed_by_reboot;
    default:  // terminal: never changes
      return false;
  }
}

Result<std::unique_ptr<RollbackLedger>> RollbackLedger::open(const std::string& path) {
  auto db = sqlite::open_durable(path, {.label = "ledger", .migrations = kMigrations});
  if (!db) return fail(std::move(db.error()));
  return std::unique_ptr<RollbackLedger>(new RollbackLedger(path, *db));
}

RollbackLedger::~RollbackLedger() {
  sqlite3_close_v2(db_);
}

Result<void> RollbackLedger::record(const RollbackHandle& h, std::string_view actor, std::string_view note) {
  const std::string what = fmt::format("ledger record {}", h.handle);
  if (!is_handle_id(h.handle)) return fail(invalid_handle(h.handle));
  if (auto ok = check_actor(actor); !ok) return ok;
  const bool reversible = containment::is_reversible(h.action);
  const bool initial_ok = h.state == ActionState::held || h.state == ActionState::failed ||
                          (h.state == ActionState::dry_run && h.dry_run) ||
                          (h.state == ActionState::active && reversible) ||
                          (h.state == ActionState::irreversible && !reversible);
  if (containment::to_string(h.action) == "unknown" || !initial_ok) {
    return fail(Error{EINVAL, fmt::format("{}: a new {} action cannot start in state {} (held, failed, dry_run "
                                          "with dry_run set, {})",
                                          what, containment::to_string(h.action), containment::to_string(h.state),
                                          reversible ? "active" : "irreversible")});
  }
  auto triggers = to_json_array(h.trigger_event_ids, what + " trigger_event_ids");
  if (!triggers) return fail(std::move(triggers.error()));
  auto destinations = to_json_array(h.target.destinations, what + " target destinations");
  if (!destinations) return fail(std::move(destinations.error()));

  std::lock_guard lock(mutex_);
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return begun;
  {
    Statement insert(db_, fmt::format("INSERT INTO actions ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                                      "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
                                      kActionColumns));
    if (insert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, insert.prepare_status(), what));
    const auto& t = h.target;
    insert.bind(1, h.handle);
    insert.bind(2, static_cast<int64_t>(h.action));
    insert.bind(3, static_cast<int64_t>(h.state));
    insert.bind(4, h.rule);
    insert.bind(5, h.reason);
    insert.bind(6, *triggers);
    insert.bind(7, int64_t{h.dry_run});
    insert.bind(8, h.created_at_ns);
    if (h.expires_at_ns) {
      insert.bind(9, *h.expires_at_ns);
    } else {
      insert.bind_null(9);
    }
    insert.bind(10, static_cast<int64_t>(h.expires_at_boot_ns));
    insert.bind(11, h.updated_at_ns);
    insert.bind(12, h.rollback_operation);
    insert.bind(13, h.last_error);
    insert.bind(14, t.unit);
    insert.bind(15, t.cgroup_path);
    insert.bind(16, static_cast<int64_t>(t.cgroup_id));
    insert.bind(17, int64_t{t.pid});
    insert.bind(18, static_cast<int64_t>(t.pid_start_ns));
    insert.bind(19, int64_t{t.session_id});
    insert.bind(20, t.credential_path);
    insert.bind(21, int64_t{t.credential_id});
    insert.bind(22, *destinations);
    insert.bind(23, t.workload_uri);
    insert.bind(24, h.boot_id);
    if (const int rc = insert.step(); rc != SQLITE_DONE) {
      Error error = sqlite_error(db_, rc, what);
      if (error.code == EEXIST) error.message = what + ": handle already recorded";
      return fail(std::move(error));
    }
  }
  if (auto ok = insert_history(db_, h.handle, std::nullopt, h.state, now_ns(), actor, note, what); !ok) return ok;
  return txn.commit(what);
}

Result<RollbackHandle> RollbackLedger::get_locked(std::string_view handle, std::string_view operation) {
  const std::string what = fmt::format("{} {}", operation, handle);
  Statement select(db_, fmt::format("SELECT {} FROM actions WHERE handle = ?1", kActionColumns));
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, handle);
  auto rows = read_all(db_, select, what);
  if (!rows) return fail(std::move(rows.error()));
  if (rows->empty()) return fail(unknown_handle(handle));
  return std::move(rows->front());
}

Result<RollbackHandle> RollbackLedger::get(std::string_view handle) {
  if (!is_handle_id(handle)) return fail(invalid_handle(handle));
  std::lock_guard lock(mutex_);
  return get_locked(handle, "ledger get");
}

Result<std::vector<RollbackHandle>> RollbackLedger::list(const ListFilter& filter) {
  std::string sql = fmt::format("SELECT {} FROM actions", kActionColumns);
  std::vector<std::string> conditions;
  if (!filter.states.empty()) {
    std::vector<int> values;
    for (ActionState s : filter.states) values.push_back(static_cast<int>(s));
    conditions.push_back(fmt::format("state IN ({})", fmt::join(values, ", ")));
  }
  if (filter.action) conditions.push_back(fmt::format("action = {}", static_cast<int>(*filter.action)));
  if (!conditions.empty()) sql += fmt::format(" WHERE {}", fmt::join(conditions, " AND "));
  // Handle ids are ULIDs: within one created_at they still order by creation.
  sql += " ORDER BY created_at_ns DESC, handle DESC";
  if (filter.limit > 0) sql += fmt::format(" LIMIT {}", filter.limit);

  std::lock_guard lock(mutex_);
  Statement select(db_, sql);
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), "ledger list"));
  return read_all(db_, select, "ledger list");
}

Result<RollbackHandle> RollbackLedger::transition(std::string_view handle, ActionState to, std::string_view actor,
                                                  std::string_view note, std::string last_error) {
  auto outcome = transition_outcome(handle, to, actor, note, std::move(last_error));
  if (!outcome) return fail(std::move(outcome.error()));
  return std::move(outcome->handle);
}

Result<TransitionOutcome> RollbackLedger::transition_outcome(std::string_view handle, ActionState to,
                                                             std::string_view actor, std::string_view note,
                                                             std::string last_error) {
  return transition_with_expiry(handle, to, actor, note, std::move(last_error), std::nullopt);
}

Result<RollbackHandle> RollbackLedger::activate(std::string_view handle, const Expiry& expiry, std::string_view actor,
                                                std::string_view note) {
  auto outcome = transition_with_expiry(handle, ActionState::active, actor, note, {}, expiry);
  if (!outcome) return fail(std::move(outcome.error()));
  if (!outcome->changed) {
    return fail(Error{EINVAL, fmt::format("{} is {}, not held: there is nothing to approve", handle,
                                          containment::to_string(outcome->handle.state))});
  }
  return std::move(outcome->handle);
}

Result<TransitionOutcome> RollbackLedger::transition_with_expiry(std::string_view handle, ActionState to,
                                                                 std::string_view actor, std::string_view note,
                                                                 std::string last_error, std::optional<Expiry> expiry) {
  if (!is_handle_id(handle)) return fail(invalid_handle(handle));
  if (auto ok = check_actor(actor); !ok) return fail(std::move(ok.error()));
  const std::string what = fmt::format("ledger transition {} to {}", handle, containment::to_string(to));

  std::lock_guard lock(mutex_);
  // The read happens inside the write transaction, so two callers (here or in another process)
  // cannot both see `active` and both write a change.
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return fail(std::move(begun.error()));
  auto current = get_locked(handle, "ledger transition");
  if (!current) return fail(std::move(current.error()));

  TransitionOutcome outcome{*current, current->state, false};
  if (containment::is_terminal(current->state)) return outcome;  // idempotent: nothing to write
  if (!is_allowed_transition(current->action, current->state, to)) {
    return fail(
        Error{EINVAL,
              fmt::format("illegal transition of {} ({}) from {} to {}: a {} {} action can become {}", handle,
                          containment::to_string(current->action), containment::to_string(current->state),
                          containment::to_string(to), containment::to_string(current->state),
                          containment::to_string(current->action), allowed_targets(current->action, current->state))});
  }

  const int64_t at = now_ns();
  RollbackHandle& updated = outcome.handle;
  updated.state = to;
  updated.updated_at_ns = at;
  if (!last_error.empty()) updated.last_error = std::move(last_error);
  if (expiry) {
    updated.expires_at_ns = expiry->wall_ns;
    updated.expires_at_boot_ns = expiry->boot_ns;
    updated.boot_id = expiry->boot_id;
  }
  {
    Statement update(db_,
                     "UPDATE actions SET state = ?1, updated_at_ns = ?2, last_error = ?3, expires_at_ns = ?5, "
                     "expires_at_boot_ns = ?6, boot_id = ?7 WHERE handle = ?4");
    if (update.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, update.prepare_status(), what));
    update.bind(1, static_cast<int64_t>(to));
    update.bind(2, at);
    update.bind(3, updated.last_error);
    update.bind(4, handle);
    if (updated.expires_at_ns) {
      update.bind(5, *updated.expires_at_ns);
    } else {
      update.bind_null(5);
    }
    update.bind(6, static_cast<int64_t>(updated.expires_at_boot_ns));
    update.bind(7, updated.boot_id);
    if (const int rc = update.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  }
  if (auto ok = insert_history(db_, handle, outcome.previous, to, at, actor, note, what); !ok)
    return fail(std::move(ok.error()));
  if (auto committed = txn.commit(what); !committed) return fail(std::move(committed.error()));
  outcome.changed = true;
  return outcome;
}

Result<std::vector<RollbackHandle>> RollbackLedger::due_for_expiry(std::string_view boot_id, uint64_t now_boot_ns) {
  std::lock_guard lock(mutex_);
  // expires_at_boot_ns is stored bit-for-bit as int64: compared here as the unsigned value it is.
  Statement select(db_, fmt::format("SELECT {} FROM actions WHERE state = ?1 AND expires_at_ns IS NOT NULL AND "
                                    "boot_id = ?2 AND expires_at_boot_ns != 0 ORDER BY handle",
                                    kActionColumns));
  if (select.prepare_status() != SQLITE_OK) {
    return fail(sqlite_error(db_, select.prepare_status(), "ledger due_for_expiry"));
  }
  select.bind(1, static_cast<int64_t>(ActionState::active));
  select.bind(2, boot_id);
  auto rows = read_all(db_, select, "ledger due_for_expiry");
  if (!rows) return rows;
  // is_reversible is the one definition of which kinds expire; an irreversible row should never be
  // active (record refuses it), this keeps a hand-edited one from reaching the sweeper.
  std::erase_if(*rows, [&](const RollbackHandle& h) {
    return !containment::is_reversible(h.action) || h.expires_at_boot_ns > now_boot_ns;
  });
  std::stable_sort(rows->begin(), rows->end(), [](const RollbackHandle& a, const RollbackHandle& b) {
    return a.expires_at_boot_ns < b.expires_at_boot_ns;
  });
  return rows;
}

Result<RollbackHandle> RollbackLedger::rebase(std::string_view handle, const Rebase& rebase, std::string_view actor,
                                              std::string_view note) {
  if (!is_handle_id(handle)) return fail(invalid_handle(handle));
  if (auto ok = check_actor(actor); !ok) return fail(std::move(ok.error()));
  const std::string what = fmt::format("ledger rebase {}", handle);
  std::lock_guard lock(mutex_);
  Transaction txn(db_);
  if (auto begun = txn.begin(what); !begun) return fail(std::move(begun.error()));
  auto current = get_locked(handle, "ledger rebase");
  if (!current) return fail(std::move(current.error()));
  if (current->state != ActionState::active || !containment::is_reversible(current->action)) {
    return fail(
        Error{EINVAL, fmt::format("{}: only an active reversible action is rebased (it is {} {})", what,
                                  containment::to_string(current->state), containment::to_string(current->action))});
  }
  const int64_t at = now_ns();
  RollbackHandle updated = *current;
  updated.updated_at_ns = at;
  updated.boot_id = rebase.boot_id;
  updated.expires_at_boot_ns = rebase.expires_at_boot_ns;
  updated.target.cgroup_id = rebase.cgroup_id;
  updated.target.credential_id = rebase.credential_id;
  {
    Statement update(db_,
                     "UPDATE actions SET updated_at_ns = ?1, boot_id = ?2, expires_at_boot_ns = ?3, "
                     "target_cgroup_id = ?4, target_credential_id = ?5 WHERE handle = ?6");
    if (update.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, update.prepare_status(), what));
    update.bind(1, at);
    update.bind(2, updated.boot_id);
    update.bind(3, static_cast<int64_t>(updated.expires_at_boot_ns));
    update.bind(4, static_cast<int64_t>(updated.target.cgroup_id));
    update.bind(5, int64_t{updated.target.credential_id});
    update.bind(6, handle);
    if (const int rc = update.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  }
  {
    Statement history(db_,
                      "INSERT INTO action_history (handle, from_state, to_state, at_ns, actor, note) "
                      "VALUES (?1, ?2, ?2, ?3, ?4, ?5)");
    if (history.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, history.prepare_status(), what));
    history.bind(1, handle);
    history.bind(2, static_cast<int64_t>(ActionState::active));
    history.bind(3, at);
    history.bind(4, actor);
    history.bind(5, note);
    if (const int rc = history.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  }
  if (auto committed = txn.commit(what); !committed) return fail(std::move(committed.error()));
  return updated;
}

Result<std::vector<HistoryEntry>> RollbackLedger::history(std::string_view handle) {
  if (!is_handle_id(handle)) return fail(invalid_handle(handle));
  const std::string what = fmt::format("ledger history {}", handle);
  std::lock_guard lock(mutex_);
  Statement select(db_, fmt::format("SELECT {} FROM action_history WHERE handle = ?1 ORDER BY seq", kHistoryColumns));
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, handle);
  auto out = read_history(db_, select, what);
  // record() always writes a first row, so no rows means no such handle.
  if (out && out->empty()) return fail(unknown_handle(handle));
  return out;
}

Result<std::vector<HistoryEntry>> RollbackLedger::history_after(int64_t after_seq, size_t limit) {
  const std::string what = fmt::format("ledger history after {}", after_seq);
  std::lock_guard lock(mutex_);
  Statement select(db_,
                   fmt::format("SELECT {} FROM action_history WHERE seq > ?1 ORDER BY seq LIMIT ?2", kHistoryColumns));
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, after_seq);
  select.bind(2, static_cast<int64_t>(limit));
  return read_history(db_, select, what);
}

ScopedControlPeer::ScopedControlPeer(const ControlPeer& peer) : previous_(t_control_peer) {
  t_control_peer = &peer;
}

ScopedControlPeer::~ScopedControlPeer() {
  t_control_peer = previous_;
}

const ControlPeer* ScopedControlPeer::current() {
  return t_control_peer;
}

Result<int64_t> RollbackLedger::record_audit(AuditEntry e) {
  const std::string what = fmt::format("ledger audit {} {}", e.method, e.handle);
  if (e.at_ns == 0) e.at_ns = now_ns();
  std::lock_guard lock(mutex_);
  Statement insert(db_,
                   "INSERT INTO control_audit (at_ns, method, handle, detail, outcome, message, peer_pid, "
                   "peer_uid, peer_gid, peer_start_ticks, peer_exe, peer_comm, peer_cgroup) VALUES (?1, ?2, "
                   "?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  if (insert.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, insert.prepare_status(), what));
  insert.bind(1, e.at_ns);
  insert.bind(2, e.method);
  insert.bind(3, e.handle);
  insert.bind(4, e.detail);
  insert.bind(5, e.outcome);
  insert.bind(6, e.message);
  insert.bind(7, int64_t{e.peer.pid});
  insert.bind(8, int64_t{e.peer.uid});
  insert.bind(9, int64_t{e.peer.gid});
  insert.bind(10, static_cast<int64_t>(e.peer.start_time_ticks));
  insert.bind(11, e.peer.exe);
  insert.bind(12, e.peer.comm);
  insert.bind(13, e.peer.cgroup);
  if (const int rc = insert.step(); rc != SQLITE_DONE) return fail(sqlite_error(db_, rc, what));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

Result<std::vector<AuditEntry>> RollbackLedger::audit_after(int64_t after_seq, size_t limit) {
  const std::string what = fmt::format("ledger audit after {}", after_seq);
  std::lock_guard lock(mutex_);
  Statement select(db_,
                   "SELECT seq, at_ns, method, handle, detail, outcome, message, peer_pid, peer_uid, peer_gid, "
                   "peer_start_ticks, peer_exe, peer_comm, peer_cgroup FROM control_audit WHERE seq > ?1 "
                   "ORDER BY seq LIMIT ?2");
  if (select.prepare_status() != SQLITE_OK) return fail(sqlite_error(db_, select.prepare_status(), what));
  select.bind(1, after_seq);
  select.bind(2, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  std::vector<AuditEntry> out;
  for (;;) {
    const int rc = select.step();
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return fail(sqlite_error(db_, rc, what));
    out.push_back(AuditEntry{.seq = select.int_at(0),
                             .at_ns = select.int_at(1),
                             .method = select.text_at(2),
                             .handle = select.text_at(3),
                             .detail = select.text_at(4),
                             .outcome = select.text_at(5),
                             .message = select.text_at(6),
                             .peer = {.pid = static_cast<int32_t>(select.int_at(7)),
                                      .uid = static_cast<uint32_t>(select.int_at(8)),
                                      .gid = static_cast<uint32_t>(select.int_at(9)),
                                      .start_time_ticks = static_cast<uint64_t>(select.int_at(10)),
                                      .exe = select.text_at(11),
                                      .comm = select.text_at(12),
                                      .cgroup = select.text_at(13)}});
  }
}

}  // namespace nhiguard::ledger
