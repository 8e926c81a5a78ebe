// AgentConfig: the daemon's settings, read from agent.yaml (packaging/agent.yaml documents every key).
//
// Every key is optional; a missing key takes the default written next to its field below. Parsing
// never stops at the first problem: unknown keys, wrong types, bad values, bad durations and bad
// credential classes are all collected, each as "file:line:column: field.path: message" with
// 1-based line and column, so an operator fixes a file in one pass. An unreadable file or invalid
// YAML syntax yields exactly one error.
//
// Invariants of a returned AgentConfig (checked by the parser): paths are absolute; mode is valid;
// bpf.ringbuf_bytes is a power of two and a multiple of the page size; rescan_interval >= 1s;
// every credential has exactly one of path/glob, an absolute or "~/" pattern and a known class.
//
// Thread-safety: the functions are reentrant; an AgentConfig is a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue/credential_catalogue.h"
#include "catalogue/credential_class.h"
#include "common/result.h"
#include "config/yaml_schema.h"

namespace nhiguard::config {

enum class AgentMode {
  observe,  // detect and report; never contain (decisions are recorded as "would have")
  policy,   // apply the policy's decisions, safety gates included
};
std::string_view to_string(AgentMode mode);

struct CollectorConfig {
  std::string address;                       // host:port; empty = no collector (local only)
  std::string pki = "/etc/nhiguard/pki";     // its agent/ subdirectory, or itself: ca.pem, agent.pem, agent-key.pem
  bool insecure = false;                     // plaintext gRPC; for tests and labs only
  uint64_t outbox_max_bytes = 256ull << 20;  // bound of <state_dir>/outbox.db's reports; >= kMinOutboxBytes
};
inline constexpr uint64_t kMinOutboxBytes = 64u << 10;

struct EventLogConfig {
  std::string path;                  // "" in the struct = <state_dir>/events.jsonl (filled by the parser)
  bool stdout_mirror = false;        // YAML key "stdout": also write each line to stdout
  uint64_t max_bytes = 64ull << 20;  // rotate when the file would grow past this; 0 = never
  uint32_t keep = 3;                 // rotated files kept: path.1 .. path.<keep>
};

struct BpfConfig {
  std::string pin_dir = "/sys/fs/bpf/nhiguard";
  uint32_t ringbuf_bytes = 8u << 20;  // power of two, multiple of the page size
  bool report_all_egress = false;     // egress lines for untainted, allowed connects too (noisy)
};

// An extra catalogued credential. `pattern` is ready for the catalogue: a `path:` entry has its glob
// metacharacters escaped, a `glob:` entry is kept as written.
struct CredentialConfig {
  std::string pattern;
  bool is_glob = false;
  std::string written;  // the path or glob as written in the file, for messages
  catalogue::CredentialClass credential_class = catalogue::CredentialClass::custom;
  std::optional<std::string> owner;  // the workload identity that owns it (unit name or SPIFFE URI)
};

struct AgentConfig {
  std::string policy_dir = "/etc/nhiguard/policy.d";
  std::string state_dir = "/var/lib/nhiguard";
  std::string control_socket = "/run/nhiguard/agent.sock";
  AgentMode mode = AgentMode::policy;
  std::string trust_domain = "nhiguard.local";
  std::string hostname;  // default: gethostname(2), filled by the parser
  CollectorConfig collector;
  EventLogConfig event_log;
  BpfConfig bpf;
  std::vector<CredentialConfig> credentials;
  std::chrono::milliseconds rescan_interval = std::chrono::seconds(30);
  // Secrets in command lines become <redacted:KIND:FP> before anything records them
  // (identity/cmdline_redactor.h). false keeps argv whole and logs a warning at every start.
  bool redact_cmdlines = true;
};

// The full outcome: the config (defaults where a key was missing or invalid) and every error.
struct ConfigParse {
  AgentConfig config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

ConfigParse parse_agent_config_collecting(std::string_view yaml, std::string_view source_name);
ConfigParse load_agent_config_collecting(const std::string& path);

// As above, folded into a Result: the Error's message is "N error(s) in SOURCE:" followed by one
// line per error; its code is errno for an unreadable file, EINVAL otherwise.
Result<AgentConfig> parse_agent_config(std::string_view yaml, std::string_view source_name);
Result<AgentConfig> load_agent_config(const std::string& path);

// The config's credentials as catalogue entries (pattern, class, owner), in file order.
std::vector<catalogue::CatalogueEntry> catalogue_entries(const AgentConfig& config);

}  // namespace nhiguard::config
