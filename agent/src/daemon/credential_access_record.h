// The JSON line for one credential access: built from the kernel's event, the catalogue's entry and
// the resolved identity, and nothing else, so the line explains itself alone.
//
// Secret values never appear: the record holds the credential's class, catalogued path, id and
// inode, never a byte of the file. Every string that came from the kernel or /proc (paths, comm,
// cmdline) goes through escape_bytes, so odd bytes are kept, reversibly, and never break
// the JSON. Pure: testable without a kernel.
#pragma once

#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "catalogue/credential_catalogue.h"
#include "events/kernel_event.h"
#include "identity/identity_resolver.h"

namespace nhiguard::daemon {

// The JSON line for one egress attempt ("type": "egress"): destination, verdict, the process and
// workload, and, when the process was tainted, the credential it (or an ancestor) read before.
// `taint` is the catalogue entry of that credential, or null when unknown.
nlohmann::json build_egress_record(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                                   const identity::ResolvedIdentity& identity, std::string_view host,
                                   uint64_t wall_time_ns);

// wall_time_ns: the event's time on CLOCK_REALTIME (the kernel stamps CLOCK_BOOTTIME).
nlohmann::json build_credential_access_record(const events::FileOpenEvent& event,
                                              const catalogue::ResolvedCredential& credential,
                                              const identity::ResolvedIdentity& identity, std::string_view host,
                                              uint64_t wall_time_ns);

}  // namespace nhiguard::daemon
