#include "records/process_record.h"

#include "common/json_escape.h"

namespace nhiguard::records {

using nlohmann::json;

namespace {

// The wire enum is identity::WorkloadKind + 1 (0 is "unspecified"; types.proto).
v1::WorkloadKind kind_to_wire(identity::WorkloadKind kind) {
  return static_cast<v1::WorkloadKind>(static_cast<int>(kind) + 1);
}

identity::WorkloadKind kind_from_wire(v1::WorkloadKind kind) {
  return static_cast<identity::WorkloadKind>(static_cast<int>(kind) - 1);
}

}  // namespace

v1::Process process_to_wire(const identity::ResolvedIdentity& identity) {
  const auto& p = identity.process;
  v1::Process out;
  out.set_pid(p.pid);
  out.set_tid(p.tid);
  out.set_ppid(p.ppid);
  out.set_start_time_boot_ns(p.start_ns);
  out.set_uid(p.uid);
  out.set_euid(p.euid);
  out.set_gid(p.gid);
  out.set_comm(escape_bytes(p.comm));
  out.set_exe(escape_bytes(p.exe));
  out.set_exe_deleted(p.exe_deleted);
  out.set_exe_sha256(p.exe_sha256);
  for (const auto& arg : p.cmdline) out.add_cmdline(escape_bytes(arg));
  out.set_cmdline_truncated(p.cmdline_truncated);
  out.set_cmdline_redacted(p.cmdline_redacted);
  out.set_session_id(p.session_id);
  if (p.audit_session_id) out.set_audit_session_id(*p.audit_session_id);
  if (p.login_uid) out.set_login_uid(*p.login_uid);
  for (const auto& a : p.ancestry) {
    auto* ancestor = out.add_ancestry();
    ancestor->set_pid(static_cast<uint32_t>(a.pid));
    ancestor->set_comm(escape_bytes(a.comm));
    ancestor->set_exe(escape_bytes(a.exe));
  }
  out.set_resolved_from_proc(identity.resolved_from_proc);
  for (const auto& note : identity.notes) out.add_notes(note);
  return out;
}

v1::Workload workload_to_wire(const identity::WorkloadIdentity& w) {
  v1::Workload out;
  out.set_kind(kind_to_wire(w.kind));
  out.set_name(escape_bytes(w.name));
  out.set_id(escape_bytes(w.id));
  out.set_runtime(w.runtime);
  out.set_pod_uid(w.pod_uid);
  out.set_container_id(w.container_id);
  out.set_qos_class(w.qos_class);
  out.set_unit(escape_bytes(w.unit));
  out.set_cgroup_path(escape_bytes(w.cgroup_path));
  out.set_cgroup_id(w.cgroup_id);
  out.set_uri(w.uri);
  return out;
}

json process_json(const v1::Process& p) {
  json ancestry = json::array();
  for (const auto& a : p.ancestry()) ancestry.push_back({{"pid", a.pid()}, {"comm", a.comm()}, {"exe", a.exe()}});
  json out = {
      {"pid", p.pid()},
      {"tid", p.tid()},
      {"ppid", p.ppid()},
      {"start_time", p.start_time_boot_ns()},
      {"uid", p.uid()},
      {"euid", p.euid()},
      {"gid", p.gid()},
      {"comm", p.comm()},
      {"exe", p.exe()},
      {"cmdline", json(std::vector<std::string>(p.cmdline().begin(), p.cmdline().end()))},
      {"cmdline_redacted", p.cmdline_redacted()},
      {"session_id", p.session_id()},
      {"ancestry", std::move(ancestry)},
      {"resolved_from_proc", p.resolved_from_proc()},
  };
  if (!p.exe_sha256().empty()) out["exe_sha256"] = p.exe_sha256();
  if (p.exe_deleted()) out["exe_deleted"] = true;
  if (p.cmdline_truncated()) out["cmdline_truncated"] = true;
  if (p.has_audit_session_id()) out["audit_session_id"] = p.audit_session_id();
  if (p.has_login_uid()) out["login_uid"] = p.login_uid();
  if (!p.notes().empty()) out["notes"] = std::vector<std::string>(p.notes().begin(), p.notes().end());
  return out;
}

json workload_json(const v1::Workload& w) {
  json out = {
      {"kind", identity::to_string(kind_from_wire(w.kind()))},
      {"name", w.name()},
      {"id", w.id()},
      {"uri", w.uri()},
      {"cgroup", w.cgroup_path()},
      {"cgroup_id", w.cgroup_id()},
  };
  // Only what the layout said: an absent key means "not this kind of workload".
  if (!w.runtime().empty()) out["runtime"] = w.runtime();
  if (!w.pod_uid().empty()) out["pod_uid"] = w.pod_uid();
  if (!w.container_id().empty()) out["container_id"] = w.container_id();
  if (!w.qos_class().empty()) out["qos_class"] = w.qos_class();
  if (!w.unit().empty()) out["unit"] = w.unit();
  return out;
}

}  // namespace nhiguard::records
