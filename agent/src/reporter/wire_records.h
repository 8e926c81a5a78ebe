// The agent's facts as protocol messages (proto/nhiguard/v1): what goes into the outbox, and the
// outbox's rows as the Reports sent on the stream.
//
// A report's outbox payload is a serialised nhiguard.v1.Report holding only its body (the event,
// the action update, ...); the sequence and the outbox time are filled in when it is sent
// (to_wire), so the bytes stored are the bytes sent. Drop markers, which the outbox makes itself,
// become ReportsDropped sent under the last sequence they cover, listing the whole range they
// replaced (the range ends at the report's own sequence).
//
// The domain records (events, decisions, handles, the control audit) are mapped in records/, once;
// here they are wrapped as reports. Secret values never appear.
//
// Which reports are low value (may be dropped from a full outbox): credential accesses that were
// not denied, egress that was allowed, memory accesses and block device opens (their decisions
// stay). Denied accesses and egress, actions, decisions, command
// results and notices are always kept.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "config/agent_config.h"
#include "containment/action.h"
#include "ledger/rollback_ledger.h"
#include "nhiguard/v1/agent.pb.h"
#include "reporter/outbox.h"

namespace nhiguard::reporter {

v1::Mode mode_to_wire(config::AgentMode mode);
// MODE_UNSPECIFIED and unknown values: none.
std::optional<config::AgentMode> mode_from_wire(v1::Mode mode);

// The records themselves are made in records/ (the same ones the event log's lines render);
// event_boot_ns: when the kernel saw the event (CLOCK_BOOTTIME).
Report credential_access_report(v1::CredentialAccessEvent event, uint64_t event_boot_ns);
Report egress_report(v1::EgressEvent event, uint64_t event_boot_ns);
// Droppable like an access: the decision about one is always kept.
Report memory_access_report(v1::MemoryAccessEvent event, uint64_t event_boot_ns);
Report block_device_open_report(v1::BlockDeviceOpenEvent event, uint64_t event_boot_ns);

// The handle as stored now, with one change of its history. The handle's state and updated_at are
// those of the change, so a burst of changes reads correctly in order at the collector. A ledger
// note of the form "collector command <id>: ..." names the command that caused the change.
Report action_update_report(const containment::RollbackHandle& current, const ledger::HistoryEntry& change);
// One row of the ledger's control audit trail (never droppable).
Report control_audit_report(const ledger::AuditEntry& entry);

Report command_result_report(const v1::CommandResult& result);
Report decision_report(const v1::Decision& decision, uint64_t trigger_boot_ns);
Report alert_report(std::string kind, std::string message, uint64_t count);

// The note the agent writes into the ledger for a change a collector command caused, and its
// inverse (empty when the note is not of that form).
std::string collector_command_note(std::string_view command_id, std::string_view reason);
std::string command_id_from_note(std::string_view note);

// The Report to send for a stored row: its body from the payload (or a ReportsDropped for a drop
// marker), its sequence and outbox time. A payload that does not parse is an error naming the
// sequence (the caller sends an AgentAlert in its place rather than stall the stream).
Result<v1::Report> to_wire(const StoredReport& stored);

}  // namespace nhiguard::reporter
