// The agent's small JSON state files under state_dir (credential ids, learned set, mode override,
// the kernel counter snapshot): one way to write them and one way to read them back checked.
//
// Format: one JSON object, the file's own fields plus "nhiguard_sha256", the SHA-256 (hex) of the
// object without that field as nlohmann::json::dump() renders it (keys sorted, no whitespace), so
// the file stays readable with jq while a torn, truncated or edited file is told from a good one.
// Written with write_file_atomically (temporary file, fsync, rename, fsync of the directory): a
// crash leaves the old or the new file, never a torn one.
//
// Reading: a missing file is "none"; a file that is empty, not JSON, not an object, or whose
// checksum does not match is damaged (EUCLEAN, with what is wrong). A file without the checksum
// field was written by an agent before checksums: it is accepted when it parses (`unchecked`) and
// gets its checksum at the next write. load_state_file() moves a damaged file aside with
// quarantine_file() (kept for forensics, never silently overwritten) and says so, so the caller
// only decides what the agent does instead.
//
// Thread-safety: the functions are reentrant; callers serialise writes to one path.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace nhiguard {

inline constexpr const char* kStateFileChecksumKey = "nhiguard_sha256";

// The file's text for `content` (a JSON object): the object with its checksum field, one line.
std::string render_state_file(const nlohmann::json& content);

// Writes render_state_file(content) atomically, mode 0600; EINVAL when content is not an object.
Result<void> write_state_file(const std::string& path, const nlohmann::json& content);

struct StateFileContent {
  nlohmann::json content;  // the object, without the checksum field
  bool unchecked = false;  // written before checksums: parsed, not verified
};

// Checks a state file's text (as read_state_file does); `path` only names it in messages.
Result<StateFileContent> parse_state_file(std::string_view text, const std::string& path);

// The file's content; nullopt when it does not exist; EUCLEAN when it is damaged; the errno of any
// other failure to read it.
Result<std::optional<StateFileContent>> read_state_file(const std::string& path);

struct StateFileLoad {
  std::optional<StateFileContent> file;  // nullopt: missing, or damaged and moved aside
  std::string damage;                    // non-empty: what was wrong with the file
  std::string quarantined_as;            // where the damaged file is now
};

// read_state_file(), and a damaged file renamed aside (quarantine_file) and described. Fails only
// when the file cannot be read for another reason or cannot be moved aside.
Result<StateFileLoad> load_state_file(const std::string& path);

}  // namespace nhiguard
