// Small filesystem helpers shared by the agent's modules.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard {

// mkdir -p: creates every missing component of `path` with `mode` (existing ones are left as
// they are). Agent state and pins are private, hence the 0700 default.
Result<void> make_directories(const std::string& path, mode_t mode = 0700);

// Replaces `path` with `content` so that a crash leaves the old or the new file, never a torn one:
// writes `path`.tmp (created with `mode`, no symlink followed), fsyncs it, renames it over `path`
// and fsyncs the directory.
Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0600);

}  // namespace nhiguard
