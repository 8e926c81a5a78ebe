#include "reporter/wire_records.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "records/control_audit_record.h"
#include "records/rollback_handle_record.h"

namespace nhiguard::reporter {
namespace {

constexpr std::string_view kCommandNotePrefix = "collector command ";

Report make_report(ReportKind kind, std::string type, const v1::Report& body, bool droppable, uint64_t event_boot_ns,
                   int64_t event_wall_ns) {
  Report r;
  r.kind = kind;
  r.type = std::move(type);
  r.payload = body.SerializeAsString();
  r.droppable = droppable;
  r.event_boot_ns = event_boot_ns;
  r.event_wall_ns = event_wall_ns;
  return r;
}

}  // namespace

v1::Mode mode_to_wire(config::AgentMode mode) {
  return mode == config::AgentMode::observe ? v1::MODE_OBSERVE : v1::MODE_POLICY;
}

std::optional<config::AgentMode> mode_from_wire(v1::Mode mode) {
  switch (mode) {
    case v1::MODE_OBSERVE:
      return config::AgentMode::observe;
    case v1::MODE_POLICY:
      return config::AgentMode::policy;
    default:
      return std::nullopt;
  }
}

Report credential_access_report(v1::CredentialAccessEvent event, uint64_t event_boot_ns) {
  v1::Report body;
  const bool droppable = !event.denied();
  const int64_t wall_ns = event.time_unix_ns();
  *body.mutable_credential_access() = std::move(event);
  return make_report(ReportKind::event, "credential_access", body, droppable, event_boot_ns, wall_ns);
}

Report egress_report(v1::EgressEvent event, uint64_t event_boot_ns) {
  v1::Report body;
  const bool droppable = !event.denied();
  const int64_t wall_ns = event.time_unix_ns();
  *body.mutable_egress() = std::move(event);
  return make_report(ReportKind::event, "egress", body, droppable, event_boot_ns, wall_ns);
}

Report memory_access_report(v1::MemoryAccessEvent event, uint64_t event_boot_ns) {
  v1::Report body;
  const int64_t wall_ns = event.time_unix_ns();
  *body.mutable_memory_access() = std::move(event);
  return make_report(ReportKind::event, "memory_access", body, true, event_boot_ns, wall_ns);
}

Report block_device_open_report(v1::BlockDeviceOpenEvent event, uint64_t event_boot_ns) {
  v1::Report body;
  const int64_t wall_ns = event.time_unix_ns();
  *body.mutable_block_device_open() = std::move(event);
  return make_report(ReportKind::event, "block_device_open", body, true, event_boot_ns, wall_ns);
}

std::string collector_command_note(std::string_view command_id, std::string_view reason) {
  std::string note = fmt::format("{}{}", kCommandNotePrefix, command_id);
  if (!reason.empty()) note += fmt::format(": {}", reason);
  return note;
}

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
  *update->mutable_action() = records::handle_to_wire(at_change);
  auto* c = update->mutable_change();
  c->set_ledger_sequence(change.seq);
  if (change.from_state) c->set_from_state(static_cast<v1::ActionState>(static_cast<int>(*change.from_state)));
  c->set_to_state(static_cast<v1::ActionState>(static_cast<int>(change.to_state)));
  c->set_at_unix_ns(change.at_ns);
  c->set_actor(change.actor);
  c->set_note(change.note);
  c->set_command_id(command_id_from_note(change.note));
  if (change.peer) *c->mutable_peer() = records::peer_to_wire(*change.peer);
  return make_report(ReportKind::action_update, "action_update", body, false, 0, change.at_ns);
}

Report control_audit_report(const ledger::AuditEntry& entry) {
  v1::Report body;
  *body.mutable_control_audit() = records::audit_to_wire(entry);
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
    return fail(Error{
        EBADMSG, fmt::format("outbox report {} ({}): payload is not a Report body", stored.seq, stored.report.type)});
  }
  // A drop marker goes out under the last sequence it covers, so every range it lists ends at or
  // before the report's own sequence (it took the place of the reports it lists).
  out.set_sequence(stored.seq_end);
  out.set_created_at_unix_ns(stored.stored_wall_ns);
  return out;
}

}  // namespace nhiguard::reporter
