#include "reporter/wire_records.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/json_escape.h"

namespace nhiguard::reporter {
namespace {


constexpr std::string_view kCommandNotePrefix = "collector command ";

Report make_report(ReportKind kind, std::string type, const v1::Report& body, bool droppable,
                   uint64_t event_boot_ns, int64_t event_wall_ns) {
  Report r;
  r.kind = kind;
  r.type = std::move(type);
  r.payload = body.SerializeAsString();
  r.droppable = droppable;
  r.event_boot_ns = event_boot_ns;
  r.event_wall_ns = event_wall_ns;
  return r;
}

v1::TransportProtocol protocol_to_wire(uint16_t protocol) {
  switch (protocol) {
    case 6: return v1::TRANSPORT_PROTOCOL_TCP;
    case 17: return v1::TRANSPORT_PROTOCOL_UDP;
    default: return v1::TRANSPORT_PROTOCOL_OTHER;
  }
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
  // The wire enum is identity::WorkloadKind + 1 (0 is "unspecified").
  out.set_kind(static_cast<v1::WorkloadKind>(static_cast<int>(w.kind) + 1));
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

v1::RollbackHandle handle_to_wire(const containment::RollbackHandle& h) {
  v1::RollbackHandle out;
  out.set_handle(h.handle);
  // Both enums carry the agent's values (containment/action.h never renumbers them).
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

v1::Mode mode_to_wire(config::AgentMode mode) {
  return mode == config::AgentMode::observe ? v1::MODE_OBSERVE : v1::MODE_POLICY;
}

std::optional<config::AgentMode> mode_from_wire(v1::Mode mode) {
  switch (mode) {
    case v1::MODE_OBSERVE: return config::AgentMode::observe;
    case v1::MODE_POLICY: return config::AgentMode::policy;
    default: return std::nullopt;
  }
}

Report credential_access_report(const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential,
                                const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                const std::string& event_id) {
  v1::Report body;
  auto* e = body.mutable_credential_access();
  e->set_event_id(event_id);
  e->set_time_unix_ns(wall_ns);
  auto* c = e->mutable_credential();
  c->set_id(credential.credential_id);
  c->set_credential_class(static_cast<v1::CredentialClass>(static_cast<int>(credential.credential_class)));
  c->set_path(escape_bytes(credential.path));
  c->set_inode(event.ino);
  // The kernel's dev_t layout: major in the bits above 20.
  c->set_device_major(static_cast<uint32_t>(event.dev >> 20));
  c->set_device_minor(static_cast<uint32_t>(event.dev & 0xfffff));
  c->set_match(event.by_inode ? "inode" : "name");
  for (const auto& alias : credential.aliases) c->add_aliases(escape_bytes(alias));
  if (credential.owner) c->set_owner(escape_bytes(*credential.owner));
  const bool readable = event.readable();
  const bool writable = event.writable();
  e->set_access(readable && writable ? "read_write" : writable ? "write" : "read");
  e->set_open_flags(event.open_flags);
  e->set_syscall(std::string(events::to_string(event.syscall)));
  e->set_requested_path(escape_bytes(event.requested_path));
  e->set_requested_path_truncated(event.path_truncated);
  e->set_denied(event.denied);
  e->set_coalesced_opens(event.coalesced_opens);
  e->set_repeat_summary(event.repeat_summary);
  *e->mutable_process() = process_to_wire(identity);
  *e->mutable_workload() = workload_to_wire(identity.workload);
  return make_report(ReportKind::event, "credential_access", body, !event.denied, event.ts_ns, wall_ns);
}

Report egress_report(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                     const identity::ResolvedIdentity& identity, int64_t wall_ns, const std::string& event_id) {
  v1::Report body;
  auto* e = body.mutable_egress();
  e->set_event_id(event_id);
  e->set_time_unix_ns(wall_ns);
  auto* d = e->mutable_destination();
  d->set_address(event.address_string());
  d->set_port(event.port);
  d->set_family(event.family == 10 ? v1::ADDRESS_FAMILY_IPV6 : v1::ADDRESS_FAMILY_IPV4);
  d->set_protocol(protocol_to_wire(event.protocol));
  e->set_hook(std::string(events::to_string(event.hook)));
  e->set_denied(event.denied);
  if (event.denied) e->set_block_rule_id(event.rule_id);
  if (event.taint_credential_id != 0) {
    auto* t = e->mutable_tainted_by();
    t->set_credential_id(event.taint_credential_id);
    t->set_source_pid(event.taint_source_tgid);
    t->set_inherited(event.taint_source_tgid != event.process.tgid);
    t->set_read_at_unix_ns(static_cast<int64_t>(boot_to_wall_ns(event.tainted_at_ns)));
    if (taint) {
      t->set_credential_class(static_cast<v1::CredentialClass>(static_cast<int>(taint->credential_class)));
      t->set_path(escape_bytes(taint->path));
    }
  }
  *e->mutable_process() = process_to_wire(identity);
  *e->mutable_workload() = workload_to_wire(identity.workload);
  return make_report(ReportKind::event, "egress", body, !event.denied, event.ts_ns, wall_ns);
}

std::string collector_command_note(std::string_view command_id, std::string_view reason) {
  std::string note = fmt::format("{}{}", kCommandNotePrefix, command_id);
  if (!reason.empty()) note += fmt::format(": {}", reason);
  return note;
}

namespace {
void peer_to_wire(const ledger::ControlPeer& peer, v1::ControlPeer& out) {
  out.set_pid(peer.pid);
  out.set_uid(peer.uid);
  out.set_gid(peer.gid);
  out.set_start_time_ticks(peer.start_time_ticks);
  // A peer names its own exe, comm and cgroup: odd bytes are escaped as in process_to_wire, or a
  // non-UTF-8 name would make the audit report unparseable at the collector.
  out.set_exe(escape_bytes(peer.exe));
  out.set_comm(escape_bytes(peer.comm));
  out.set_cgroup(escape_bytes(peer.cgroup));
}
}  // namespace

std::string command_id_from_note(std::string_view note) {
  if (!note.starts_with(kCommandNotePrefix)) return {};
  note.remove_prefix(kCommandNotePrefix.size());
  return std::string(note.substr(0, note.find(':')));
}

Report action_update_report(const containment::RollbackHandle& current, const ledger::HistoryEntry& change) {
  v1::Report body;
  auto* update = body.mutable_action_update();
  containment::RollbackHandle at_change = current;
  at_change.state = change.to_state;
  at_change.updated_at_ns = change.at_ns;
  *update->mutable_action() = handle_to_wire(at_change);
  auto* c = update->mutable_change();
  c->set_ledger_sequence(change.seq);
  if (change.from_state) c->set_from_state(static_cast<v1::ActionState>(static_cast<int>(*change.from_state)));
  c->set_to_state(static_cast<v1::ActionState>(static_cast<int>(change.to_state)));
  c->set_at_unix_ns(change.at_ns);
  c->set_actor(change.actor);
  c->set_note(change.note);
  c->set_command_id(command_id_from_note(change.note));
  if (change.peer) peer_to_wire(*change.peer, *c->mutable_peer());
  return make_report(ReportKind::action_update, "action_update", body, false, 0, change.at_ns);
}

Report control_audit_report(const ledger::AuditEntry& entry) {
  v1::Report body;
  auto* audit = body.mutable_control_audit();
  audit->set_audit_sequence(entry.seq);
  audit->set_at_unix_ns(entry.at_ns);
  audit->set_method(entry.method);
  // The handle, the detail and the message carry what the peer sent (a cgroup path, a handle it
  // typed), so they are escaped like the peer's own names.
  audit->set_handle(escape_bytes(entry.handle));
  audit->set_detail(escape_bytes(entry.detail));
  audit->set_outcome(entry.outcome);
  audit->set_message(escape_bytes(entry.message));
  peer_to_wire(entry.peer, *audit->mutable_peer());
  return make_report(ReportKind::control_audit, "control_audit", body, false, 0, entry.at_ns);
}

Report command_result_report(const v1::CommandResult& result) {
  v1::Report body;
  *body.mutable_command_result() = result;
  return make_report(ReportKind::command_result, "command_result", body, false, 0, result.completed_at_unix_ns());
}

Report decision_report(const v1::Decision& decision, uint64_t trigger_boot_ns) {
  v1::Report body;
  *body.mutable_decision() = decision;
  return make_report(ReportKind::decision, "decision", body, false, trigger_boot_ns, decision.time_unix_ns());
}

Report alert_report(std::string kind, std::string message, uint64_t count) {
  v1::Report body;
  auto* alert = body.mutable_alert();
  alert->set_kind(std::move(kind));
  alert->set_message(std::move(message));
  alert->set_count(count);
  return make_report(ReportKind::notice, "alert", body, false, 0, static_cast<int64_t>(clock_ns(CLOCK_REALTIME)));
}

Result<v1::Report> to_wire(const StoredReport& stored) {
  v1::Report out;
  if (stored.report.kind == ReportKind::dropped) {
    auto* dropped = out.mutable_reports_dropped();
    auto* range = dropped->add_ranges();
    range->set_first(stored.seq);
    range->set_last(stored.seq_end);
    dropped->set_count(stored.seq_end - stored.seq + 1);
    std::string reason = "outbox full";
    try {
      const auto marker = nlohmann::json::parse(stored.report.payload);
      std::vector<std::string> parts;
      for (const auto& [type, count] : marker.at("by_type").items()) {
        parts.push_back(fmt::format("{} {}", count.get<uint64_t>(), type));
      }
      reason = fmt::format("outbox full: dropped {}", fmt::join(parts, ", "));
    } catch (const nlohmann::json::exception&) {
      // The range and count are what the collector needs; the breakdown is a courtesy.
    }
    dropped->set_reason(std::move(reason));
  } else if (!out.ParseFromString(stored.report.payload) || out.body_case() == v1::Report::BODY_NOT_SET) {
    return fail(Error{EBADMSG, fmt::format("outbox report {} ({}): payload is not a Report body", stored.seq,
                                           stored.report.type)});
  }
  // A drop marker goes out under the last sequence it covers, so every range it lists ends at or
  // before the report's own sequence (it took the place of the reports it lists).
  out.set_sequence(stored.seq_end);
  out.set_created_at_unix_ns(stored.stored_wall_ns);
  return out;
}

}  // namespace nhiguard::reporter
