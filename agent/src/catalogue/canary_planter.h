// Canary (honeytoken) files: the policy's `canaries` with `plant: true` are created by the agent
// when missing, so a shipped policy can carry canaries on every host. The content looks like a
// credential of the canary's class (an AWS profile, a token line) but is random and valid nowhere;
// any read of it is a canary_read trigger.
//
// Files are created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, parents 0700; an existing file (a
// canary from an earlier start, or the operator's own) is never touched. Nothing here is logged
// beyond the path.
#pragma once

#include <string>

#include "catalogue/credential_class.h"
#include "common/result.h"

namespace nhiguard::catalogue {

// true: the file was created; false: it already existed.
Result<bool> plant_canary(const std::string& path, catalogue::CredentialClass credential_class);

}  // namespace nhiguard::catalogue
