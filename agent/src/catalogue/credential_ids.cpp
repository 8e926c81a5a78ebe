#include "catalogue/credential_ids.h"

#include <fmt/format.h>

#include "common/filesystem.h"
#include "common/json_escape.h"
#include "common/state_file.h"

namespace nhiguard::catalogue {
namespace {

constexpr const char* kEscapedPaths = "escaped_paths";

Result<uint32_t> id_of(const std::string& path, const nlohmann::json& id) {
  if (!id.is_number_unsigned() || id.get<uint64_t>() == 0 || id.get<uint64_t>() > UINT32_MAX) {
    return fail(Error{EUCLEAN, "credential ids: the id of " + escape_bytes(path) + " is not a number in 1..2^32-1"});
  }
  return id.get<uint32_t>();
}

}  // namespace

nlohmann::json credential_ids_to_json(const std::map<std::string, uint32_t>& ids) {
  nlohmann::json escaped = nlohmann::json::object();
  for (const auto& [path, id] : ids) escaped[escape_bytes(path)] = id;
  return {{kEscapedPaths, std::move(escaped)}};
}

Result<std::map<std::string, uint32_t>> parse_credential_ids(const nlohmann::json& content) {
  if (!content.is_object()) return fail(Error{EUCLEAN, "credential ids: not a JSON object"});
  std::map<std::string, uint32_t> ids;
  if (!content.contains(kEscapedPaths)) {
    // Written before paths were escaped: the keys are the paths.
    for (const auto& [path, id] : content.items()) {
      auto valid = id_of(path, id);
      if (!valid) return fail(valid.error());
      ids[path] = *valid;
    }
    return ids;
  }
  const nlohmann::json& table = content[kEscapedPaths];
  if (content.size() != 1 || !table.is_object()) {
    return fail(Error{EUCLEAN, "credential ids: expected only an \"escaped_paths\" object"});
  }
  for (const auto& [escaped, id] : table.items()) {
    auto path = unescape_bytes(escaped);
    if (!path) return fail(Error{EUCLEAN, "credential ids: " + path.error().message});
    auto valid = id_of(*path, id);
    if (!valid) return fail(valid.error());
    if (!ids.emplace(std::move(*path), *valid).second) {
      return fail(Error{EUCLEAN, "credential ids: a path is listed twice"});
    }
  }
  return ids;
}

std::expected<std::map<std::string, uint32_t>, std::string> load_credential_ids_file(const std::string& path) {
  auto loaded = load_state_file(path);
  if (!loaded) return std::unexpected(loaded.error().message);
  if (loaded->file) {
    auto ids = parse_credential_ids(loaded->file->content);
    if (ids) return std::move(*ids);
    auto moved = quarantine_file(path);
    return std::unexpected(fmt::format("{} is damaged ({}); kept as {}", path, ids.error().message,
                                       moved ? *moved : moved.error().message));
  }
  return std::unexpected(loaded->damage.empty()
                             ? path + " does not exist"
                             : fmt::format("{}; kept as {}", loaded->damage, loaded->quarantined_as));
}

}  // namespace nhiguard::catalogue
