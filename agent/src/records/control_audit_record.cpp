#include "records/control_audit_record.h"

#include "common/clock.h"
#include "common/json_escape.h"

namespace nhiguard::records {

using nlohmann::json;

json peer_to_json(const ledger::ControlPeer& peer) {
  return {{"pid", peer.pid}, {"uid", peer.uid},   {"gid", peer.gid},      {"start_time_ticks", peer.start_time_ticks},
          {"exe", peer.exe}, {"comm", peer.comm}, {"cgroup", peer.cgroup}};
}

json audit_to_json(const ledger::AuditEntry& e) {
  return {{"seq", e.seq},         {"time", format_rfc3339_ns(static_cast<uint64_t>(e.at_ns))},
          {"method", e.method},   {"handle", e.handle},
          {"detail", e.detail},   {"outcome", e.outcome},
          {"message", e.message}, {"peer", peer_to_json(e.peer)}};
}

v1::ControlPeer peer_to_wire(const ledger::ControlPeer& peer) {
  v1::ControlPeer out;
  out.set_pid(peer.pid);
  out.set_uid(peer.uid);
  out.set_gid(peer.gid);
  out.set_start_time_ticks(peer.start_time_ticks);
  out.set_exe(escape_bytes(peer.exe));
  out.set_comm(escape_bytes(peer.comm));
  out.set_cgroup(escape_bytes(peer.cgroup));
  return out;
}

ledger::ControlPeer peer_from_wire(const v1::ControlPeer& peer) {
  return ledger::ControlPeer{.pid = peer.pid(),
                             .uid = peer.uid(),
                             .gid = peer.gid(),
                             .start_time_ticks = peer.start_time_ticks(),
                             .exe = peer.exe(),
                             .comm = peer.comm(),
                             .cgroup = peer.cgroup()};
}

v1::ControlAudit audit_to_wire(const ledger::AuditEntry& entry) {
  v1::ControlAudit out;
  out.set_audit_sequence(entry.seq);
  out.set_at_unix_ns(entry.at_ns);
  out.set_method(entry.method);
  out.set_handle(escape_bytes(entry.handle));
  out.set_detail(escape_bytes(entry.detail));
  out.set_outcome(entry.outcome);
  out.set_message(escape_bytes(entry.message));
  *out.mutable_peer() = peer_to_wire(entry.peer);
  return out;
}

}  // namespace nhiguard::records
