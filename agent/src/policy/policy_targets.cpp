#include "policy/policy_targets.h"

#include <optional>
#include <string>

namespace nhiguard::policy {

std::vector<catalogue::CatalogueEntry> watched_entries(const Policy& policy) {
  std::vector<catalogue::CatalogueEntry> entries;
  for (const auto& credential : policy.credentials) {
    if (credential.selector.kind == CredentialSelector::Kind::catalogue) continue;
    entries.push_back({.pattern = catalogue::catalogue_pattern(
                           credential.selector.pattern, credential.selector.kind == CredentialSelector::Kind::glob),
                       .credential_class = credential.credential_class,
                       .owner = credential.owner});
  }
  for (const auto& canary : policy.canaries) {
    entries.push_back(
        {.pattern = catalogue::catalogue_pattern(canary.path, false), .credential_class = canary.credential_class});
  }
  return entries;
}

containment::BreakGlass break_glass(const Policy& policy) {
  containment::BreakGlass out;
  const auto literal = [](const std::optional<std::string>& pattern) {
    return pattern && pattern->find_first_of("*?[\\") == std::string::npos;
  };
  for (const auto& selector : policy.protected_identities) {
    const bool others = selector.session || selector.container || selector.pod || selector.exe || selector.uri;
    const int keys = selector.unit.has_value() + selector.user_unit.has_value() + selector.cgroup.has_value();
    if (others || keys > 1) continue;
    if (keys == 0 && selector.uid) out.uids.push_back(*selector.uid);
    if (selector.uid && !selector.user_unit) continue;  // unit/cgroup AND uid: only the decision engine
    if (literal(selector.unit)) out.units.push_back(*selector.unit);
    if (literal(selector.cgroup)) out.cgroups.push_back(*selector.cgroup);
    if (literal(selector.user_unit) && selector.uid) out.user_units.push_back({*selector.uid, *selector.user_unit});
  }
  return out;
}

}  // namespace nhiguard::policy
