// The rollback ledger: the durable record of every containment action (taken, held or dry-run),
// its rollback handle, and every change of its state.
//
// Storage: one SQLite file (the agent passes <state_dir>/ledger.db) in WAL mode with
// synchronous=FULL, so a record or transition that returned success survives a crash or power loss.
// The file is created 0600 (an existing one is tightened to 0600) and a missing directory 0700.
// The schema is versioned with PRAGMA user_version and upgraded by an ordered list of migrations
// (rollback_ledger.cpp); a file written by a newer schema is refused rather than guessed at. A file
// that is not an SQLite database (or is corrupt) is refused with a clear error: the ledger is never
// silently re-created over a security record.
//
// Tables: `actions`, one row per handle holding every RollbackHandle field; `action_history`, one
// row per state change (the row that recorded the action has no from_state), in commit order, with
// the control-socket peer that asked for it when there was one; `control_audit`, one row per
// state-changing control-socket command (contain, rollback, approve, reject, mode, learn), whether
// it was carried out, refused or failed, with its peer.
//
// State machine (is_allowed_transition), with `kind` the action's kind:
//
//   from      | to            | when
//   ----------+---------------+-----------------------------------------------------------
//   held      | active        | approved and applied; reversible kinds only
//   held      | irreversible  | approved and carried out; irreversible kinds (kill_*) only
//   held      | rejected      | a person declined it
//   held      | failed        | approved but could not be applied
//   active    | expired       | its TTL ran out (the sweeper)
//   active    | rolled_back   | undone by a person or the collector
//   active    | failed        | its kernel state vanished or could not be kept (reconcile)
//   active    | lapsed_by_reboot | the host rebooted and it was not re-applied (reconcile)
//   active    | active (rebase)  | re-applied after a reboot, or given the boot it runs in (rebase())
//   terminal  | anything      | no change: success, the handle is returned as it is
//
// Terminal states are expired, rolled_back, failed, irreversible, rejected, dry_run and
// lapsed_by_reboot (containment::is_terminal). Asking a terminal action to change is not an error because rollback
// must be idempotent: rolling back something already rolled back or expired succeeds and changes
// nothing; TransitionOutcome::changed says which happened. Every other pair (held -> expired,
// held -> rolled_back, active -> active, active -> held, ...) is illegal: EINVAL, nothing written.
//
// Record: a new handle must have a valid id (is_handle_id) and start in held, active, irreversible,
// failed or dry_run; `active` only for reversible kinds, `irreversible` only for kill_*, `dry_run`
// only with dry_run set (a "would have" decision: terminal, never swept, nothing to roll back).
//
// Errors: every failure is an Error naming the operation and the handle ("ledger transition
// rb_... active -> rolled_back: database or disk is full"), with an errno: ENOENT unknown handle,
// EEXIST duplicate handle, EINVAL bad input or illegal transition, ENOSPC disk full, EROFS read-only,
// EBUSY locked by another process past the busy timeout, EUCLEAN not a database / corrupt,
// ENOTSUP schema newer than this agent, EIO otherwise. Each write is one transaction: a failed
// record or transition leaves both tables exactly as they were.
//
// Thread-safety: one SQLite connection, every method serialized by an internal mutex, so the
// control socket and the event loop may share one instance. Several processes may open the same
// file (SQLite's locking; a write waits up to 5 s for another writer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "containment/action.h"

struct sqlite3;

namespace nhiguard::ledger {

// Who changed a state, as kept in action_history. Anything else is refused (EINVAL) so the audit
// trail only ever names these.
inline constexpr std::string_view kActors[] = {"agent", "sweeper", "nhiguardctl", "collector", "reconcile"};
bool is_known_actor(std::string_view actor);

// The state machine above, as a predicate. Terminal `from` states return false here (they are
// never changed); transition() treats them as an idempotent no-op instead of an error.
bool is_allowed_transition(containment::ActionKind kind, containment::ActionState from, containment::ActionState to);

struct ListFilter {
  std::vector<containment::ActionState> states;   // empty: any state
  std::optional<containment::ActionKind> action;  // none: any kind
  size_t limit = 0;                               // 0: no limit
};

// The local process behind a control-socket command: SO_PEERCRED's pid, uid and gid, and what /proc
// said about that pid when the command was handled (control/control_peer.h).
struct ControlPeer {
  int32_t pid = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t start_time_ticks = 0;  // with pid, the process key (/proc/PID/stat field 22)
  std::string exe;
  std::string comm;
  std::string cgroup;  // cgroup v2 path as the agent sees it ("/user.slice/..."); empty: unknown
};

// One control-socket command, as the audit trail keeps it.
struct AuditEntry {
  int64_t seq = 0;      // position in control_audit, increasing; set by record_audit
  int64_t at_ns = 0;    // CLOCK_REALTIME ns; record_audit sets it when 0
  std::string method;   // "contain", "rollback", "approve", "reject", "set_mode", "learn"
  std::string handle;   // the handle it named or made; empty when none
  std::string detail;   // the request in a few words: "observe", "block_egress cgroup /x", ...
  std::string outcome;  // "ok", "refused" (by the peer guard or the agent's checks) or "error"
  std::string message;  // why refused / what failed; empty when ok
  ControlPeer peer;
};

struct HistoryEntry {
  int64_t seq = 0;  // position in the ledger's history, increasing in commit order
  std::string handle;
  std::optional<containment::ActionState> from_state;  // none: the row that recorded the action
  containment::ActionState to_state = containment::ActionState::held;
  int64_t at_ns = 0;  // CLOCK_REALTIME ns when the change was written
  std::string actor;  // one of kActors
  std::string note;
  std::optional<ControlPeer> peer;  // the control-socket peer behind an "nhiguardctl" change
};

// An expiry on both clocks: the wall clock for people and across reboots, CLOCK_BOOTTIME of boot
// `boot_id` for the kernel and the sweeper.
struct Expiry {
  int64_t wall_ns = 0;
  uint64_t boot_ns = 0;
  std::string boot_id;
};

// What a reboot changes of an active action that is re-applied in the new boot: the boot clock it
// counts in and the kernel ids of its target (cgroup ids are not stable across boots).
struct Rebase {
  std::string boot_id;
  uint64_t expires_at_boot_ns = 0;
  uint64_t cgroup_id = 0;
  uint32_t credential_id = 0;
};

struct TransitionOutcome {
  containment::RollbackHandle handle;  // as stored after the call
  containment::ActionState previous = containment::ActionState::held;
  bool changed = false;  // false: the action was already terminal and nothing was written
};

// While one is alive on a thread, every history row that thread writes (record, transition,
// activate) carries `peer`: the control socket sets it around a command, so the changes that
// command causes name the process that asked without every operation in between passing it on.
// Scopes do not nest; the peer must outlive the scope.
class ScopedControlPeer {
 public:
  explicit ScopedControlPeer(const ControlPeer& peer);
  ~ScopedControlPeer();
  ScopedControlPeer(const ScopedControlPeer&) = delete;
  ScopedControlPeer& operator=(const ScopedControlPeer&) = delete;

  // The peer set on this thread, if any: a write that runs later (a retry of one the ledger
  // refused) takes a copy, so its history row still names who asked.
  static const ControlPeer* current();

 private:
  const ControlPeer* previous_;
};

class RollbackLedger {
 public:
  static constexpr int kSchemaVersion = 3;

  // Opens (creating if missing) the ledger at `path` and brings its schema up to kSchemaVersion.
  static Result<std::unique_ptr<RollbackLedger>> open(const std::string& path);

  ~RollbackLedger();
  RollbackLedger(const RollbackLedger&) = delete;
  RollbackLedger& operator=(const RollbackLedger&) = delete;

  // Inserts a new handle exactly as given, with a history row (from_state none, to its state).
  // A handle already in the ledger is EEXIST and leaves the stored one untouched.
  Result<void> record(const containment::RollbackHandle& handle, std::string_view actor = "agent",
                      std::string_view note = {});

  // The stored handle; unknown: ENOENT "unknown handle rb_..."; malformed id: EINVAL.
  Result<containment::RollbackHandle> get(std::string_view handle);

  // Handles matching `filter`, newest first (created_at, then handle id).
  Result<std::vector<containment::RollbackHandle>> list(const ListFilter& filter = {});

  // Moves `handle` to `to` if the state machine allows it, updating updated_at_ns (and last_error
  // when one is given) and appending a history row in one transaction. Already terminal: returns
  // the handle unchanged (see the header comment). Illegal: EINVAL naming the allowed targets.
  Result<containment::RollbackHandle> transition(std::string_view handle, containment::ActionState to,
                                                 std::string_view actor, std::string_view note,
                                                 std::string last_error = {});
  // The same, also saying whether anything changed and from which state.
  Result<TransitionOutcome> transition_outcome(std::string_view handle, containment::ActionState to,
                                               std::string_view actor, std::string_view note,
                                               std::string last_error = {});

  // held -> active for an approved action, with the expiry it gets now (its TTL starts at
  // approval), in one transaction. A handle that is not held: EINVAL (terminal ones included).
  Result<containment::RollbackHandle> activate(std::string_view handle, const Expiry& expiry, std::string_view actor,
                                               std::string_view note);

  // An active reversible action's new boot, boot expiry and target ids (a re-apply after a reboot,
  // or the boot of a row written before boot ids were kept), with a history row active -> active
  // carrying `note`. Anything else: EINVAL.
  Result<containment::RollbackHandle> rebase(std::string_view handle, const Rebase& rebase, std::string_view actor,
                                             std::string_view note);

  // Active actions of reversible kinds of boot `boot_id` whose expires_at_boot_ns <= now_boot_ns,
  // soonest expiry first: the boot clock, which no one can step, decides (never the wall clock).
  // Held, terminal, irreversible, expiry-less actions and those of another boot (reconcile's) are
  // never due. The caller (the sweeper) removes the kernel state, then transitions each to expired.
  Result<std::vector<containment::RollbackHandle>> due_for_expiry(std::string_view boot_id, uint64_t now_boot_ns);

  // Every state change of `handle`, oldest first. Unknown handle: ENOENT as get().
  Result<std::vector<HistoryEntry>> history(std::string_view handle);

  // State changes of every handle after history position `after_seq`, oldest first, at most
  // `limit` of them: how the reporter follows the ledger (it keeps the last position it reported).
  Result<std::vector<HistoryEntry>> history_after(int64_t after_seq, size_t limit);

  // Appends one control-socket command to the audit trail; its seq.
  Result<int64_t> record_audit(AuditEntry entry);
  // Audit rows after position `after_seq`, oldest first, at most `limit` (0: no limit): how the
  // reporter follows the trail, and what `nhiguardctl audit` lists (newest last).
  Result<std::vector<AuditEntry>> audit_after(int64_t after_seq, size_t limit);

  const std::string& path() const { return path_; }

 private:
  RollbackLedger(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

  Result<TransitionOutcome> transition_with_expiry(std::string_view handle, containment::ActionState to,
                                                   std::string_view actor, std::string_view note,
                                                   std::string last_error, std::optional<Expiry> expiry);
  Result<containment::RollbackHandle> get_locked(std::string_view handle, std::string_view operation);

  std::string path_;
  std::mutex mutex_;  // guards db_: SQLite connections are not to be used by two threads at once
  sqlite3* db_;
};

}  // namespace nhiguard::ledger
