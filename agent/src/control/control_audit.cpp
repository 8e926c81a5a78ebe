#include "control/control_audit.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control/control_peer.h"
#include "records/control_audit_record.h"

namespace nhiguard::control {
namespace {

using containment::ActionState;
using nlohmann::json;

const std::string* named_handle(const Request& request) {
  if (const auto* h = std::get_if<HandleRequest>(&request.params)) return &h->handle;
  return nullptr;
}

// The request in a few words, for the audit row (the contain reason stays in the handle).
std::string detail_of(const Request& request) {
  if (const auto* c = std::get_if<ContainRequest>(&request.params)) {
    std::string target;
    if (!c->target.unit.empty()) target += " unit " + c->target.unit;
    if (!c->target.cgroup.empty()) target += " cgroup " + c->target.cgroup;
    if (c->target.pid) target += fmt::format(" pid {}", *c->target.pid);
    if (!c->target.credential.empty()) target += " credential " + c->target.credential;
    return std::string(containment::to_string(c->action)) + target;
  }
  if (const auto* m = std::get_if<ModeRequest>(&request.params)) return m->mode;
  if (const auto* l = std::get_if<LearnRequest>(&request.params)) return fmt::format("{} ms", l->duration.count());
  return {};
}

}  // namespace

Result<void> AuditTrail::authorize(const Request& request, const ledger::ControlPeer& peer) {
  if (request.method == Method::rollback || request.method == Method::reject) {
    const std::string& handle = *named_handle(request);
    auto action = ledger_.get(handle);
    if (!action) return {};  // unknown handle: the method answers not_found itself
    if (auto refused = refuse_weakening(*action, peer))
      return fail(Error{EPERM, fmt::format("{} {} refused: {}", to_string(request.method), handle, *refused)});
    return {};
  }
  if (request.method == Method::set_mode && std::get<ModeRequest>(request.params).mode == "observe") {
    auto in_force = ledger_.list({.states = {ActionState::active, ActionState::held}});
    if (!in_force) {
      return fail(Error{EPERM, fmt::format("mode observe refused: the actions in force cannot be read to check the "
                                           "requester ({})",
                                           in_force.error().message)});
    }
    if (auto refused = refuse_observe(*in_force, peer)) return fail(Error{EPERM, "mode observe refused: " + *refused});
  }
  return {};
}

void AuditTrail::record(const Request& request, const ledger::ControlPeer& peer, const json& response) {
  ledger::AuditEntry entry{
      .method = std::string(to_string(request.method)), .detail = detail_of(request), .peer = peer};
  if (const std::string* handle = named_handle(request)) entry.handle = *handle;
  const bool ok = response.value("ok", false);
  if (ok) {
    entry.outcome = "ok";
    const auto& result = response["result"];
    if (entry.handle.empty() && result.contains("action")) entry.handle = result["action"].value("handle", "");
  } else {
    const auto& error = response.contains("error") ? response["error"] : json::object();
    entry.outcome = error.value("code", "") == "refused" ? "refused" : "error";
    entry.message = error.value("message", "");
  }
  const std::string line =
      fmt::format("control: {} {}{}{} by {}: {}{}", entry.method, entry.handle, entry.handle.empty() ? "" : " ",
                  entry.detail, describe(peer), entry.outcome, entry.message.empty() ? "" : " (" + entry.message + ")");
  if (auto recorded = ledger_.record_audit(entry); !recorded) {
    spdlog::error("{} [NOT RECORDED in the audit trail: {}]", line, recorded.error().message);
    return;
  }
  if (entry.outcome == "ok") {
    spdlog::info("{}", line);
  } else {
    spdlog::warn("{}", line);
  }
}

Result<json> AuditTrail::list(size_t limit) {
  auto rows = ledger_.audit_after(0, 0);
  if (!rows) return fail(std::move(rows.error()));
  json out = json::array();
  const size_t first = rows->size() > limit ? rows->size() - limit : 0;
  for (size_t i = first; i < rows->size(); ++i) out.push_back(records::audit_to_json((*rows)[i]));
  return json{{"audit", std::move(out)}};
}

}  // namespace nhiguard::control
