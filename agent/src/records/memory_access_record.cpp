#include "records/memory_access_record.h"

#include "common/clock.h"
#include "common/json_escape.h"
#include "records/egress_record.h"
#include "records/process_record.h"

namespace nhiguard::records {

using nlohmann::json;

v1::MemoryAccessEvent memory_access_to_wire(const events::MemoryAccessEvent& event,
                                            const catalogue::ResolvedCredential* taint,
                                            const identity::ResolvedIdentity& accessor,
                                            const identity::ResolvedIdentity& target, int64_t wall_ns,
                                            std::string event_id) {
  v1::MemoryAccessEvent e;
  e.set_event_id(std::move(event_id));
  e.set_time_unix_ns(wall_ns);
  e.set_how(std::string(events::to_string(event.how)));
  e.set_result(event.result);
  e.set_writable((event.f_mode & 0x2) != 0);
  auto* t = e.mutable_target();
  t->set_pid(event.target_tgid);
  t->set_tid(event.target_tid);
  t->set_start_time_boot_ns(event.target_start_ns);
  t->set_comm(escape_bytes(target.process.comm));
  t->set_exe(escape_bytes(target.process.exe));
  t->set_workload_uri(target.workload.uri);
  *e.mutable_target_taint() =
      taint_to_wire(event.taint_credential_id, event.taint_source_tgid, event.target_tgid, event.tainted_at_ns, taint);
  *e.mutable_process() = process_to_wire(accessor);
  *e.mutable_workload() = workload_to_wire(accessor.workload);
  return e;
}

json memory_access_line(const v1::MemoryAccessEvent& r, std::string_view host) {
  const auto& t = r.target();
  json line = {
      {"time", format_rfc3339_ns(static_cast<uint64_t>(r.time_unix_ns()))},
      {"type", "credential_memory_access"},
      {"event_id", r.event_id()},
      {"host", std::string(host)},
      {"how", r.how()},
      {"result", r.result()},
      {"target",
       {{"pid", t.pid()},
        {"tid", t.tid()},
        {"start_time_boot_ns", t.start_time_boot_ns()},
        {"comm", t.comm()},
        {"exe", t.exe()},
        {"workload", t.workload_uri()}}},
      {"target_taint", taint_json(r.target_taint())},
      {"process", process_json(r.process())},
      {"workload", workload_json(r.workload())},
  };
  if (r.writable()) line["writable"] = true;
  return line;
}

}  // namespace nhiguard::records
