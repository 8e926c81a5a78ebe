// A rollback handle as the contract's JSON action object (nhiguardctl --json, the control socket,
// decision lines) and as the wire's v1::RollbackHandle (action updates, command results), with the
// inverse the collector's answers are read back through.
//
// JSON: at least handle, action, state, target, rule, reason, created_at, expires_at (RFC 3339
// UTC, or null), plus the rest of the handle (DESIGN.md, user-facing contract).
//
// Wire: ActionKind and ActionState carry the agent's values (containment/action.h never renumbers
// them). The target's unit, cgroup and credential path are escaped with escape_bytes, and
// the target carries its description. handle_from_wire keeps the strings as the wire has them
// (escaped); the description is not a field of ActionTarget (describe() recomputes it), so a
// reader that shows the sender's reads target().description(). A kind or state this build does not
// know keeps its number, which to_string names "unknown". boot_id is the ledger's alone and never
// on the wire.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "containment/action.h"
#include "nhiguard/v1/types.pb.h"

namespace nhiguard::records {

nlohmann::json handle_to_json(const containment::RollbackHandle& handle);

v1::RollbackHandle handle_to_wire(const containment::RollbackHandle& handle);
containment::RollbackHandle handle_from_wire(const v1::RollbackHandle& handle);

}  // namespace nhiguard::records
