// Small filesystem helpers shared by the agent's modules.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace nhiguard {

// mkdir -p: creates every missing component of `path` with `mode` (existing ones are left as
// they are). Agent state and pins are private, hence the 0700 default.
Result<void> make_directories(const std::string& path, mode_t mode = 0700);

}  // namespace nhiguard
