// The rollback ledger's storage: round trips of every field, listing, expiry selection, history,
// durability across reopen, the on-disk format (WAL, 0600/0700), error values for bad input and
// bad files, atomic writes, and concurrent use from threads and from a second connection.
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <tuple>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "containment/action.h"
#include "ledger/rollback_ledger.h"
#include "common/ulid.h"
#include "sqlite_side_connection.h"

namespace nhiguard::ledger {
namespace {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;

// A temporary state directory, fully populated handles, and raw SQLite access on a separate
// connection to check what is on disk (journal mode, row counts) and to inject failures.
class LedgerTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nhiguard-ledger-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    path_ = (root_ / "state" / "ledger.db").string();  // "state" does not exist yet
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  std::unique_ptr<RollbackLedger> open_ledger() {
    auto ledger = RollbackLedger::open(path_);
    EXPECT_TRUE(ledger) << ledger.error().message;
    return ledger ? std::move(*ledger) : nullptr;
  }

  // A handle with every field set to something distinguishable.
  static RollbackHandle make_handle(ActionKind kind = ActionKind::block_egress, ActionState state = ActionState::active,
                                    int64_t created_at_ns = 1'700'000'000'000'000'000) {
    RollbackHandle h;
    h.handle = new_handle_id();
    h.action = kind;
    h.state = state;
    h.target.unit = "payments.service";
    h.target.cgroup_path = "/system.slice/payments.service";
    h.target.cgroup_id = 8123;
    h.target.pid = 4242;
    h.target.pid_start_ns = 987'654'321;
    h.target.session_id = 4200;
    h.target.credential_path = "/etc/payments/token";
    h.target.credential_id = 17;
    h.target.destinations = {"10.0.0.0/8", "[2001:db8::/32]:443"};
    h.target.workload_uri = "spiffe://td/host/h/systemd/payments.service";
    h.rule = "exfil-after-credential-read";
    h.reason = "read /etc/payments/token then connected to 203.0.113.9:443";
    h.trigger_event_ids = {"ev_1", "ev_2"};
    h.dry_run = false;
    h.created_at_ns = created_at_ns;
    if (containment::is_reversible(kind)) {
      h.expires_at_ns = created_at_ns + 900'000'000'000;
      h.expires_at_boot_ns = 55'000'000'000;
      h.boot_id = "3f1c2b9e-0d4a-4e67-9a51-7f0c1d2e3b4a";
    }
    h.updated_at_ns = created_at_ns;
    h.rollback_operation = "delete nhg_egress_blocks[cgroup 8123]";
    return h;
  }

  // The first column of the first row of `sql`, run on a separate connection.
  std::string query(const std::string& sql) const {
    sqlite3* db = nullptr;
    std::string out;
    if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
        const auto* text = sqlite3_column_text(stmt, 0);
        if (text) out = reinterpret_cast<const char*>(text);
      }
      sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return out;
  }

  // Runs `sql` on a separate connection; empty on success, else SQLite's message.
  std::string execute(const std::string& sql) const { return test_support::execute_sql(path_, sql); }

  std::filesystem::path root_;
  std::string path_;
};

void expect_same(const RollbackHandle& a, const RollbackHandle& b) {
  EXPECT_EQ(a.handle, b.handle);
  EXPECT_EQ(a.action, b.action);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.target.unit, b.target.unit);
  EXPECT_EQ(a.target.cgroup_path, b.target.cgroup_path);
  EXPECT_EQ(a.target.cgroup_id, b.target.cgroup_id);
  EXPECT_EQ(a.target.pid, b.target.pid);
  EXPECT_EQ(a.target.pid_start_ns, b.target.pid_start_ns);
  EXPECT_EQ(a.target.session_id, b.target.session_id);
  EXPECT_EQ(a.target.credential_path, b.target.credential_path);
  EXPECT_EQ(a.target.credential_id, b.target.credential_id);
  EXPECT_EQ(a.target.destinations, b.target.destinations);
  EXPECT_EQ(a.target.workload_uri, b.target.workload_uri);
  EXPECT_EQ(a.rule, b.rule);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.trigger_event_ids, b.trigger_event_ids);
  EXPECT_EQ(a.dry_run, b.dry_run);
  EXPECT_EQ(a.created_at_ns, b.created_at_ns);
  EXPECT_EQ(a.expires_at_ns, b.expires_at_ns);
  EXPECT_EQ(a.expires_at_boot_ns, b.expires_at_boot_ns);
  EXPECT_EQ(a.updated_at_ns, b.updated_at_ns);
  EXPECT_EQ(a.rollback_operation, b.rollback_operation);
  EXPECT_EQ(a.last_error, b.last_error);
}

std::vector<std::string> ids(const std::vector<RollbackHandle>& handles) {
  std::vector<std::string> out;
  for (const auto& h : handles) out.push_back(h.handle);
  return out;
}

using LedgerStore = LedgerTestBase;

TEST_F(LedgerStore, RecordGetRoundTripsEveryField) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  RollbackHandle h = make_handle();
  // Extremes and awkward text: full-width unsigned values, quotes, newlines, non-ASCII, a NUL.
  h.target.cgroup_id = std::numeric_limits<uint64_t>::max();
  h.target.pid_start_ns = std::numeric_limits<uint64_t>::max() - 1;
  h.target.pid = std::numeric_limits<uint32_t>::max();
  h.target.session_id = std::numeric_limits<uint32_t>::max();
  h.target.credential_id = std::numeric_limits<uint32_t>::max();
  h.expires_at_boot_ns = std::numeric_limits<uint64_t>::max();
  h.reason = "it's \"quoted\"\nand ünïcode ✓ and a NUL:";
  h.reason += std::string("\0tail", 5);
  h.dry_run = true;
  h.last_error = "previous attempt: EPERM";
  ASSERT_TRUE(ledger->record(h));

  auto got = ledger->get(h.handle);
  ASSERT_TRUE(got) << got.error().message;
  expect_same(*got, h);

  // An irreversible action has no wall-clock expiry: NULL survives as nullopt.
  RollbackHandle kill = make_handle(ActionKind::kill_session, ActionState::irreversible);
  kill.target.destinations.clear();
  kill.trigger_event_ids.clear();
  ASSERT_FALSE(kill.expires_at_ns);
  ASSERT_TRUE(ledger->record(kill));
  auto got_kill = ledger->get(kill.handle);
  ASSERT_TRUE(got_kill);
  expect_same(*got_kill, kill);

  auto all = ledger->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
}

TEST_F(LedgerStore, DuplicateRecordIsEexistAndKeepsTheStoredHandle) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle();
  ASSERT_TRUE(ledger->record(h));
  RollbackHandle again = h;
  again.reason = "something else";
  auto dup = ledger->record(again);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, EEXIST);
  EXPECT_NE(dup.error().message.find(h.handle), std::string::npos) << dup.error().message;
  EXPECT_NE(dup.error().message.find("already recorded"), std::string::npos) << dup.error().message;
  EXPECT_EQ(ledger->get(h.handle)->reason, h.reason);
  EXPECT_EQ(ledger->history(h.handle)->size(), 1u);
}

TEST_F(LedgerStore, RecordRefusesBadInput) {
  auto ledger = open_ledger();
  RollbackHandle bad_id = make_handle();
  bad_id.handle = "rb_nope";
  EXPECT_EQ(ledger->record(bad_id).error().code, EINVAL);

  // kill_* can never be active, reversible kinds never irreversible, and nothing starts finished.
  EXPECT_EQ(ledger->record(make_handle(ActionKind::kill_process, ActionState::active)).error().code, EINVAL);
  EXPECT_EQ(ledger->record(make_handle(ActionKind::freeze, ActionState::irreversible)).error().code, EINVAL);
  for (ActionState s : {ActionState::expired, ActionState::rolled_back, ActionState::rejected}) {
    auto r = ledger->record(make_handle(ActionKind::block_egress, s));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, EINVAL);
    EXPECT_NE(r.error().message.find("cannot start in state"), std::string::npos) << r.error().message;
  }
  auto bad_actor = ledger->record(make_handle(), "mallory");
  ASSERT_FALSE(bad_actor);
  EXPECT_EQ(bad_actor.error().code, EINVAL);
  EXPECT_NE(bad_actor.error().message.find("unknown actor 'mallory'"), std::string::npos);

  RollbackHandle bad_utf8 = make_handle();
  bad_utf8.trigger_event_ids = {"\xff\xfe"};
  EXPECT_EQ(ledger->record(bad_utf8).error().code, EINVAL);

  // Every start state that is allowed is accepted.
  EXPECT_TRUE(ledger->record(make_handle(ActionKind::block_egress, ActionState::held)));
  EXPECT_TRUE(ledger->record(make_handle(ActionKind::deny_credential, ActionState::failed)));
  EXPECT_TRUE(ledger->record(make_handle(ActionKind::kill_process, ActionState::held)));
  EXPECT_TRUE(ledger->record(make_handle(ActionKind::kill_process, ActionState::irreversible)));
  EXPECT_EQ(ledger->list()->size(), 4u);
}

TEST_F(LedgerStore, UnknownHandleIsEnoentWithTheHandleInTheMessage) {
  auto ledger = open_ledger();
  const std::string missing = "rb_01ARYZ6S41TSV4RRFFQ69G5FAV";
  auto got = ledger->get(missing);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, ENOENT);
  EXPECT_EQ(got.error().message, "unknown handle rb_01ARYZ6S41TSV4RRFFQ69G5FAV");

  auto moved = ledger->transition(missing, ActionState::rolled_back, "nhiguardctl", "rollback");
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, ENOENT);
  EXPECT_EQ(moved.error().message, "unknown handle rb_01ARYZ6S41TSV4RRFFQ69G5FAV");

  auto history = ledger->history(missing);
  ASSERT_FALSE(history);
  EXPECT_EQ(history.error().code, ENOENT);

  // A malformed id is bad input, not an unknown handle.
  auto malformed = ledger->get("rb_../../etc/passwd");
  ASSERT_FALSE(malformed);
  EXPECT_EQ(malformed.error().code, EINVAL);
  EXPECT_NE(malformed.error().message.find("invalid handle id"), std::string::npos);
}

TEST_F(LedgerStore, ListIsNewestFirstAndFilters) {
  auto ledger = open_ledger();
  const int64_t t0 = 1'700'000'000'000'000'000;
  RollbackHandle egress_old = make_handle(ActionKind::block_egress, ActionState::active, t0);
  RollbackHandle freeze_mid = make_handle(ActionKind::freeze, ActionState::held, t0 + 1000);
  RollbackHandle kill_new = make_handle(ActionKind::kill_process, ActionState::irreversible, t0 + 2000);
  RollbackHandle egress_new = make_handle(ActionKind::block_egress, ActionState::failed, t0 + 3000);
  // Recorded out of order: the order comes from created_at, not insertion.
  for (const auto* h : {&freeze_mid, &egress_new, &egress_old, &kill_new}) ASSERT_TRUE(ledger->record(*h));

  auto all = ledger->list();
  ASSERT_TRUE(all);
  EXPECT_EQ(ids(*all),
            (std::vector<std::string>{egress_new.handle, kill_new.handle, freeze_mid.handle, egress_old.handle}));

  auto egress = ledger->list({.action = ActionKind::block_egress});
  EXPECT_EQ(ids(*egress), (std::vector<std::string>{egress_new.handle, egress_old.handle}));

  auto live = ledger->list({.states = {ActionState::active, ActionState::held}});
  EXPECT_EQ(ids(*live), (std::vector<std::string>{freeze_mid.handle, egress_old.handle}));

  auto active_egress = ledger->list({.states = {ActionState::active}, .action = ActionKind::block_egress});
  EXPECT_EQ(ids(*active_egress), (std::vector<std::string>{egress_old.handle}));

  auto newest_two = ledger->list({.limit = 2});
  EXPECT_EQ(ids(*newest_two), (std::vector<std::string>{egress_new.handle, kill_new.handle}));

  EXPECT_TRUE(ledger->list({.states = {ActionState::rolled_back}})->empty());
}

TEST_F(LedgerStore, SameCreationTimeOrdersByHandleId) {
  auto ledger = open_ledger();
  RollbackHandle first = make_handle();
  RollbackHandle second = make_handle();  // later ULID, same created_at_ns
  ASSERT_TRUE(ledger->record(second));
  ASSERT_TRUE(ledger->record(first));
  EXPECT_EQ(ids(*ledger->list()), (std::vector<std::string>{second.handle, first.handle}));
}

TEST_F(LedgerStore, DueForExpiryBoundaries) {
  auto ledger = open_ledger();
  const std::string boot = "3f1c2b9e-0d4a-4e67-9a51-7f0c1d2e3b4a";
  const uint64_t now = 900'000'000'000'000;  // CLOCK_BOOTTIME of `boot`
  // The wall-clock expiry is set against the boot one (long past for the not-yet-due ones, far
  // ahead for the due ones): only the boot clock may decide.
  auto with_expiry = [&](ActionKind kind, ActionState state, std::optional<uint64_t> boot_expires,
                         std::string boot_id = "3f1c2b9e-0d4a-4e67-9a51-7f0c1d2e3b4a") {
    RollbackHandle h = make_handle(kind, state);
    if (boot_expires) {
      h.expires_at_boot_ns = *boot_expires;
      h.expires_at_ns = *boot_expires <= now ? 4'000'000'000'000'000'000 : 1;
    } else {
      h.expires_at_ns.reset();
      h.expires_at_boot_ns = 0;
    }
    h.boot_id = std::move(boot_id);
    EXPECT_TRUE(ledger->record(h));
    return h;
  };
  RollbackHandle exactly_now = with_expiry(ActionKind::block_egress, ActionState::active, now);
  RollbackHandle long_ago = with_expiry(ActionKind::freeze, ActionState::active, now - 60'000'000'000);
  RollbackHandle one_ns_later = with_expiry(ActionKind::deny_credential, ActionState::active, now + 1);
  with_expiry(ActionKind::block_egress, ActionState::active, std::nullopt);        // no TTL
  with_expiry(ActionKind::block_egress, ActionState::held, now - 1);               // held: never due
  with_expiry(ActionKind::kill_process, ActionState::irreversible, std::nullopt);  // irreversible
  with_expiry(ActionKind::block_egress, ActionState::failed, now - 1);             // terminal
  with_expiry(ActionKind::block_egress, ActionState::active, 1, "another-boot");   // reconcile's, not the sweeper's
  with_expiry(ActionKind::block_egress, ActionState::active, 1, "");               // boot unknown (schema 1)
  RollbackHandle rolled = with_expiry(ActionKind::block_egress, ActionState::active, now - 1);
  ASSERT_TRUE(ledger->transition(rolled.handle, ActionState::rolled_back, "nhiguardctl", "undo"));

  auto due = ledger->due_for_expiry(boot, now);
  ASSERT_TRUE(due) << due.error().message;
  EXPECT_EQ(ids(*due), (std::vector<std::string>{long_ago.handle, exactly_now.handle}));  // soonest first

  auto before = ledger->due_for_expiry(boot, now - 1);
  EXPECT_EQ(ids(*before), (std::vector<std::string>{long_ago.handle}));

  auto after = ledger->due_for_expiry(boot, now + 1);
  EXPECT_EQ(ids(*after), (std::vector<std::string>{long_ago.handle, exactly_now.handle, one_ns_later.handle}));

  // Values past 2^63 (stored bit-for-bit in int64) still compare as the unsigned values they are.
  RollbackHandle far = with_expiry(ActionKind::block_egress, ActionState::active, (1ull << 63) + 5);
  EXPECT_EQ(ids(*ledger->due_for_expiry(boot, now + 1)).size(), 3u);
  EXPECT_EQ(ids(*ledger->due_for_expiry(boot, (1ull << 63) + 5)).back(), far.handle);
  ASSERT_TRUE(ledger->transition(far.handle, ActionState::rolled_back, "nhiguardctl", "undo"));

  // The sweeper's loop: expire what is due, and it is no longer due.
  for (const auto& h : *due) ASSERT_TRUE(ledger->transition(h.handle, ActionState::expired, "sweeper", "ttl"));
  EXPECT_TRUE(ledger->due_for_expiry(boot, now)->empty());
}

TEST_F(LedgerStore, BootIdIsStoredAndRebaseMovesAnActionToANewBoot) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle(ActionKind::deny_credential, ActionState::active);
  ASSERT_TRUE(ledger->record(h, "agent", "applied"));
  EXPECT_EQ(ledger->get(h.handle)->boot_id, h.boot_id);

  auto rebased = ledger->rebase(
      h.handle, {.boot_id = "new-boot", .expires_at_boot_ns = 7'000'000'000, .cgroup_id = 9001, .credential_id = 23},
      "reconcile", "re-applied after reboot");
  ASSERT_TRUE(rebased) << rebased.error().message;
  auto stored = ledger->get(h.handle);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, ActionState::active);
  EXPECT_EQ(stored->boot_id, "new-boot");
  EXPECT_EQ(stored->expires_at_boot_ns, 7'000'000'000u);
  EXPECT_EQ(stored->target.cgroup_id, 9001u);
  EXPECT_EQ(stored->target.credential_id, 23u);
  EXPECT_EQ(stored->expires_at_ns, h.expires_at_ns) << "the wall-clock expiry is the action's and stays";
  auto history = ledger->history(h.handle);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ(history->back().from_state, ActionState::active);
  EXPECT_EQ(history->back().to_state, ActionState::active);
  EXPECT_EQ(history->back().note, "re-applied after reboot");

  // lapsed_by_reboot: reachable from active only, terminal.
  EXPECT_TRUE(is_allowed_transition(ActionKind::freeze, ActionState::active, ActionState::lapsed_by_reboot));
  EXPECT_FALSE(is_allowed_transition(ActionKind::freeze, ActionState::held, ActionState::lapsed_by_reboot));
  ASSERT_TRUE(ledger->transition(h.handle, ActionState::lapsed_by_reboot, "reconcile", "lapsed"));
  auto again = ledger->transition_outcome(h.handle, ActionState::rolled_back, "nhiguardctl", "rollback");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->handle.state, ActionState::lapsed_by_reboot);
  auto refused = ledger->rebase(h.handle, {.boot_id = "x"}, "reconcile", "no");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, EINVAL);
}

TEST_F(LedgerStore, HistoryKeepsEveryChangeInOrderWithActors) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle(ActionKind::block_egress, ActionState::held);
  ASSERT_TRUE(ledger->record(h, "agent", "held: blast radius"));
  ASSERT_TRUE(ledger->transition(h.handle, ActionState::active, "collector", "approved by alice"));
  ASSERT_TRUE(ledger->transition(h.handle, ActionState::rolled_back, "nhiguardctl", "false positive"));
  ASSERT_TRUE(ledger->transition(h.handle, ActionState::expired, "sweeper", "ttl"));  // no-op: terminal

  auto history = ledger->history(h.handle);
  ASSERT_TRUE(history) << history.error().message;
  ASSERT_EQ(history->size(), 3u);
  const auto& rows = *history;
  EXPECT_FALSE(rows[0].from_state);
  EXPECT_EQ(rows[0].to_state, ActionState::held);
  EXPECT_EQ(rows[0].actor, "agent");
  EXPECT_EQ(rows[0].note, "held: blast radius");
  EXPECT_EQ(rows[1].from_state, ActionState::held);
  EXPECT_EQ(rows[1].to_state, ActionState::active);
  EXPECT_EQ(rows[1].actor, "collector");
  EXPECT_EQ(rows[1].note, "approved by alice");
  EXPECT_EQ(rows[2].from_state, ActionState::active);
  EXPECT_EQ(rows[2].to_state, ActionState::rolled_back);
  EXPECT_EQ(rows[2].actor, "nhiguardctl");
  EXPECT_EQ(rows[2].note, "false positive");
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].handle, h.handle);
    EXPECT_GT(rows[i].at_ns, 0);
    if (i > 0) {
      EXPECT_GT(rows[i].seq, rows[i - 1].seq);
      EXPECT_GE(rows[i].at_ns, rows[i - 1].at_ns);
    }
  }
  // updated_at follows the last change.
  EXPECT_EQ(ledger->get(h.handle)->updated_at_ns, rows[2].at_ns);
}

TEST_F(LedgerStore, PersistsAcrossCloseAndReopen) {
  RollbackHandle active = make_handle();
  RollbackHandle rolled = make_handle(ActionKind::freeze, ActionState::active);
  RollbackHandle failed = make_handle(ActionKind::deny_credential, ActionState::held);
  std::vector<HistoryEntry> rolled_history;
  {
    auto ledger = open_ledger();
    ASSERT_TRUE(ledger);
    for (const auto* h : {&active, &rolled, &failed}) ASSERT_TRUE(ledger->record(*h));
    ASSERT_TRUE(ledger->transition(rolled.handle, ActionState::rolled_back, "nhiguardctl", "undo"));
    ASSERT_TRUE(ledger->transition(failed.handle, ActionState::failed, "agent", "apply", "bpf_map_update_elem: E2BIG"));
    rolled = *ledger->get(rolled.handle);
    failed = *ledger->get(failed.handle);
    rolled_history = *ledger->history(rolled.handle);
  }  // closed: as after an agent restart
  auto reopened = open_ledger();
  ASSERT_TRUE(reopened);
  for (const auto* h : {&active, &rolled, &failed}) {
    auto got = reopened->get(h->handle);
    ASSERT_TRUE(got) << got.error().message;
    expect_same(*got, *h);
  }
  EXPECT_EQ(failed.last_error, "bpf_map_update_elem: E2BIG");
  auto history = reopened->history(rolled.handle);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), rolled_history.size());
  for (size_t i = 0; i < history->size(); ++i) {
    EXPECT_EQ((*history)[i].seq, rolled_history[i].seq);
    EXPECT_EQ((*history)[i].to_state, rolled_history[i].to_state);
    EXPECT_EQ((*history)[i].at_ns, rolled_history[i].at_ns);
  }
  // And it keeps working: new records get later history rows.
  RollbackHandle later = make_handle();
  ASSERT_TRUE(reopened->record(later));
  EXPECT_GT(reopened->history(later.handle)->front().seq, history->back().seq);
  EXPECT_EQ(reopened->list()->size(), 4u);
}

TEST_F(LedgerStore, UsesWalAndASchemaVersion) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  EXPECT_EQ(query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query("PRAGMA user_version"), std::to_string(RollbackLedger::kSchemaVersion));
  EXPECT_EQ(query("SELECT count(*) FROM sqlite_master WHERE name IN ('actions', 'action_history')"), "2");
}

TEST_F(LedgerStore, FileIs0600AndNewDirectory0700) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  ASSERT_TRUE(ledger->record(make_handle()));  // so the WAL exists too
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat((path_ + "-wal").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << std::oct << (st.st_mode & 07777);
  ASSERT_EQ(stat((root_ / "state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(LedgerStore, ExistingLooseFileIsTightenedTo0600) {
  std::filesystem::create_directories(root_ / "state");
  {
    std::ofstream(path_).flush();
  }  // an empty file is a valid new database
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(LedgerStore, NonSqliteFileIsAClearErrorAndIsLeftAlone) {
  std::filesystem::create_directories(root_ / "state");
  const std::string garbage = "this is not an SQLite database, it is someone's notes\n" + std::string(8192, 'x');
  {
    std::ofstream(path_) << garbage;
  }
  auto ledger = RollbackLedger::open(path_);
  ASSERT_FALSE(ledger);
  EXPECT_EQ(ledger.error().code, EUCLEAN);
  EXPECT_NE(ledger.error().message.find(path_), std::string::npos) << ledger.error().message;
  EXPECT_NE(ledger.error().message.find("not a database"), std::string::npos) << ledger.error().message;
  // Never re-created over what was there.
  std::ifstream in(path_);
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(kept, garbage);
}

TEST_F(LedgerStore, DamagedLedgerIsAClearError) {
  {
    auto ledger = open_ledger();
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(ledger->record(make_handle()));
  }
  // Overwrite the b-tree pages after the first (the header stays valid, the tables do not).
  {
    std::fstream file(path_, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4096);
    const std::string noise(4 * 4096, '\x5a');
    file.write(noise.data(), static_cast<std::streamsize>(noise.size()));
  }
  std::filesystem::remove(path_ + "-wal");
  std::filesystem::remove(path_ + "-shm");
  auto ledger = RollbackLedger::open(path_);
  ASSERT_FALSE(ledger);
  EXPECT_EQ(ledger.error().code, EUCLEAN) << ledger.error().message;
  EXPECT_NE(ledger.error().message.find(path_), std::string::npos) << ledger.error().message;
  EXPECT_NE(ledger.error().message.find("move it aside"), std::string::npos) << ledger.error().message;
}

TEST_F(LedgerStore, PathThatIsADirectoryOrEmptyIsAnError) {
  std::filesystem::create_directories(path_);
  auto dir = RollbackLedger::open(path_);
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().code, 0);
  EXPECT_NE(dir.error().message.find(path_), std::string::npos) << dir.error().message;
  EXPECT_EQ(RollbackLedger::open("").error().code, EINVAL);
}

TEST_F(LedgerStore, NewerSchemaIsRefused) {
  {
    open_ledger();
  }
  ASSERT_EQ(execute("PRAGMA user_version = 99"), "");
  auto ledger = RollbackLedger::open(path_);
  ASSERT_FALSE(ledger);
  EXPECT_EQ(ledger.error().code, ENOTSUP);
  EXPECT_NE(ledger.error().message.find("schema version 99"), std::string::npos) << ledger.error().message;
}

TEST_F(LedgerStore, FailedRecordWritesNothing) {
  auto ledger = open_ledger();
  // A failing write injected from outside: the history insert fails after the action row went in.
  ASSERT_EQ(execute("CREATE TRIGGER fail_history BEFORE INSERT ON action_history "
                    "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"),
            "");
  RollbackHandle h = make_handle();
  auto recorded = ledger->record(h);
  ASSERT_FALSE(recorded);
  EXPECT_NE(recorded.error().message.find("ledger record " + h.handle), std::string::npos) << recorded.error().message;
  EXPECT_NE(recorded.error().message.find("injected write failure"), std::string::npos);
  EXPECT_EQ(ledger->get(h.handle).error().code, ENOENT);  // the action row was rolled back too
  EXPECT_EQ(query("SELECT count(*) FROM actions"), "0");
}

TEST_F(LedgerStore, FailedTransitionLeavesRowAndHistoryUnchanged) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle();
  ASSERT_TRUE(ledger->record(h));
  ASSERT_EQ(execute("CREATE TRIGGER fail_history BEFORE INSERT ON action_history "
                    "BEGIN SELECT RAISE(ABORT, 'injected write failure'); END"),
            "");
  auto moved = ledger->transition(h.handle, ActionState::rolled_back, "nhiguardctl", "undo", "boom");
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().message.find("ledger transition " + h.handle + " to rolled_back"), std::string::npos)
      << moved.error().message;
  auto after = ledger->get(h.handle);
  ASSERT_TRUE(after);
  expect_same(*after, h);  // state, updated_at and last_error untouched
  EXPECT_EQ(ledger->history(h.handle)->size(), 1u);

  // Once writes work again the same transition goes through.
  ASSERT_EQ(execute("DROP TRIGGER fail_history"), "");
  auto retried = ledger->transition(h.handle, ActionState::rolled_back, "nhiguardctl", "undo");
  ASSERT_TRUE(retried) << retried.error().message;
  EXPECT_EQ(retried->state, ActionState::rolled_back);
}

TEST_F(LedgerStore, ConcurrentTransitionsLoseNoHistory) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  // One shared action every thread tries to end at once: exactly one change wins.
  RollbackHandle shared = make_handle();
  ASSERT_TRUE(ledger->record(shared));

  std::atomic<int> shared_changes{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto outcome = ledger->transition_outcome(shared.handle, t % 2 ? ActionState::expired : ActionState::rolled_back,
                                                t % 2 ? "sweeper" : "nhiguardctl", "race");
      if (!outcome)
        ++failures;
      else if (outcome->changed)
        ++shared_changes;
      for (int i = 0; i < kPerThread; ++i) {
        RollbackHandle h = make_handle(ActionKind::freeze, ActionState::held);
        bool ok = ledger->record(h).has_value();
        ok = ok && ledger->transition(h.handle, ActionState::active, "collector", "approve").has_value();
        ok = ok && ledger->transition(h.handle, ActionState::expired, "sweeper", "ttl").has_value();
        if (!ok) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(shared_changes.load(), 1);
  EXPECT_EQ(ledger->history(shared.handle)->size(), 2u);
  EXPECT_EQ(query("SELECT count(*) FROM action_history"), std::to_string(2 + kThreads * kPerThread * 3));
  const bool shared_expired = ledger->get(shared.handle)->state == ActionState::expired;
  EXPECT_EQ(query("SELECT count(*) FROM actions WHERE state = 3"),
            std::to_string(kThreads * kPerThread + (shared_expired ? 1 : 0)));
}

TEST_F(LedgerStore, TwoConnectionsDoNotBothWinATransition) {
  // As with the agent and a second process on the same file: the write lock is taken before the
  // state is read, so the second one sees the first one's result.
  auto first = open_ledger();
  auto second = open_ledger();
  ASSERT_TRUE(first && second);
  std::vector<RollbackHandle> handles;
  for (int i = 0; i < 40; ++i) {
    handles.push_back(make_handle());
    ASSERT_TRUE(first->record(handles.back()));
  }
  std::atomic<int> changes{0};
  std::atomic<int> failures{0};
  auto race = [&](RollbackLedger& ledger, ActionState to, std::string_view actor) {
    for (const auto& h : handles) {
      auto outcome = ledger.transition_outcome(h.handle, to, actor, "race");
      if (!outcome)
        ++failures;
      else if (outcome->changed)
        ++changes;
    }
  };
  std::thread a([&] { race(*first, ActionState::expired, "sweeper"); });
  std::thread b([&] { race(*second, ActionState::rolled_back, "nhiguardctl"); });
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(changes.load(), 40);
  EXPECT_EQ(query("SELECT count(*) FROM action_history"), "80");
}

// ---- The state machine, one row per (kind, from, to). ----

enum class Expect { changes, no_change, illegal };

struct TransitionRow {
  ActionKind kind;
  ActionState from;
  ActionState to;
  Expect expect;
};

constexpr auto E = ActionKind::block_egress;  // a reversible kind
constexpr auto K = ActionKind::kill_process;  // an irreversible kind
constexpr auto held = ActionState::held;
constexpr auto active = ActionState::active;
constexpr auto expired = ActionState::expired;
constexpr auto rolled_back = ActionState::rolled_back;
constexpr auto failed = ActionState::failed;
constexpr auto irreversible = ActionState::irreversible;
constexpr auto rejected = ActionState::rejected;
constexpr auto lapsed = ActionState::lapsed_by_reboot;
constexpr auto changes = Expect::changes;
constexpr auto no_change = Expect::no_change;
constexpr auto illegal = Expect::illegal;

constexpr TransitionRow kTransitionTable[] = {
    // held: approved (active, or irreversible for kill_*), declined, or could not be applied.
    {E, held, held, illegal},
    {E, held, active, changes},
    {E, held, expired, illegal},
    {E, held, rolled_back, illegal},
    {E, held, failed, changes},
    {E, held, irreversible, illegal},
    {E, held, rejected, changes},
    {E, held, lapsed, illegal},
    {K, held, held, illegal},
    {K, held, active, illegal},
    {K, held, expired, illegal},
    {K, held, rolled_back, illegal},
    {K, held, failed, changes},
    {K, held, irreversible, changes},
    {K, held, rejected, changes},
    {K, held, lapsed, illegal},
    // active: ends by TTL, by rollback, by failing, or by a reboot it was not re-applied after.
    {E, active, held, illegal},
    {E, active, active, illegal},
    {E, active, expired, changes},
    {E, active, rolled_back, changes},
    {E, active, failed, changes},
    {E, active, irreversible, illegal},
    {E, active, rejected, illegal},
    {E, active, lapsed, changes},
    // terminal: every request succeeds and changes nothing.
    {E, expired, held, no_change},
    {E, expired, active, no_change},
    {E, expired, expired, no_change},
    {E, expired, rolled_back, no_change},
    {E, expired, failed, no_change},
    {E, expired, irreversible, no_change},
    {E, expired, rejected, no_change},
    {E, rolled_back, held, no_change},
    {E, rolled_back, active, no_change},
    {E, rolled_back, expired, no_change},
    {E, rolled_back, rolled_back, no_change},
    {E, rolled_back, failed, no_change},
    {E, rolled_back, irreversible, no_change},
    {E, rolled_back, rejected, no_change},
    {E, failed, held, no_change},
    {E, failed, active, no_change},
    {E, failed, expired, no_change},
    {E, failed, rolled_back, no_change},
    {E, failed, failed, no_change},
    {E, failed, irreversible, no_change},
    {E, failed, rejected, no_change},
    {E, rejected, held, no_change},
    {E, rejected, active, no_change},
    {E, rejected, expired, no_change},
    {E, rejected, rolled_back, no_change},
    {E, rejected, failed, no_change},
    {E, rejected, irreversible, no_change},
    {E, rejected, rejected, no_change},
    {K, irreversible, held, no_change},
    {K, irreversible, active, no_change},
    {K, irreversible, expired, no_change},
    {K, irreversible, rolled_back, no_change},
    {K, irreversible, failed, no_change},
    {K, irreversible, irreversible, no_change},
    {K, irreversible, rejected, no_change},
    {E, expired, lapsed, no_change},
    {E, rolled_back, lapsed, no_change},
    {E, failed, lapsed, no_change},
    {E, rejected, lapsed, no_change},
    {K, irreversible, lapsed, no_change},
    {E, lapsed, held, no_change},
    {E, lapsed, active, no_change},
    {E, lapsed, expired, no_change},
    {E, lapsed, rolled_back, no_change},
    {E, lapsed, failed, no_change},
    {E, lapsed, irreversible, no_change},
    {E, lapsed, rejected, no_change},
    {E, lapsed, lapsed, no_change},
};

class LedgerTransitionTable : public LedgerTestBase, public ::testing::WithParamInterface<TransitionRow> {
 protected:
  // A handle of `kind` brought to `from` the way the agent would get it there.
  RollbackHandle make_in_state(RollbackLedger& ledger, ActionKind kind, ActionState from) {
    ActionState start = from;
    if (from == expired || from == rolled_back || from == lapsed) start = active;
    if (from == rejected) start = held;
    RollbackHandle h = make_handle(kind, start);
    EXPECT_TRUE(ledger.record(h));
    if (start != from) {
      auto moved = ledger.transition(h.handle, from, "agent", "setup");
      EXPECT_TRUE(moved) << moved.error().message;
      h = *moved;
    }
    return h;
  }
};

TEST_P(LedgerTransitionTable, Row) {
  const TransitionRow row = GetParam();
  EXPECT_EQ(is_allowed_transition(row.kind, row.from, row.to), row.expect == changes);

  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  const RollbackHandle before = make_in_state(*ledger, row.kind, row.from);
  ASSERT_EQ(before.state, row.from);
  const size_t history_before = ledger->history(before.handle)->size();

  auto outcome = ledger->transition_outcome(before.handle, row.to, "nhiguardctl", "table", "why");
  auto stored = ledger->get(before.handle);
  ASSERT_TRUE(stored);
  auto history = ledger->history(before.handle);
  ASSERT_TRUE(history);

  switch (row.expect) {
    case Expect::changes:
      ASSERT_TRUE(outcome) << outcome.error().message;
      EXPECT_TRUE(outcome->changed);
      EXPECT_EQ(outcome->previous, row.from);
      EXPECT_EQ(outcome->handle.state, row.to);
      EXPECT_EQ(outcome->handle.last_error, "why");
      EXPECT_EQ(stored->state, row.to);
      EXPECT_EQ(stored->last_error, "why");
      ASSERT_EQ(history->size(), history_before + 1);
      EXPECT_EQ(history->back().from_state, row.from);
      EXPECT_EQ(history->back().to_state, row.to);
      EXPECT_EQ(history->back().actor, "nhiguardctl");
      EXPECT_EQ(history->back().note, "table");
      break;
    case Expect::no_change:
      ASSERT_TRUE(outcome) << outcome.error().message;
      EXPECT_FALSE(outcome->changed);
      EXPECT_EQ(outcome->previous, row.from);
      EXPECT_EQ(outcome->handle.state, row.from);
      EXPECT_EQ(outcome->handle.updated_at_ns, before.updated_at_ns);
      EXPECT_EQ(stored->state, row.from);
      EXPECT_EQ(stored->updated_at_ns, before.updated_at_ns);
      EXPECT_EQ(stored->last_error, before.last_error);
      EXPECT_EQ(history->size(), history_before);
      break;
    case Expect::illegal:
      ASSERT_FALSE(outcome);
      EXPECT_EQ(outcome.error().code, EINVAL);
      EXPECT_NE(outcome.error().message.find(fmt::format(
                    "illegal transition of {} ({}) from {} to {}", before.handle, containment::to_string(row.kind),
                    containment::to_string(row.from), containment::to_string(row.to))),
                std::string::npos)
          << outcome.error().message;
      EXPECT_EQ(stored->state, row.from);
      EXPECT_EQ(stored->updated_at_ns, before.updated_at_ns);
      EXPECT_EQ(history->size(), history_before);
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(Ledger, LedgerTransitionTable, ::testing::ValuesIn(kTransitionTable),
                         [](const ::testing::TestParamInfo<TransitionRow>& info) {
                           return fmt::format("{}_{}_to_{}", containment::to_string(info.param.kind),
                                              containment::to_string(info.param.from),
                                              containment::to_string(info.param.to));
                         });

TEST(LedgerStateMachine, TableCoversEveryPairAndMatchesThePredicate) {
  // Every (from, to) for a reversible kind and every reachable one for kill_*, each exactly once.
  std::set<std::tuple<int, int, int>> seen;
  for (const auto& row : kTransitionTable) {
    EXPECT_TRUE(seen.emplace(int(row.kind), int(row.from), int(row.to)).second)
        << containment::to_string(row.from) << " -> " << containment::to_string(row.to);
  }
  EXPECT_EQ(seen.size(), 7u * 8 + 2u * 8);
  // The predicate never allows leaving a terminal state, for any kind.
  for (ActionKind kind : {E, ActionKind::deny_credential, ActionKind::freeze, K, ActionKind::kill_session}) {
    for (ActionState from : {expired, rolled_back, failed, irreversible, rejected, lapsed}) {
      for (ActionState to : {held, active, expired, rolled_back, failed, irreversible, rejected, lapsed}) {
        EXPECT_FALSE(is_allowed_transition(kind, from, to));
      }
    }
    EXPECT_EQ(is_allowed_transition(kind, held, active), containment::is_reversible(kind));
    EXPECT_EQ(is_allowed_transition(kind, held, irreversible), !containment::is_reversible(kind));
  }
}

// ---- Idempotent rollback, as nhiguardctl and the sweeper use it. ----

TEST_F(LedgerStore, RollbackIsIdempotent) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle();
  ASSERT_TRUE(ledger->record(h));

  auto first = ledger->transition_outcome(h.handle, rolled_back, "nhiguardctl", "operator undo");
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->changed);
  EXPECT_EQ(first->handle.state, rolled_back);

  auto second = ledger->transition_outcome(h.handle, rolled_back, "collector", "fleet undo");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(second->previous, rolled_back);
  EXPECT_EQ(second->handle.updated_at_ns, first->handle.updated_at_ns);

  // The plain form reports the same through the returned state.
  auto third = ledger->transition(h.handle, rolled_back, "nhiguardctl", "again");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->state, rolled_back);
  EXPECT_EQ(ledger->history(h.handle)->size(), 2u);

  // Rolling back an action that already expired is success and keeps it expired.
  RollbackHandle e = make_handle();
  ASSERT_TRUE(ledger->record(e));
  ASSERT_TRUE(ledger->transition(e.handle, expired, "sweeper", "ttl"));
  auto late = ledger->transition_outcome(e.handle, rolled_back, "nhiguardctl", "too late");
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->changed);
  EXPECT_EQ(late->handle.state, expired);
  EXPECT_EQ(ledger->get(e.handle)->state, expired);

  // And an irreversible one: nothing to undo, not an error.
  RollbackHandle k = make_handle(K, irreversible);
  ASSERT_TRUE(ledger->record(k));
  auto kill = ledger->transition_outcome(k.handle, rolled_back, "nhiguardctl", "undo a kill");
  ASSERT_TRUE(kill);
  EXPECT_FALSE(kill->changed);
  EXPECT_EQ(kill->handle.state, irreversible);
}

TEST_F(LedgerStore, IllegalTransitionNamesWhatIsAllowed) {
  auto ledger = open_ledger();
  RollbackHandle h = make_handle(E, held);
  ASSERT_TRUE(ledger->record(h));
  auto moved = ledger->transition(h.handle, rolled_back, "nhiguardctl", "undo");
  ASSERT_FALSE(moved);
  EXPECT_EQ(moved.error().code, EINVAL);
  EXPECT_EQ(moved.error().message, "illegal transition of " + h.handle +
                                       " (block_egress) from held to rolled_back: a held block_egress action can "
                                       "become active, failed, rejected");
  EXPECT_EQ(ledger->transition(h.handle, active, "mallory", "x").error().code, EINVAL);
  EXPECT_EQ(ledger->get(h.handle)->state, held);
}

TEST_F(LedgerStore, HistoryAfterFollowsEveryHandleInCommitOrder) {
  auto ledger = open_ledger();
  RollbackHandle a = make_handle(ActionKind::block_egress, ActionState::active);
  RollbackHandle b = make_handle(ActionKind::freeze, ActionState::active);
  ASSERT_TRUE(ledger->record(a));
  ASSERT_TRUE(ledger->record(b));
  ASSERT_TRUE(ledger->transition(a.handle, ActionState::rolled_back, "collector", "undo"));

  auto all = ledger->history_after(0, 100);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].handle, a.handle);
  EXPECT_EQ((*all)[1].handle, b.handle);
  EXPECT_EQ((*all)[2].handle, a.handle);
  EXPECT_EQ((*all)[2].to_state, ActionState::rolled_back);

  // A follower that already reported the first entry sees the rest, page by page.
  auto page = ledger->history_after((*all)[0].seq, 1);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ(page->front().seq, (*all)[1].seq);
  auto rest = ledger->history_after((*all)[2].seq, 100);
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->empty());
}

// ---- Policy decisions: dry runs and held actions approved later. ----

namespace nhiguard::ledger {
namespace {

TEST_F(LedgerStore, DryRunIsRecordedTerminalAndNeverDue) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  auto would_have = make_handle(ActionKind::block_egress, ActionState::dry_run);
  would_have.dry_run = true;
  ASSERT_TRUE(ledger->record(would_have, "agent", "dry run"));
  auto stored = ledger->get(would_have.handle);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->state, ActionState::dry_run);
  EXPECT_TRUE(stored->dry_run);

  auto unflagged = make_handle(ActionKind::block_egress, ActionState::dry_run);
  auto refused = ledger->record(unflagged, "agent");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, EINVAL);

  // Terminal: a rollback changes nothing, and the sweeper never sees it.
  auto outcome = ledger->transition_outcome(would_have.handle, ActionState::rolled_back, "nhiguardctl", "rollback");
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->changed);
  EXPECT_EQ(outcome->handle.state, ActionState::dry_run);
  auto due = ledger->due_for_expiry(would_have.boot_id, std::numeric_limits<uint64_t>::max());
  ASSERT_TRUE(due);
  EXPECT_TRUE(due->empty());
  for (ActionState to : {ActionState::held, ActionState::active, ActionState::expired, ActionState::rolled_back,
                         ActionState::failed, ActionState::irreversible, ActionState::rejected}) {
    EXPECT_FALSE(is_allowed_transition(ActionKind::block_egress, ActionState::dry_run, to));
  }
}

TEST_F(LedgerStore, ActivateStartsAHeldActionsTtlAtApproval) {
  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  auto held = make_handle(ActionKind::block_egress, ActionState::held);
  ASSERT_TRUE(ledger->record(held, "agent", "held"));
  const int64_t new_expiry = *held.expires_at_ns + 3'600'000'000'000;
  auto active = ledger->activate(held.handle, {.wall_ns = new_expiry, .boot_ns = 99'000'000'000, .boot_id = "b2"},
                                 "collector", "collector command X: ok");
  ASSERT_TRUE(active) << active.error().message;
  EXPECT_EQ(active->state, ActionState::active);
  EXPECT_EQ(active->expires_at_ns, new_expiry);
  EXPECT_EQ(active->expires_at_boot_ns, 99'000'000'000u);
  EXPECT_EQ(active->boot_id, "b2");
  auto stored = ledger->get(held.handle);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->expires_at_ns, new_expiry);
  auto history = ledger->history(held.handle);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ(history->back().from_state, ActionState::held);
  EXPECT_EQ(history->back().to_state, ActionState::active);
  EXPECT_EQ(history->back().actor, "collector");

  auto again = ledger->activate(held.handle, {.wall_ns = new_expiry, .boot_ns = 1}, "nhiguardctl", "approved");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, EINVAL);

  auto declined = make_handle(ActionKind::freeze, ActionState::held);
  ASSERT_TRUE(ledger->record(declined, "agent"));
  ASSERT_TRUE(ledger->transition(declined.handle, ActionState::rejected, "nhiguardctl", "rejected"));
  auto late = ledger->activate(declined.handle, {.wall_ns = new_expiry, .boot_ns = 1}, "nhiguardctl", "approved");
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, EINVAL);
  EXPECT_NE(late.error().message.find("not held"), std::string::npos);
}

}  // namespace
}  // namespace nhiguard::ledger

// Schema 2: the control-socket peer on history rows and the control_audit table, added to a ledger
// written by schema 1 without touching what it holds.
TEST_F(LedgerStore, AVersionOneLedgerGainsPeerColumnsAndTheAuditTrail) {
  RollbackHandle kept = make_handle();
  {
    auto ledger = open_ledger();
    ASSERT_TRUE(ledger);
    ASSERT_TRUE(ledger->record(kept));
  }
  // Back to what schema 1 wrote (schema 3's boot_id column included: it came later).
  std::string downgrade = "ALTER TABLE actions DROP COLUMN boot_id; ";
  for (const char* column :
       {"peer_pid", "peer_uid", "peer_gid", "peer_start_ticks", "peer_exe", "peer_comm", "peer_cgroup"})
    downgrade += std::string("ALTER TABLE action_history DROP COLUMN ") + column + "; ";
  ASSERT_EQ(execute(downgrade + "DROP TABLE control_audit; PRAGMA user_version = 1;"), "");

  auto ledger = open_ledger();
  ASSERT_TRUE(ledger);
  EXPECT_EQ(query("PRAGMA user_version"), "3");
  auto before = ledger->history(kept.handle);
  ASSERT_TRUE(before);
  ASSERT_EQ(before->size(), 1u);
  EXPECT_FALSE(before->front().peer);

  const ControlPeer peer{.pid = 4242,
                         .uid = 0,
                         .gid = 0,
                         .start_time_ticks = 777,
                         .exe = "/usr/bin/nhiguardctl",
                         .comm = "nhiguardctl",
                         .cgroup = "/user.slice/session-3.scope"};
  {
    ScopedControlPeer acting(peer);
    ASSERT_TRUE(ledger->transition(kept.handle, ActionState::rolled_back, "nhiguardctl", "rolled back"));
  }
  RollbackHandle later = make_handle();
  ASSERT_TRUE(ledger->record(later));  // no scope: no peer
  auto after = ledger->history(kept.handle).value();
  ASSERT_EQ(after.size(), 2u);
  ASSERT_TRUE(after[1].peer);
  EXPECT_EQ(after[1].peer->pid, 4242);
  EXPECT_EQ(after[1].peer->start_time_ticks, 777u);
  EXPECT_EQ(after[1].peer->exe, "/usr/bin/nhiguardctl");
  EXPECT_EQ(after[1].peer->cgroup, "/user.slice/session-3.scope");
  EXPECT_FALSE(ledger->history(later.handle)->front().peer);
  auto followed = ledger->history_after(0, 10).value();
  ASSERT_EQ(followed.size(), 3u);
  EXPECT_TRUE(followed[1].peer);

  auto first = ledger->record_audit({.method = "rollback", .handle = kept.handle, .outcome = "ok", .peer = peer});
  ASSERT_TRUE(first) << first.error().message;
  auto second = ledger->record_audit(
      {.method = "set_mode", .detail = "observe", .outcome = "refused", .message = "inside", .peer = peer});
  ASSERT_TRUE(second);
  EXPECT_GT(*second, *first);
  auto rows = ledger->audit_after(*first, 0).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].method, "set_mode");
  EXPECT_EQ(rows[0].outcome, "refused");
  EXPECT_EQ(rows[0].peer.cgroup, peer.cgroup);
  EXPECT_GT(rows[0].at_ns, 0);
  EXPECT_EQ(ledger->audit_after(0, 1)->size(), 1u);
}

}  // namespace
}  // namespace nhiguard::ledger
