#include "policy/learning.h"

#include <time.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/filesystem.h"
#include "common/state_file.h"
#include "config/duration.h"

namespace nhiguard::policy {

void Learning::persist_if_changed() {
  if (learned_.take_dirty()) persist();
}

nlohmann::json Learning::learn(std::chrono::milliseconds duration) {
  const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  if (duration.count() == 0) {
    learned_.stop();
    spdlog::info("learning stopped");
  } else {
    learned_.start(now, now + std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count());
    spdlog::info("learning for {}: credential readers and tainted egress are recorded for `nhiguardctl policy suggest`",
                 config::format_duration(duration));
  }
  persist();
  return learned_.summary(now);
}

nlohmann::json Learning::suggest(const std::string& hostname) {
  const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  auto summary = learned_.summary(now);
  const std::string comment = fmt::format(
      "Suggested by nhiguardctl policy suggest on {} at {}: allows exactly what was seen while learning\n"
      "({} observation(s) since {}{}). Review it, then put it in the policy_dir beside the default policy.",
      hostname, format_rfc3339_ns(static_cast<uint64_t>(now)), summary["observations"].get<uint64_t>(),
      summary["since"].is_string() ? summary["since"].get<std::string>() : "never",
      summary["dropped"].get<uint64_t>() == 0
          ? std::string()
          : fmt::format("; {} did not fit the learned set's bounds and are missing here",
                        summary["dropped"].get<uint64_t>()));
  return {{"policy", learned_.suggest_yaml(comment)}, {"learning", std::move(summary)}};
}

void Learning::persist() {
  if (auto written = write_state_file(path_, learned_.to_json()); !written) {
    spdlog::warn("{}: what was learned lives only in memory until the next try", written.error().message);
  }
}

std::optional<std::string> Learning::load() {
  const std::string& path = path_;
  auto loaded = load_state_file(path);
  if (!loaded) {
    spdlog::error("{}; the learned set starts empty (the file is left as it is)", loaded.error().message);
    return std::nullopt;
  }
  std::string damage = loaded->damage;
  std::string kept_as = loaded->quarantined_as;
  if (loaded->file) {
    auto parsed = learned_.load_json(loaded->file->content);
    if (parsed) return std::nullopt;
    damage = parsed.error().message;
    auto moved = quarantine_file(path);
    kept_as = moved ? *moved : moved.error().message;
  }
  if (damage.empty()) return std::nullopt;  // no file yet
  const std::string message =
      fmt::format("{} is damaged ({}); kept as {}; the learned set starts empty", path, damage, kept_as);
  spdlog::error("{}", message);
  return message;
}

}  // namespace nhiguard::policy
