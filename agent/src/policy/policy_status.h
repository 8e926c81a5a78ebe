// The loaded policy as `nhiguardctl status` shows it: where it came from, how much of it there is and
// the automated-action rate limit with the actions inside its current window. Pure.
#pragma once

#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "policy/policy.h"

namespace nhiguard::policy {

nlohmann::json policy_status_json(const Policy& policy, const std::string& policy_dir, size_t recent_actions);

}  // namespace nhiguard::policy
