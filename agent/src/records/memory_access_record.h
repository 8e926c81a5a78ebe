// One credential_memory_access event, as the outbox sends it (v1::MemoryAccessEvent) and as the
// event log writes it (the "type": "credential_memory_access" JSON line): how the accessor reached
// in (ptrace attach/seize, process_vm_readv, /proc/PID/mem or environ), the target process and the
// credential it holds (its taint), the accessor's process and workload.
//
// One mapping: memory_access_to_wire is the record; memory_access_line renders the JSON line from
// it, adding only the host. Strings from the kernel or /proc are escaped once, with escape_bytes.
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

// taint: the catalogue entry of the target's credential, or null when unknown. target: the
// target's resolved identity (its process and workload). wall_ns: the event's time on CLOCK_REALTIME.
v1::MemoryAccessEvent memory_access_to_wire(const events::MemoryAccessEvent& event,
                                            const catalogue::ResolvedCredential* taint,
                                            const identity::ResolvedIdentity& accessor,
                                            const identity::ResolvedIdentity& target, int64_t wall_ns,
                                            std::string event_id);

nlohmann::json memory_access_line(const v1::MemoryAccessEvent& record, std::string_view host);

}  // namespace nhiguard::records
