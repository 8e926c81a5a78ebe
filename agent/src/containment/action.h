// The containment action model shared by the executors, the rollback ledger, the control socket and
// nhiguardctl: what an action is, what it targets, and the handle that undoes it.
//
// Every action, whether taken, held, or dry-run, is one RollbackHandle. Reversible actions carry an
// expiry both on the wall clock (for people, and to judge what is left after a reboot) and on
// CLOCK_BOOTTIME with the boot it counts in (what the kernel and the sweeper compare); irreversible ones (kill_*) are
// in state `irreversible` from the start and have no expiry. Pure data: no I/O here; its JSON and wire forms are in
// records/rollback_handle_record.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nhiguard::containment {

// Narrowest first. Values are stored in the ledger: never renumber.
enum class ActionKind : uint8_t {
  block_egress = 1,
  deny_credential = 2,
  freeze = 3,
  kill_process = 4,
  kill_session = 5,
};

// "block_egress", ...; parse also accepts the CLI's "block-egress" spelling.
std::string_view to_string(ActionKind kind);
std::optional<ActionKind> parse_action_kind(std::string_view text);
bool is_reversible(ActionKind kind);

enum class ActionState : uint8_t {
  held = 1,              // waiting for a person's approval
  active = 2,            // in force
  expired = 3,           // its TTL ran out (in the kernel and in the ledger)
  rolled_back = 4,       // undone by a person or the collector
  failed = 5,            // could not be applied (or its kernel state vanished): see last_error
  irreversible = 6,      // applied, and nothing can undo it (kill_process, kill_session)
  rejected = 7,          // a held action a person declined
  dry_run = 8,           // "would have": a policy decision recorded in full, nothing applied
  lapsed_by_reboot = 9,  // the host rebooted (its kernel state went with it) and it was not re-applied
};
std::string_view to_string(ActionState state);
std::optional<ActionState> parse_action_state(std::string_view text);
// Terminal states never change again (rollback of one is a no-op that reports the state).
bool is_terminal(ActionState state);

// What an action acts on, as resolved by the agent. Only the fields of the action's kind are set.
struct ActionTarget {
  std::string unit;           // as the operator named it (--unit), informational
  std::string cgroup_path;    // relative to the cgroup2 root, leading '/'
  uint64_t cgroup_id = 0;     // cgroup v2 id: the key of egress blocks and credential denies
  uint32_t pid = 0;           // kill_process, kill_session: the offender
  uint64_t pid_start_ns = 0;  // with pid, the process key (CLOCK_BOOTTIME ns)
  uint32_t session_id = 0;    // kill_session: the session (setsid) killed
  std::string credential_path;
  uint32_t credential_id = 0;
  std::vector<std::string> destinations;  // block_egress: "CIDR" or "CIDR:port"; empty = all egress
  std::string workload_uri;               // the identity, e.g. spiffe://td/host/h/systemd/payments.service

  // One line for logs and tables: "cgroup /system.slice/payments.service", "pid 4242", ...
  std::string describe() const;
};

struct RollbackHandle {
  std::string handle;  // "rb_" + ULID
  ActionKind action = ActionKind::block_egress;
  ActionState state = ActionState::active;
  ActionTarget target;
  std::string rule;  // the policy rule, or "manual" for nhiguardctl contain
  std::string reason;
  std::vector<std::string> trigger_event_ids;
  bool dry_run = false;
  int64_t created_at_ns = 0;             // CLOCK_REALTIME ns
  std::optional<int64_t> expires_at_ns;  // CLOCK_REALTIME ns; none for irreversible actions
  uint64_t expires_at_boot_ns = 0;       // CLOCK_BOOTTIME ns, the kernel's expiry; 0 = none
  std::string boot_id;                   // the boot expires_at_boot_ns counts in (boot_id file)
  int64_t updated_at_ns = 0;
  std::string rollback_operation;  // the concrete undo, e.g. "delete nhg_egress_blocks[cgroup 8123]"
  std::string last_error;          // why failed / why the kernel state vanished
};

}  // namespace nhiguard::containment
