#include "catalogue/credential_ids.h"

#include "events/json_escape.h"

namespace nhiguard::catalogue {
namespace {

constexpr const char* kEscapedPaths = "escaped_paths";

Result<uint32_t> id_of(const std::string& path, const nlohmann::json& id) {
  if (!id.is_number_unsigned() || id.get<uint64_t>() == 0 || id.get<uint64_t>() > UINT32_MAX) {
    return fail(Error{EUCLEAN, "credential ids: the id of " + events::escape_bytes(path) + " is not a number in 1..2^32-1"});
  }
  return id.get<uint32_t>();
}

}  // namespace

nlohmann::json credential_ids_to_json(const std::map<std::string, uint32_t>& ids) {
  nlohmann::json escaped = nlohmann::json::object();
  for (const auto& [path, id] : ids) escaped[events::escape_bytes(path)] = id;
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
    auto path = events::unescape_bytes(escaped);
    if (!path) return fail(Error{EUCLEAN, "credential ids: " + path.error().message});
    auto valid = id_of(*path, id);
    if (!valid) return fail(valid.error());
    if (!ids.emplace(std::move(*path), *valid).second) {
      return fail(Error{EUCLEAN, "credential ids: a path is listed twice"});
    }
  }
  return ids;
}

}  // namespace nhiguard::catalogue
