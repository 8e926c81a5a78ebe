#include "records/egress_record.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "catalogue/credential_class.h"
#include "common/clock.h"
#include "common/json_escape.h"
#include "records/process_record.h"

namespace nhiguard::records {

using nlohmann::json;

namespace {

v1::TransportProtocol protocol_to_wire(uint16_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return v1::TRANSPORT_PROTOCOL_TCP;
    case IPPROTO_UDP:
      return v1::TRANSPORT_PROTOCOL_UDP;
    default:
      return v1::TRANSPORT_PROTOCOL_OTHER;
  }
}

std::string_view protocol_name(v1::TransportProtocol protocol) {
  switch (protocol) {
    case v1::TRANSPORT_PROTOCOL_TCP:
      return "tcp";
    case v1::TRANSPORT_PROTOCOL_UDP:
      return "udp";
    default:
      return "other";
  }
}

}  // namespace

v1::Taint taint_to_wire(uint32_t credential_id, uint32_t source_tgid, uint32_t holder_tgid, uint64_t tainted_at_ns,
                        const catalogue::ResolvedCredential* credential) {
  v1::Taint t;
  t.set_credential_id(credential_id);
  t.set_source_pid(source_tgid);
  t.set_inherited(source_tgid != holder_tgid);
  t.set_read_at_unix_ns(static_cast<int64_t>(boot_to_wall_ns(tainted_at_ns)));
  if (credential) {
    // CredentialClass values match the wire enum, where 0 is "unspecified" (no catalogue entry).
    t.set_credential_class(static_cast<v1::CredentialClass>(static_cast<int>(credential->credential_class)));
    t.set_path(escape_bytes(credential->path));
  }
  return t;
}

json taint_json(const v1::Taint& t) {
  json tainted = {
      {"credential_id", t.credential_id()},
      {"source_pid", t.source_pid()},
      {"inherited", t.inherited()},
      {"read_at", format_rfc3339_ns(static_cast<uint64_t>(t.read_at_unix_ns()))},
  };
  if (!t.attribution().empty()) tainted["attribution"] = t.attribution();
  if (t.credential_class() != v1::CREDENTIAL_CLASS_UNSPECIFIED) {
    tainted["class"] = catalogue::to_string(static_cast<catalogue::CredentialClass>(t.credential_class()));
    tainted["path"] = t.path();
  }
  return tainted;
}

v1::EgressEvent egress_to_wire(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                               const identity::ResolvedIdentity& identity, int64_t wall_ns, std::string event_id) {
  v1::EgressEvent e;
  e.set_event_id(std::move(event_id));
  e.set_time_unix_ns(wall_ns);
  auto* d = e.mutable_destination();
  d->set_address(event.address_string());
  d->set_port(event.port);
  d->set_family(event.family == AF_INET6 ? v1::ADDRESS_FAMILY_IPV6 : v1::ADDRESS_FAMILY_IPV4);
  d->set_protocol(protocol_to_wire(event.protocol));
  e.set_hook(std::string(events::to_string(event.hook)));
  e.set_denied(event.denied);
  if (event.denied) e.set_block_rule_id(event.rule_id);
  if (event.taint_credential_id != 0) {
    *e.mutable_tainted_by() = taint_to_wire(event.taint_credential_id, event.taint_source_tgid, event.process.tgid,
                                            event.tainted_at_ns, taint);
    if (event.taint_from_cgroup_window) {
      e.mutable_tainted_by()->set_inherited(false);
      e.mutable_tainted_by()->set_attribution("cgroup_window");
    }
  }
  *e.mutable_process() = process_to_wire(identity);
  *e.mutable_workload() = workload_to_wire(identity.workload);
  return e;
}

json egress_line(const v1::EgressEvent& r, std::string_view host) {
  const auto& d = r.destination();
  json line = {
      {"time", format_rfc3339_ns(static_cast<uint64_t>(r.time_unix_ns()))},
      {"type", "egress"},
      {"event_id", r.event_id()},
      {"host", std::string(host)},
      {"destination",
       {{"address", d.address()},
        {"port", d.port()},
        {"family", d.family() == v1::ADDRESS_FAMILY_IPV6 ? "ipv6" : "ipv4"},
        {"protocol", protocol_name(d.protocol())}}},
      {"hook", r.hook()},
      {"verdict", r.denied() ? "denied" : "allowed"},
      {"process", process_json(r.process())},
      {"workload", workload_json(r.workload())},
  };
  if (r.denied()) line["block_rule_id"] = r.block_rule_id();
  if (r.has_tainted_by()) {
    line["tainted_by"] = taint_json(r.tainted_by());
  } else {
    line["tainted_by"] = nullptr;
  }
  return line;
}

}  // namespace nhiguard::records
