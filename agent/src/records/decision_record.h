// The JSON record of one policy decision ("type": "decision"), written to the event log beside the
// events that triggered it. It explains the decision alone: the trigger (kind, confidence, event
// ids, destination), the identity (workload, process, class, impact), the credential, the rule and
// its mode, the matrix result, every gate with passed/tripped and why, the outcome, the action and
// its TTL, the rollback handle (for hold, contain and dry runs) with its rollback operation, and the
// error when the action could not be carried out. Never a byte of a credential.
//
// The line and the wire's Decision are two mappings of one decision, kept side by side here: the
// line explains the decision to a person reading the event log (matrix, impact, TTL, the whole
// handle), the wire carries what the collector stores and shows. Pure: no I/O; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "containment/action.h"
#include "identity/identity_resolver.h"
#include "nhiguard/v1/agent.pb.h"
#include "policy/decision_engine.h"

namespace nhiguard::records {

nlohmann::json build_decision_record(const policy::Decision& decision, const policy::TriggerInput& input,
                                     const containment::RollbackHandle* handle, std::string_view error,
                                     std::string_view host, uint64_t wall_time_ns);

// The same decision as the collector protocol's Decision (reported through the outbox).
v1::Decision decision_to_wire(const policy::Decision& decision, const policy::TriggerInput& input,
                              const identity::ResolvedIdentity& identity, const containment::RollbackHandle* handle,
                              std::string_view decision_id, uint64_t wall_time_ns);

// The one log line of a decision: outcome, action, target, handle, rule, tripped gates, reason.
std::string decision_log_line(const policy::Decision& decision, const containment::RollbackHandle* handle,
                              std::string_view error);

}  // namespace nhiguard::records
