#include "records/credential_access_record.h"

#include <fmt/format.h>

#include "catalogue/credential_class.h"
#include "common/clock.h"
#include "common/json_escape.h"
#include "records/process_record.h"

namespace nhiguard::records {

using nlohmann::json;

namespace {

std::string access_of(const events::FileOpenEvent& event) {
  if (event.readable() && event.writable()) return "read_write";
  return event.writable() ? "write" : "read";
}

}  // namespace

v1::CredentialAccessEvent credential_access_to_wire(const events::FileOpenEvent& event,
                                                    const catalogue::ResolvedCredential& credential,
                                                    const identity::ResolvedIdentity& identity, int64_t wall_ns,
                                                    std::string event_id) {
  v1::CredentialAccessEvent e;
  e.set_event_id(std::move(event_id));
  e.set_time_unix_ns(wall_ns);
  auto* c = e.mutable_credential();
  c->set_id(credential.credential_id);
  // CredentialClass values match the wire enum (types.proto).
  c->set_credential_class(static_cast<v1::CredentialClass>(static_cast<int>(credential.credential_class)));
  c->set_path(escape_bytes(credential.path));
  c->set_inode(event.ino);
  // The kernel's dev_t layout: major in the bits above 20.
  c->set_device_major(static_cast<uint32_t>(event.dev >> 20));
  c->set_device_minor(static_cast<uint32_t>(event.dev & 0xfffff));
  c->set_match(event.by_inode ? "inode" : "name");
  for (const auto& alias : credential.aliases) c->add_aliases(escape_bytes(alias));
  // Policy files and agent.yaml both refuse an empty owner, so "set" and "non-empty" are one on the wire.
  if (credential.owner) c->set_owner(escape_bytes(*credential.owner));
  e.set_access(access_of(event));
  e.set_open_flags(event.open_flags);
  e.set_syscall(std::string(events::to_string(event.syscall)));
  e.set_requested_path(escape_bytes(event.requested_path));
  e.set_requested_path_truncated(event.path_truncated);
  e.set_denied(event.denied);
  if (event.denied) e.set_denial(event.refused ? "refused" : "reader_killed");
  e.set_coalesced_opens(event.coalesced_opens);
  e.set_repeat_summary(event.repeat_summary);
  *e.mutable_process() = process_to_wire(identity);
  *e.mutable_workload() = workload_to_wire(identity.workload);
  return e;
}

json credential_access_line(const v1::CredentialAccessEvent& r, const events::FileOpenEvent& event,
                            std::string_view host) {
  const auto& c = r.credential();
  json credential = {
      {"id", c.id()},
      {"class", catalogue::to_string(static_cast<catalogue::CredentialClass>(c.credential_class()))},
      {"path", c.path()},
      {"inode", c.inode()},
      {"device", fmt::format("{}:{}", c.device_major(), c.device_minor())},
      {"match", c.match()},
  };
  if (!c.aliases().empty()) credential["aliases"] = std::vector<std::string>(c.aliases().begin(), c.aliases().end());
  if (!c.owner().empty()) credential["owner"] = c.owner();
  json line = {
      {"time", format_rfc3339_ns(static_cast<uint64_t>(r.time_unix_ns()))},
      {"type", "credential_access"},
      {"event_id", r.event_id()},
      {"host", std::string(host)},
      {"credential", std::move(credential)},
      {"access", r.access()},
      {"open_flags", r.open_flags()},
      {"syscall", r.syscall()},
      {"requested_path", r.requested_path()},
      {"process", process_json(r.process())},
      {"workload", workload_json(r.workload())},
  };
  if (r.denied()) {
    line["denied"] = true;
    line["denial"] = r.denial();
  }
  // This process's repeat opens of the credential since its previous record, folded into this one.
  if (r.coalesced_opens() != 0) line["coalesced_opens"] = r.coalesced_opens();
  // Not an open of its own: the repeats after the process's last line, written at its exit.
  if (r.repeat_summary()) line["repeat_summary"] = true;
  if (r.requested_path_truncated()) line["requested_path_truncated"] = true;
  if (event.path_missing) line["requested_path_missing"] = true;
  // Killed for sharing the fd table of a denied opener (clone(CLONE_FILES)), not for its own cgroup.
  if (event.shared_fd_table) line["shared_fd_table"] = true;
  return line;
}

}  // namespace nhiguard::records
