// PersistedMode: the agent mode a collector imposed (`nhiguardctl --collector ... mode observe
// --all`, the fleet kill switch, or a per-agent mode), kept in <state_dir>/mode.json so that an
// agent restarted while the collector is unreachable still obeys it. agent.yaml's `mode` applies
// again only when the collector says so (it requires no mode any more).
//
// File: one JSON object {"mode": "observe"|"policy", "set_by": "...", "command_id": "...",
// "set_at": RFC 3339}, mode 0600, a checked state file (common/state_file.h): replaced atomically
// (temporary file, fsync, rename, fsync of the directory) with a checksum, so a crash leaves either
// the old or the new file, and a torn or edited one is refused.
//
// Thread-safety: the functions are reentrant; callers serialise writes to one path.
#pragma once

#include <optional>

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/result.h"
#include "config/agent_config.h"

namespace nhiguard::config {

struct ModeOverride {
  config::AgentMode mode = config::AgentMode::observe;
  std::string set_by;      // "collector (fleet)", "collector (agent)", the operator's name when known
  std::string command_id;  // the collector command that set it; empty when set by a Welcome
  int64_t set_at_ns = 0;   // CLOCK_REALTIME
};

// The override in `path`; none when the file does not exist. A file that cannot be read is an error
// naming it; a damaged one (not JSON, checksum mismatch, unknown mode) is EUCLEAN (the caller
// decides; the daemon moves it aside and keeps the safer observe mode).
Result<std::optional<ModeOverride>> load_mode_override(const std::string& path);

// The override a mode file's (checked) content describes; EUCLEAN naming `path` when it is not one.
Result<ModeOverride> parse_mode_override(const nlohmann::json& content, const std::string& path);

Result<void> save_mode_override(const std::string& path, const ModeOverride& mode);

// Removes the file; a missing file is not an error.
Result<void> clear_mode_override(const std::string& path);

}  // namespace nhiguard::config
