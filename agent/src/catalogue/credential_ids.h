// credential_ids.json: the catalogue's path -> credential id table, kept across restarts so an id
// (which pinned kernel entries such as denies carry) keeps naming the same file.
//
// Paths are bytes, and some are chosen by users (`~/.ssh/id_*` matches any name a user gives a
// file). JSON strings are UTF-8, so the table is stored under "escaped_paths" with every path
// through escape_bytes (common/json_escape.h), which is injective: a non-UTF-8 name round-trips
// exactly (stored raw, it made the state file unwritable: the JSON writer refuses such a string). A table written
// before this (paths as top-level keys, raw) is still read.
#pragma once

#include <cstdint>
#include <map>
#include <expected>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace nhiguard::catalogue {

nlohmann::json credential_ids_to_json(const std::map<std::string, uint32_t>& ids);

// The table, every id in 1..2^32-1; EUCLEAN naming the first bad entry.
Result<std::map<std::string, uint32_t>> parse_credential_ids(const nlohmann::json& content);

// The table in the state file at `path` (common/state_file.h); else why it cannot be used: missing,
// unreadable, or damaged (a damaged file is moved aside, and the reason names where it is kept).
std::expected<std::map<std::string, uint32_t>, std::string> load_credential_ids_file(const std::string& path);

}  // namespace nhiguard::catalogue
