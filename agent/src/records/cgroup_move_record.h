// One cgroup move of a contained or tainted process, as the outbox sends it (v1::CgroupMoveEvent)
// and as the event log writes it (the "type": "cgroup_move" JSON line): the cgroup it moved to, the
// contained cgroups whose blocks and denies it carries there, and the process and workload as they
// are after the move.
//
// One mapping: cgroup_move_to_wire is the record; cgroup_move_line renders the JSON line from it,
// adding only the host.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::records {

// wall_ns: the event's time on CLOCK_REALTIME. event_id: the id the line and the report carry.
v1::CgroupMoveEvent cgroup_move_to_wire(const events::CgroupMoveEvent& event,
                                        const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                        std::string event_id);

nlohmann::json cgroup_move_line(const v1::CgroupMoveEvent& record, std::string_view host);

}  // namespace nhiguard::records
