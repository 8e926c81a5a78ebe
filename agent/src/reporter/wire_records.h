// The agent's facts as protocol messages (proto/nhiguard/v1): what goes into the outbox, and the
// outbox's rows as the Reports sent on the stream.
//
// A report's outbox payload is a serialised nhiguard.v1.Report holding only its body (the event,
// the action update, ...); the sequence and the outbox time are filled in when it is sent
// (to_wire), so the bytes stored are the bytes sent. Drop markers, which the outbox makes itself,
// become ReportsDropped sent under the last sequence they cover, listing the whole range they
// replaced (the range ends at the report's own sequence).
//
// Strings that came from the kernel or /proc are escaped exactly as in the JSON event lines
// (escape_bytes). Secret values never appear; credentials are described by class, path,
// inode and id only.
//
// Which reports are low value (may be dropped from a full outbox): credential accesses that were
// not denied, and egress that was allowed. Denied accesses and egress, actions, decisions, command
// results and notices are always kept.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "catalogue/credential_catalogue.h"
#include "common/result.h"
#include "config/agent_config.h"
#include "containment/action.h"
#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "ledger/rollback_ledger.h"
#include "nhiguard/v1/agent.pb.h"
#include "reporter/outbox.h"

namespace nhiguard::reporter {

v1::Process process_to_wire(const identity::ResolvedIdentity& identity);
v1::Workload workload_to_wire(const identity::WorkloadIdentity& workload);
v1::RollbackHandle handle_to_wire(const containment::RollbackHandle& handle);
v1::Mode mode_to_wire(config::AgentMode mode);
// MODE_UNSPECIFIED and unknown values: none.
std::optional<config::AgentMode> mode_from_wire(v1::Mode mode);

// wall_ns: the event's time on CLOCK_REALTIME. event_id: the id the event line carries (what
// decisions' trigger_event_ids name).
Report credential_access_report(const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential,
                                const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                const std::string& event_id);

// taint: the catalogue entry of the credential the process (or an ancestor) read, when known.
Report egress_report(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                     const identity::ResolvedIdentity& identity, int64_t wall_ns, const std::string& event_id);

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
