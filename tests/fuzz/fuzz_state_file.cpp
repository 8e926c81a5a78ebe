// libFuzzer target: arbitrary bytes as a state file under state_dir (credential_ids.json,
// kernel_counters.json, mode.json, learned.json). The checked read must accept the content or call
// it damaged (EUCLEAN), never crash, hang or throw, and whatever it accepts goes through every
// state file's own validation, which must also answer with a value or an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "catalogue/credential_ids.h"
#include "common/state_file.h"
#include "daemon/drop_accounting.h"
#include "config/persisted_mode.h"
#include "daemon/state_recovery.h"
#include "policy/learned_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = nhiguard::parse_state_file(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
  if (!parsed) {
    if (parsed.error().code != EUCLEAN) __builtin_trap();  // damage is the only refusal
    return 0;
  }
  const nlohmann::json& content = parsed->content;
  (void)nhiguard::catalogue::parse_credential_ids(content);
  (void)nhiguard::daemon::DropSnapshot::from_json(content);
  (void)nhiguard::config::parse_mode_override(content, "fuzz.json");
  nhiguard::policy::LearnedSet learned;
  (void)learned.load_json(content);
  // A file the agent writes reads back as written.
  auto again = nhiguard::parse_state_file(nhiguard::render_state_file(content), "fuzz.json");
  if (!again || again->content != content || again->unchecked) __builtin_trap();
  return 0;
}
