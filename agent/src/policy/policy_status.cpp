#include "policy/policy_status.h"

#include "config/duration.h"

namespace nhiguard::policy {

nlohmann::json policy_status_json(const Policy& policy, const std::string& policy_dir, size_t recent_actions) {
  return {
      {"dir", policy_dir},
      {"files", policy.sources},
      {"rules", policy.rules.size()},
      {"credentials", policy.credentials.size()},
      {"canaries", policy.canaries.size()},
      {"rate_limit",
       {{"max_actions", policy.rate_limit.max_actions},
        {"window", config::format_duration(policy.rate_limit.window)},
        {"recent", recent_actions}}},
  };
}

}  // namespace nhiguard::policy
