#include "records/unrecorded_action_record.h"

#include "common/clock.h"
#include "records/rollback_handle_record.h"

namespace nhiguard::records {

nlohmann::json unrecorded_to_json(const containment::UnrecordedAction& owed) {
  auto item = handle_to_json(owed.handle);
  item["ledger_error"] = owed.ledger_error;
  item["unrecorded_since"] = format_rfc3339_ns(static_cast<uint64_t>(owed.since_ns));
  item["ledger_writes_owed"] = owed.writes_owed;
  return item;
}

}  // namespace nhiguard::records
