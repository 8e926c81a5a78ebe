// One egress attempt, as the outbox sends it (v1::EgressEvent) and as the event log writes it (the
// "type": "egress" JSON line): destination, verdict, the process and workload, and, when the
// process was tainted, the credential it (or an ancestor) read before.
//
// One mapping: egress_to_wire is the record; egress_line renders the JSON line from it, adding only
// the host. Strings from the kernel or /proc are escaped once, with escape_bytes.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "catalogue/credential_catalogue.h"
#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::records {

// taint: the catalogue entry of the credential the process (or an ancestor) read, or null when
// unknown. wall_ns: the event's time on CLOCK_REALTIME. event_id: the id the line and the report carry.
v1::EgressEvent egress_to_wire(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                               const identity::ResolvedIdentity& identity, int64_t wall_ns, std::string event_id);

// The taint of a process (holder_tgid): the credential credential_id that source_tgid (the
// holder, or an ancestor it inherited from) read at tainted_at_ns (CLOCK_BOOTTIME). credential:
// its catalogue entry, or null when unknown (then class and path are absent). Shared by the
// records that carry a taint (egress, memory access).
v1::Taint taint_to_wire(uint32_t credential_id, uint32_t source_tgid, uint32_t holder_tgid, uint64_t tainted_at_ns,
                        const catalogue::ResolvedCredential* credential);
nlohmann::json taint_json(const v1::Taint& taint);

// "tainted_by" is null for an untainted process; its class and path are absent when the
// catalogue no longer knew the credential.
nlohmann::json egress_line(const v1::EgressEvent& record, std::string_view host);

}  // namespace nhiguard::records
