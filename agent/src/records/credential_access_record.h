// One credential access, as the outbox sends it (v1::CredentialAccessEvent) and as the event log
// writes it (the "type": "credential_access" JSON line), built from the kernel's event, the
// catalogue's entry and the resolved identity, and nothing else, so the line explains itself alone.
//
// One mapping: credential_access_to_wire is the record; credential_access_line renders the JSON
// line from it, adding only what the wire does not carry (the host, and whether the kernel could
// not read the requested path at all). Secret values never appear: the record holds the
// credential's class, catalogued path, id and inode, never a byte of the file. Every string that
// came from the kernel or /proc is escaped once, with escape_bytes.
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

// wall_ns: the event's time on CLOCK_REALTIME (the kernel stamps CLOCK_BOOTTIME). event_id: the
// id the line and the report carry (what decisions' trigger_event_ids name).
v1::CredentialAccessEvent credential_access_to_wire(const events::FileOpenEvent& event,
                                                    const catalogue::ResolvedCredential& credential,
                                                    const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                                    std::string event_id);

// `event` is the one the record was made from: it adds requested_path_missing, which only the
// line carries.
nlohmann::json credential_access_line(const v1::CredentialAccessEvent& record, const events::FileOpenEvent& event,
                                      std::string_view host);

}  // namespace nhiguard::records
