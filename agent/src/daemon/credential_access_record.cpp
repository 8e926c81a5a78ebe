#include "daemon/credential_access_record.h"

#include <sys/sysmacros.h>
#include <time.h>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/json_escape.h"

namespace nhiguard::daemon {
namespace {

using nlohmann::json;

std::string access_of(const events::FileOpenEvent& event) {
  if (event.readable() && event.writable()) return "read_write";
  return event.writable() ? "write" : "read";
}

json workload_json(const identity::WorkloadIdentity& w) {
  json out = {
      {"kind", identity::to_string(w.kind)},
      {"name", escape_bytes(w.name)},
      {"id", escape_bytes(w.id)},
      {"uri", w.uri},
      {"cgroup", escape_bytes(w.cgroup_path)},
      {"cgroup_id", w.cgroup_id},
  };
  // Only what the layout said: an absent key means "not this kind of workload".
  if (!w.runtime.empty()) out["runtime"] = w.runtime;
  if (!w.pod_uid.empty()) out["pod_uid"] = w.pod_uid;
  if (!w.container_id.empty()) out["container_id"] = w.container_id;
  if (!w.qos_class.empty()) out["qos_class"] = w.qos_class;
  if (!w.unit.empty()) out["unit"] = escape_bytes(w.unit);
  return out;
}

json process_json(const identity::ResolvedIdentity& identity) {
  const auto& p = identity.process;
  json cmdline = json::array();
  for (const auto& arg : p.cmdline) cmdline.push_back(escape_bytes(arg));
  json ancestry = json::array();
  for (const auto& a : p.ancestry) {
    ancestry.push_back({{"pid", a.pid}, {"comm", escape_bytes(a.comm)}, {"exe", escape_bytes(a.exe)}});
  }
  json out = {
      {"pid", p.pid},
      {"tid", p.tid},
      {"ppid", p.ppid},
      {"start_time", p.start_ns},
      {"uid", p.uid},
      {"euid", p.euid},
      {"gid", p.gid},
      {"comm", escape_bytes(p.comm)},
      {"exe", escape_bytes(p.exe)},
      {"cmdline", std::move(cmdline)},
      {"cmdline_redacted", p.cmdline_redacted},
      {"session_id", p.session_id},
      {"ancestry", std::move(ancestry)},
      {"resolved_from_proc", identity.resolved_from_proc},
  };
  if (!p.exe_sha256.empty()) out["exe_sha256"] = p.exe_sha256;
  if (p.exe_deleted) out["exe_deleted"] = true;
  if (p.cmdline_truncated) out["cmdline_truncated"] = true;
  if (p.audit_session_id) out["audit_session_id"] = *p.audit_session_id;
  if (p.login_uid) out["login_uid"] = *p.login_uid;
  if (!identity.notes.empty()) out["notes"] = identity.notes;
  return out;
}

}  // namespace

json build_egress_record(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                         const identity::ResolvedIdentity& identity, std::string_view host, uint64_t wall_time_ns) {
  const char* protocol = event.protocol == 6 ? "tcp" : event.protocol == 17 ? "udp" : "other";
  json record = {
      {"time", format_rfc3339_ns(wall_time_ns)},
      {"type", "egress"},
      {"host", std::string(host)},
      {"destination",
       {{"address", event.address_string()},
        {"port", event.port},
        {"family", event.family == 10 ? "ipv6" : "ipv4"},
        {"protocol", protocol}}},
      {"hook", events::to_string(event.hook)},
      {"verdict", event.denied ? "denied" : "allowed"},
      {"process", process_json(identity)},
      {"workload", workload_json(identity.workload)},
  };
  if (event.denied) record["block_rule_id"] = event.rule_id;
  if (event.taint_credential_id != 0) {
    json tainted = {
        {"credential_id", event.taint_credential_id},
        {"source_pid", event.taint_source_tgid},
        {"inherited", event.taint_source_tgid != event.process.tgid},
        {"read_at", format_rfc3339_ns(boot_to_wall_ns(event.tainted_at_ns))},
    };
    if (taint) {
      tainted["class"] = catalogue::to_string(taint->credential_class);
      tainted["path"] = escape_bytes(taint->path);
    }
    record["tainted_by"] = std::move(tainted);
  } else {
    record["tainted_by"] = nullptr;
  }
  return record;
}

json build_credential_access_record(const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential,
                                    const identity::ResolvedIdentity& identity, std::string_view host,
                                    uint64_t wall_time_ns) {
  json record = {
      {"time", format_rfc3339_ns(wall_time_ns)},
      {"type", "credential_access"},
      {"host", std::string(host)},
      {"credential",
       {
           {"id", credential.credential_id},
           {"class", catalogue::to_string(credential.credential_class)},
           {"path", escape_bytes(credential.path)},
           {"inode", event.ino},
           // The kernel's dev_t layout: major in the bits above 20.
           {"device", fmt::format("{}:{}", event.dev >> 20, event.dev & 0xfffff)},
           {"match", event.by_inode ? "inode" : "name"},
       }},
      {"access", access_of(event)},
      {"open_flags", event.open_flags},
      {"syscall", events::to_string(event.syscall)},
      {"requested_path", escape_bytes(event.requested_path)},
      {"process", process_json(identity)},
      {"workload", workload_json(identity.workload)},
  };
  if (event.denied) record["denied"] = true;
  // This process's repeat opens of the credential since its previous record, folded into this one.
  if (event.coalesced_opens != 0) record["coalesced_opens"] = event.coalesced_opens;
  // Not an open of its own: the repeats after the process's last line, written at its exit.
  if (event.repeat_summary) record["repeat_summary"] = true;
  if (!credential.aliases.empty()) {
    json aliases = json::array();
    for (const auto& alias : credential.aliases) aliases.push_back(escape_bytes(alias));
    record["credential"]["aliases"] = std::move(aliases);
  }
  if (credential.owner) record["credential"]["owner"] = escape_bytes(*credential.owner);
  if (event.path_truncated) record["requested_path_truncated"] = true;
  if (event.path_missing) record["requested_path_missing"] = true;
  return record;
}

}  // namespace nhiguard::daemon
