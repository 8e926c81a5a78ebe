#include "records/cgroup_move_record.h"

#include "common/clock.h"
#include "records/process_record.h"

namespace nhiguard::records {

using nlohmann::json;

v1::CgroupMoveEvent cgroup_move_to_wire(const events::CgroupMoveEvent& event,
                                        const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                        std::string event_id) {
  v1::CgroupMoveEvent e;
  e.set_event_id(std::move(event_id));
  e.set_time_unix_ns(wall_ns);
  e.set_to_cgroup_id(event.to_cgroup_id);
  for (uint64_t id : event.followed_cgroup_ids) e.add_followed_cgroup_ids(id);
  e.set_contained(event.contained);
  e.set_tainted(event.tainted);
  if (event.tainted) e.set_taint_credential_id(event.taint_credential_id);
  e.set_thread_only(event.thread_only);
  *e.mutable_process() = process_to_wire(identity);
  *e.mutable_workload() = workload_to_wire(identity.workload);
  return e;
}

json cgroup_move_line(const v1::CgroupMoveEvent& r, std::string_view host) {
  json line = {
      {"time", format_rfc3339_ns(static_cast<uint64_t>(r.time_unix_ns()))},
      {"type", "cgroup_move"},
      {"event_id", r.event_id()},
      {"host", std::string(host)},
      {"to_cgroup_id", r.to_cgroup_id()},
      {"followed_cgroup_ids",
       json(std::vector<uint64_t>(r.followed_cgroup_ids().begin(), r.followed_cgroup_ids().end()))},
      {"contained", r.contained()},
      {"tainted", r.tainted()},
      {"thread_only", r.thread_only()},
      {"process", process_json(r.process())},
      {"workload", workload_json(r.workload())},
  };
  if (r.tainted()) line["taint_credential_id"] = r.taint_credential_id();
  return line;
}

}  // namespace nhiguard::records
