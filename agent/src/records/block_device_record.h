// One block_device_open event, as the outbox sends it (v1::BlockDeviceOpenEvent) and as the event
// log writes it (the "type": "block_device_open" JSON line): the device, the access, the opener's
// process and workload. Only opens by processes the policy's block_device_readers do not allow
// become records (the enrichment stage drops the others).
//
// One mapping: block_device_to_wire is the record; block_device_line renders the JSON line from it,
// adding only the host. Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::records {

// "/dev/" + the node's name as the kernel saw it, escaped.
std::string block_device_path(const events::BlockDeviceOpenEvent& event);

v1::BlockDeviceOpenEvent block_device_to_wire(const events::BlockDeviceOpenEvent& event,
                                              const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                              std::string event_id);

nlohmann::json block_device_line(const v1::BlockDeviceOpenEvent& record, std::string_view host);

}  // namespace nhiguard::records
