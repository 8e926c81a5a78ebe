// Learning: the agent's learning mode and what it learned, kept in <state_dir>/learned.json (a
// checked state file, common/state_file.h) so a restart keeps it. learn() starts (or, with a zero
// duration, stops) a learning period; while it runs the correlation stage records every credential
// reader and tainted egress into the LearnedSet; suggest() renders the allow-list policy of what
// was seen (`nhiguardctl policy suggest`).
//
// Thread-safety: learn(), suggest() from the control thread, persist_if_changed() from the event
// loop; the LearnedSet is thread-safe and the state file is written whole each time.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "policy/learned_set.h"

namespace nhiguard::policy {

class Learning {
 public:
  explicit Learning(std::string state_path) : path_(std::move(state_path)) {}

  // At start: loads the saved set. A damaged file is moved aside and the set starts empty; the
  // message saying so is returned (for a state notice). An unreadable file is left as it is.
  std::optional<std::string> load();
  // Starts a learning period of `duration` from now (zero: stops it); the learning summary.
  nlohmann::json learn(std::chrono::milliseconds duration);
  // {"policy": the allow-list policy of what was learned (YAML), "learning": summary}.
  nlohmann::json suggest(const std::string& hostname);
  // Writes the state file if the set changed since the last write.
  void persist_if_changed();

  LearnedSet& learned() { return learned_; }

 private:
  void persist();

  const std::string path_;
  LearnedSet learned_;
};

}  // namespace nhiguard::policy
