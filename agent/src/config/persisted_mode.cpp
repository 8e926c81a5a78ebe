#include "config/persisted_mode.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/state_file.h"

namespace nhiguard::config {

Result<std::optional<ModeOverride>> load_mode_override(const std::string& path) {
  auto read = read_state_file(path);
  if (!read) return fail(Error{read.error().code, "read mode override: " + read.error().message});
  if (!*read) return std::optional<ModeOverride>{};
  auto parsed = parse_mode_override((*read)->content, path);
  if (!parsed) return fail(std::move(parsed.error()));
  return std::optional<ModeOverride>(std::move(*parsed));
}

Result<ModeOverride> parse_mode_override(const nlohmann::json& json, const std::string& path) {
  try {
    ModeOverride out;
    const auto mode = json.at("mode").get<std::string>();
    if (mode == "observe") {
      out.mode = config::AgentMode::observe;
    } else if (mode == "policy") {
      out.mode = config::AgentMode::policy;
    } else {
      return fail(Error{EUCLEAN, "mode override " + path + ": unknown mode '" + mode + "'"});
    }
    out.set_by = json.value("set_by", "");
    out.command_id = json.value("command_id", "");
    out.set_at_ns = json.value("set_at_ns", int64_t{0});
    return out;
  } catch (const nlohmann::json::exception& e) {
    return fail(Error{EUCLEAN, "mode override " + path + ": " + e.what()});
  }
}

Result<void> save_mode_override(const std::string& path, const ModeOverride& mode) {
  const nlohmann::json json = {
      {"mode", config::to_string(mode.mode)}, {"set_by", mode.set_by},
      {"command_id", mode.command_id},        {"set_at", format_rfc3339_ns(static_cast<uint64_t>(mode.set_at_ns))},
      {"set_at_ns", mode.set_at_ns},
  };
  auto written = write_state_file(path, json);
  if (!written) return fail(Error{written.error().code, "save mode override: " + written.error().message});
  return {};
}

Result<void> clear_mode_override(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno("remove mode override " + path));
  }
  return {};
}

}  // namespace nhiguard::config
