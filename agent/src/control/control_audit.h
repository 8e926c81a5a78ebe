// AuditTrail: the control socket's audit, kept in the rollback ledger (control_audit table, and the
// peer columns of action_history) and reported to the collector from there (reporter).
//
// authorize() is the peer guard (control_peer.h) applied to a request: rollback and reject of an
// action whose target cgroup holds the requester, and mode observe while any active or held action
// targets the requester's cgroup, are refused (EPERM) with the reason. record() writes one row per
// state-changing request (contain, rollback, approve, reject, learn, set_mode) with its outcome and
// peer, and one log line; a row that cannot be written is logged as an error with everything it
// held, so the command is never unrecorded silently.
//
// Thread-safety: as the ledger (every call serialised by it).
#pragma once

#include <cstddef>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/control_protocol.h"
#include "ledger/rollback_ledger.h"

namespace nhiguard::control {

class AuditTrail {
 public:
  explicit AuditTrail(ledger::RollbackLedger& ledger) : ledger_(ledger) {}

  Result<void> authorize(const Request& request, const ledger::ControlPeer& peer);
  void record(const Request& request, const ledger::ControlPeer& peer, const nlohmann::json& response);
  // {"audit": [...]}: the newest `limit` rows, oldest first (records::audit_to_json).
  Result<nlohmann::json> list(size_t limit = 1000);

 private:
  ledger::RollbackLedger& ledger_;
};

}  // namespace nhiguard::control
