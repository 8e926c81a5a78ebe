#include "records/rollback_handle_record.h"

#include "common/clock.h"
#include "common/json_escape.h"

namespace nhiguard::records {

nlohmann::json handle_to_json(const containment::RollbackHandle& h) {
  const auto& t = h.target;
  nlohmann::json target = {{"description", t.describe()}};
  if (!t.unit.empty()) target["unit"] = t.unit;
  if (!t.cgroup_path.empty()) target["cgroup"] = t.cgroup_path;
  if (t.cgroup_id != 0) target["cgroup_id"] = t.cgroup_id;
  if (t.pid != 0) target["pid"] = t.pid;
  if (t.pid_start_ns != 0) target["pid_start_time"] = t.pid_start_ns;
  if (t.session_id != 0) target["session_id"] = t.session_id;
  if (!t.credential_path.empty()) target["credential"] = t.credential_path;
  if (t.credential_id != 0) target["credential_id"] = t.credential_id;
  if (!t.destinations.empty()) target["destinations"] = t.destinations;
  if (!t.workload_uri.empty()) target["identity"] = t.workload_uri;
  nlohmann::json out = {
      {"handle", h.handle},
      {"action", containment::to_string(h.action)},
      {"state", containment::to_string(h.state)},
      {"target", std::move(target)},
      {"rule", h.rule},
      {"reason", h.reason},
      {"trigger_event_ids", h.trigger_event_ids},
      {"dry_run", h.dry_run},
      {"created_at", format_rfc3339_ns(static_cast<uint64_t>(h.created_at_ns))},
      {"expires_at", h.expires_at_ns ? nlohmann::json(format_rfc3339_ns(static_cast<uint64_t>(*h.expires_at_ns)))
                                     : nlohmann::json(nullptr)},
      {"updated_at", format_rfc3339_ns(static_cast<uint64_t>(h.updated_at_ns))},
      {"rollback_operation", h.rollback_operation},
      {"last_error", h.last_error},
  };
  if (!h.boot_id.empty()) out["boot_id"] = h.boot_id;
  return out;
}

v1::RollbackHandle handle_to_wire(const containment::RollbackHandle& h) {
  v1::RollbackHandle out;
  out.set_handle(h.handle);
  out.set_action(static_cast<v1::ActionKind>(static_cast<int>(h.action)));
  out.set_state(static_cast<v1::ActionState>(static_cast<int>(h.state)));
  auto* t = out.mutable_target();
  t->set_unit(escape_bytes(h.target.unit));
  t->set_cgroup_path(escape_bytes(h.target.cgroup_path));
  t->set_cgroup_id(h.target.cgroup_id);
  t->set_pid(h.target.pid);
  t->set_pid_start_boot_ns(h.target.pid_start_ns);
  t->set_session_id(h.target.session_id);
  t->set_credential_path(escape_bytes(h.target.credential_path));
  t->set_credential_id(h.target.credential_id);
  for (const auto& d : h.target.destinations) t->add_destinations(d);
  t->set_workload_uri(h.target.workload_uri);
  t->set_description(escape_bytes(h.target.describe()));
  out.set_rule(h.rule);
  out.set_reason(h.reason);
  for (const auto& id : h.trigger_event_ids) out.add_trigger_event_ids(id);
  out.set_dry_run(h.dry_run);
  out.set_created_at_unix_ns(h.created_at_ns);
  if (h.expires_at_ns) out.set_expires_at_unix_ns(*h.expires_at_ns);
  out.set_expires_at_boot_ns(h.expires_at_boot_ns);
  out.set_updated_at_unix_ns(h.updated_at_ns);
  out.set_rollback_operation(h.rollback_operation);
  out.set_last_error(h.last_error);
  return out;
}

containment::RollbackHandle handle_from_wire(const v1::RollbackHandle& h) {
  containment::RollbackHandle out;
  out.handle = h.handle();
  out.action = static_cast<containment::ActionKind>(h.action());
  out.state = static_cast<containment::ActionState>(h.state());
  const auto& t = h.target();
  out.target.unit = t.unit();
  out.target.cgroup_path = t.cgroup_path();
  out.target.cgroup_id = t.cgroup_id();
  out.target.pid = t.pid();
  out.target.pid_start_ns = t.pid_start_boot_ns();
  out.target.session_id = t.session_id();
  out.target.credential_path = t.credential_path();
  out.target.credential_id = t.credential_id();
  out.target.destinations.assign(t.destinations().begin(), t.destinations().end());
  out.target.workload_uri = t.workload_uri();
  out.rule = h.rule();
  out.reason = h.reason();
  out.trigger_event_ids.assign(h.trigger_event_ids().begin(), h.trigger_event_ids().end());
  out.dry_run = h.dry_run();
  out.created_at_ns = h.created_at_unix_ns();
  if (h.has_expires_at_unix_ns()) out.expires_at_ns = h.expires_at_unix_ns();
  out.expires_at_boot_ns = h.expires_at_boot_ns();
  out.updated_at_ns = h.updated_at_unix_ns();
  out.rollback_operation = h.rollback_operation();
  out.last_error = h.last_error();
  return out;
}

}  // namespace nhiguard::records
