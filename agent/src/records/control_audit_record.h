// One control-socket command as the audit trail keeps it (ledger::AuditEntry), and the local peer
// behind it (ledger::ControlPeer): the JSON the control socket's `audit` method answers with, and
// the wire's v1::ControlAudit / v1::ControlPeer the collector stores.
//
// JSON: {"seq", "time", "method", "handle", "detail", "outcome", "message", "peer": {"pid", "uid",
// "gid", "start_time_ticks", "exe", "comm", "cgroup"}}, strings as the ledger holds them. Wire: the
// strings the peer chose (its exe, comm and cgroup, and the handle, detail and message that carry
// what it sent) are escaped with escape_bytes, or a non-UTF-8 name would make the report
// unparseable at the collector.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "ledger/rollback_ledger.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::records {

nlohmann::json peer_to_json(const ledger::ControlPeer& peer);
nlohmann::json audit_to_json(const ledger::AuditEntry& entry);

v1::ControlPeer peer_to_wire(const ledger::ControlPeer& peer);
v1::ControlAudit audit_to_wire(const ledger::AuditEntry& entry);

// The inverse of peer_to_wire, for nhiguardctl showing an action's history from the collector; the
// strings stay as the wire has them (escaped).
ledger::ControlPeer peer_from_wire(const v1::ControlPeer& peer);

}  // namespace nhiguard::records
