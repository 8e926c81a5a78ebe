#include "records/block_device_record.h"

#include <fmt/format.h>

#include "common/clock.h"
#include "common/json_escape.h"
#include "records/process_record.h"

namespace nhiguard::records {

using nlohmann::json;

std::string block_device_path(const events::BlockDeviceOpenEvent& event) {
  return "/dev/" + escape_bytes(event.name);
}

v1::BlockDeviceOpenEvent block_device_to_wire(const events::BlockDeviceOpenEvent& event,
                                              const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                              std::string event_id) {
  v1::BlockDeviceOpenEvent e;
  e.set_event_id(std::move(event_id));
  e.set_time_unix_ns(wall_ns);
  e.set_device(block_device_path(event));
  e.set_device_major(event.major());
  e.set_device_minor(event.minor());
  e.set_access((event.f_mode & 0x2) != 0 ? "read_write" : "read");
  e.set_syscall(std::string(events::to_string(event.syscall)));
  *e.mutable_process() = process_to_wire(identity);
  *e.mutable_workload() = workload_to_wire(identity.workload);
  return e;
}

json block_device_line(const v1::BlockDeviceOpenEvent& r, std::string_view host) {
  return json{
      {"time", format_rfc3339_ns(static_cast<uint64_t>(r.time_unix_ns()))},
      {"type", "block_device_open"},
      {"event_id", r.event_id()},
      {"host", std::string(host)},
      {"device", r.device()},
      {"device_number", fmt::format("{}:{}", r.device_major(), r.device_minor())},
      {"access", r.access()},
      {"syscall", r.syscall()},
      {"process", process_json(r.process())},
      {"workload", workload_json(r.workload())},
  };
}

}  // namespace nhiguard::records
