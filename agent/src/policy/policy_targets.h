// What a policy asks of the parts outside the decision engine:
//   watched_entries  the catalogue entries for the policy's own credential files and canaries, so
//                    their triggers can fire (entries that name a catalogue class add nothing);
//   break_glass      the protected identities the containment checks can name without a process
//                    at hand (a literal system unit, a user unit of a uid, a cgroup, or a uid alone),
//                    so even a manual contain refuses them. Selectors that need a process (session,
//                    container, pod, exe, uri, or a unit or cgroup together with a uid) stay with the
//                    decision engine's protected_identity gate.
// Pure functions of the policy.
#pragma once

#include <vector>

#include "catalogue/credential_catalogue.h"
#include "containment/protected_targets.h"
#include "policy/policy.h"

namespace nhiguard::policy {

std::vector<catalogue::CatalogueEntry> watched_entries(const Policy& policy);
containment::BreakGlass break_glass(const Policy& policy);

}  // namespace nhiguard::policy
