// An action the ledger owes writes for (containment::UnrecordedAction) as status's
// `unrecorded_actions` entries: the handle's JSON (records/rollback_handle_record.h) with
// ledger_error, unrecorded_since (RFC 3339 UTC) and ledger_writes_owed. Pure.
#pragma once

#include <nlohmann/json.hpp>

#include "containment/containment_executor.h"

namespace nhiguard::records {

nlohmann::json unrecorded_to_json(const containment::UnrecordedAction& owed);

}  // namespace nhiguard::records
