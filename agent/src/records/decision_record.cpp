#include "records/decision_record.h"

#include <algorithm>

#include <fmt/format.h>

#include "catalogue/credential_class.h"
#include "common/clock.h"
#include "config/duration.h"
#include "common/json_escape.h"
#include "records/process_record.h"
#include "records/rollback_handle_record.h"

namespace nhiguard::records {

using nlohmann::json;

json build_decision_record(const policy::Decision& d, const policy::TriggerInput& input,
                           const containment::RollbackHandle* handle, std::string_view error, std::string_view host,
                           uint64_t wall_time_ns) {
  const auto& id = input.identity;
  json trigger = {
      {"kind", policy::to_string(d.trigger)},
      {"confidence", policy::to_string(d.confidence)},
      {"event", policy::to_string(input.event)},
      {"event_ids", input.event_ids},
  };
  if (input.destination) trigger["destination"] = input.destination->text;
  if (!input.device.empty()) trigger["device"] = escape_bytes(input.device);
  json identity = {
      {"uri", id.uri},
      {"kind", id.kind},
      {"cgroup", escape_bytes(id.cgroup_path)},
      {"cgroup_id", id.cgroup_id},
      {"pid", id.pid},
      {"start_time", id.pid_start_ns},
      {"uid", id.uid},
      {"comm", escape_bytes(id.comm)},
      {"exe", escape_bytes(id.exe)},
      {"class", d.identity_class.empty() ? json(nullptr) : json(d.identity_class)},
      {"impact", policy::to_string(d.impact)},
  };
  if (!id.unit.empty()) identity["unit"] = escape_bytes(id.unit);
  if (!id.container_id.empty()) identity["container_id"] = id.container_id;
  if (!id.pod_uid.empty()) identity["pod_uid"] = id.pod_uid;
  json credential = nullptr;
  if (input.credential) {
    credential = {{"id", input.credential->id},
                  {"class", catalogue::to_string(input.credential->credential_class)},
                  {"path", escape_bytes(input.credential->path)}};
  }
  json gates = json::array();
  for (const auto& gate : d.gates) {
    gates.push_back({{"gate", gate.gate}, {"result", gate.tripped ? "tripped" : "passed"}, {"detail", gate.detail}});
  }
  json record = {
      {"time", format_rfc3339_ns(wall_time_ns)},
      {"type", "decision"},
      {"host", std::string(host)},
      {"outcome", policy::to_string(d.outcome)},
      {"dry_run", d.dry_run},
      {"alert", d.alert},
      {"rule", d.rule},
      {"rule_mode", policy::to_string(d.rule_mode)},
      {"matrix", policy::to_string(d.matrix_outcome)},
      {"trigger", std::move(trigger)},
      {"identity", std::move(identity)},
      {"credential", std::move(credential)},
      {"gates", std::move(gates)},
      {"action", d.action ? json(containment::to_string(*d.action)) : json(nullptr)},
      {"ttl", d.ttl.count() > 0 ? json(config::format_duration(d.ttl)) : json(nullptr)},
      {"handle", handle ? handle_to_json(*handle) : json(nullptr)},
      {"rollback_operation", handle ? json(handle->rollback_operation) : json(nullptr)},
      {"reason", escape_bytes(d.reason)},
  };
  if (!error.empty()) record["error"] = std::string(error);
  return record;
}

v1::Decision decision_to_wire(const policy::Decision& d, const policy::TriggerInput& input,
                              const identity::ResolvedIdentity& identity, const containment::RollbackHandle* handle,
                              std::string_view decision_id, uint64_t wall_time_ns) {
  v1::Decision wire;
  wire.set_decision_id(std::string(decision_id));
  wire.set_time_unix_ns(static_cast<int64_t>(wall_time_ns));
  wire.set_trigger(std::string(policy::to_string(d.trigger)));
  wire.set_rule(d.rule);
  wire.set_rule_mode(std::string(policy::to_string(d.rule_mode)));
  wire.set_confidence(std::string(policy::to_string(d.confidence)));
  wire.set_identity_class(d.identity_class);
  wire.set_outcome(std::string(policy::to_string(d.outcome)));
  wire.set_reason(escape_bytes(d.reason));
  for (const auto& id : input.event_ids) wire.add_trigger_event_ids(id);
  for (const auto& gate : d.gates) {
    auto* g = wire.add_gates();
    g->set_gate(gate.gate);
    g->set_tripped(gate.tripped);
    g->set_detail(escape_bytes(gate.detail));
  }
  wire.set_dry_run(d.dry_run);
  if (handle) {
    wire.set_handle(handle->handle);
    wire.set_rollback_operation(handle->rollback_operation);
  }
  // ActionKind and CredentialClass values match the wire enums (types.proto).
  if (d.action) wire.set_action(static_cast<v1::ActionKind>(*d.action));
  *wire.mutable_workload() = workload_to_wire(identity.workload);
  *wire.mutable_process() = process_to_wire(identity);
  if (input.credential) {
    auto* c = wire.mutable_credential();
    c->set_id(input.credential->id);
    c->set_credential_class(static_cast<v1::CredentialClass>(input.credential->credential_class));
    c->set_path(escape_bytes(input.credential->path));
  }
  if (!input.device.empty()) wire.set_device(escape_bytes(input.device));
  if (input.destination) {
    const auto& a = input.destination->address;
    const bool v4 =
        std::all_of(a.begin(), a.begin() + 10, [](uint8_t b) { return b == 0; }) && a[10] == 0xff && a[11] == 0xff;
    auto* dest = wire.mutable_destination();
    const std::string& text = input.destination->text;
    // text is "a.b.c.d:port" or "[v6]:port": the address is everything before the last ':'.
    std::string address = text.substr(0, text.rfind(':'));
    if (address.starts_with('[')) address = address.substr(1, address.size() - 2);
    dest->set_address(address);
    dest->set_port(input.destination->port);
    dest->set_family(v4 ? v1::ADDRESS_FAMILY_IPV4 : v1::ADDRESS_FAMILY_IPV6);
  }
  return wire;
}

std::string decision_log_line(const policy::Decision& d, const containment::RollbackHandle* handle,
                              std::string_view error) {
  std::string line = fmt::format("decision {}{}", policy::to_string(d.outcome), d.dry_run ? " (dry run)" : "");
  if (d.action && d.outcome >= policy::Outcome::hold) line += fmt::format(" {}", containment::to_string(*d.action));
  if (handle)
    line +=
        fmt::format(" {} on {} [{}]", handle->handle, handle->target.describe(), containment::to_string(handle->state));
  line += fmt::format(": {}", escape_bytes(d.reason));
  if (handle && !handle->rollback_operation.empty()) line += fmt::format("; rollback: {}", handle->rollback_operation);
  if (!error.empty()) line += fmt::format("; not carried out: {}", error);
  return line;
}

}  // namespace nhiguard::records
