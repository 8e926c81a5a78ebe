#include "config/agent_config.h"

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <functional>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "catalogue/credential_catalogue.h"
#include "config/duration.h"
#include "config/yaml_schema.h"

namespace nhiguard::config {
namespace {

using catalogue::CredentialClass;

// Byte sizes: a plain number of bytes, or a number with a binary suffix (K/KiB, M/MiB, G/GiB).
std::optional<uint64_t> parse_size(std::string_view text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19) return std::nullopt;
  uint64_t value = 0;
  for (std::size_t i = 0; i < digits; ++i) value = value * 10 + static_cast<uint64_t>(text[i] - '0');
  const std::string_view suffix = text.substr(digits);
  uint64_t multiplier = 1;
  if (suffix.empty() || suffix == "B") {
    multiplier = 1;
  } else if (suffix == "K" || suffix == "KiB") {
    multiplier = 1ull << 10;
  } else if (suffix == "M" || suffix == "MiB") {
    multiplier = 1ull << 20;
  } else if (suffix == "G" || suffix == "GiB") {
    multiplier = 1ull << 30;
  } else {
    return std::nullopt;
  }
  if (value > UINT64_MAX / multiplier) return std::nullopt;
  return value * multiplier;
}

bool valid_trust_domain(std::string_view domain) {
  // SPIFFE trust domain names: lowercase letters, digits, '.', '-' and '_'.
  if (domain.empty() || domain.size() > 255) return false;
  return std::all_of(domain.begin(), domain.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

bool valid_hostname(std::string_view name) {
  // It becomes one path segment of workload URIs, so no '/' and nothing that needs escaping.
  if (name.empty() || name.size() > 253) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
           c == '_';
  });
}

std::optional<std::string> check_collector_address(std::string_view address) {
  if (address.starts_with("unix:")) {
    return address.size() > 5 && address[5] == '/' ? std::nullopt
                                                   : std::optional<std::string>("unix: needs an absolute path");
  }
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return "expected host:port (e.g. collector.example:7443)";
  const std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.front() == '[' ? host.back() != ']' : host.find(':') != std::string_view::npos) {
    return "an IPv6 address must be in brackets, e.g. [2001:db8::1]:7443";
  }
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fmt::format("invalid port '{}'", port);
  }
  const int number = std::stoi(std::string(port));
  if (number < 1 || number > 65535) return fmt::format("port {} out of range 1-65535", number);
  return std::nullopt;
}

std::string default_hostname() {
  std::array<char, HOST_NAME_MAX + 1> buffer{};
  if (::gethostname(buffer.data(), buffer.size() - 1) != 0 || buffer[0] == '\0') return "localhost";
  return std::string(buffer.data());
}

// Walks the document with a fixed schema, collecting every error instead of stopping at one.
class Parser : public YamlSchemaReader {
 public:
  explicit Parser(std::string_view source) : YamlSchemaReader(source) {}

  ConfigParse parse(const YAML::Node& root) {
    ConfigParse out;
    bool event_log_path_set = false;
    if (root.IsNull()) {
      // An empty file is a valid config: every default.
    } else if (!root.IsMap()) {
      error(root, "", fmt::format("expected a mapping of settings at the top level, got {}", describe(root)));
    } else {
      AgentConfig& c = out.config;
      for_each_key(
          root, "", kTopLevelKeys, [&](const std::string& key, const YAML::Node& value, const std::string& field) {
            if (key == "policy_dir") {
              assign(c.policy_dir, absolute_path(value, field));
            } else if (key == "state_dir") {
              assign(c.state_dir, absolute_path(value, field));
            } else if (key == "control_socket") {
              if (auto path = absolute_path(value, field)) {
                if (path->size() >= sizeof(sockaddr_un::sun_path)) {
                  error(value, field,
                        fmt::format("too long for a unix socket ({} bytes, at most {})", path->size(),
                                    sizeof(sockaddr_un::sun_path) - 1));
                } else {
                  c.control_socket = *path;
                }
              }
            } else if (key == "mode") {
              if (auto mode = string_value(value, field)) {
                if (*mode == "observe") {
                  c.mode = AgentMode::observe;
                } else if (*mode == "policy") {
                  c.mode = AgentMode::policy;
                } else {
                  error(value, field, fmt::format("unknown mode '{}' (one of: observe, policy)", *mode));
                }
              }
            } else if (key == "trust_domain") {
              if (auto domain = string_value(value, field)) {
                if (valid_trust_domain(*domain)) {
                  c.trust_domain = *domain;
                } else {
                  error(value, field,
                        fmt::format("invalid trust domain '{}' (lowercase letters, digits, '.', '-', '_')", *domain));
                }
              }
            } else if (key == "hostname") {
              if (auto name = string_value(value, field)) {
                if (valid_hostname(*name)) {
                  c.hostname = *name;
                } else {
                  error(value, field, fmt::format("invalid hostname '{}' (letters, digits, '.', '-', '_')", *name));
                }
              }
            } else if (key == "collector") {
              parse_collector(value, field, c.collector);
            } else if (key == "event_log") {
              event_log_path_set = parse_event_log(value, field, c.event_log);
            } else if (key == "bpf") {
              parse_bpf(value, field, c.bpf);
            } else if (key == "credentials") {
              parse_credentials(value, field, c.credentials);
            } else if (key == "redact_cmdlines") {
              assign(c.redact_cmdlines, bool_value(value, field));
            } else if (key == "rescan_interval") {
              if (auto interval = duration_value(value, field)) {
                if (*interval < std::chrono::seconds(1)) {
                  error(value, field, "must be at least 1s");
                } else {
                  c.rescan_interval = *interval;
                }
              }
            }
          });
    }
    if (out.config.hostname.empty()) out.config.hostname = default_hostname();
    if (!event_log_path_set) out.config.event_log.path = out.config.state_dir + "/events.jsonl";
    out.errors = take_errors();
    return out;
  }

 private:
  static constexpr std::array<std::string_view, 12> kTopLevelKeys = {
      "policy_dir",   "state_dir",   "control_socket",  "mode",
      "trust_domain", "hostname",    "collector",       "event_log",
      "bpf",          "credentials", "rescan_interval", "redact_cmdlines"};

  template <typename T>
  static void assign(T& target, std::optional<T> value) {
    if (value) target = std::move(*value);
  }

  std::optional<uint64_t> size_value(const YAML::Node& node, const std::string& field) {
    std::optional<uint64_t> value;
    if (node.IsScalar()) value = parse_size(node.Scalar());
    if (!value) {
      error(node, field, fmt::format("expected a size in bytes (e.g. 8388608, 8MiB, 512KiB), got {}", describe(node)));
    }
    return value;
  }

  void parse_collector(const YAML::Node& node, const std::string& parent, CollectorConfig& out) {
    if (node.IsNull() || !expect_map(node, parent)) return;
    static constexpr std::array<std::string_view, 4> keys = {"address", "pki", "insecure", "outbox_max_bytes"};
    for_each_key(node, parent, keys, [&](const std::string& key, const YAML::Node& value, const std::string& field) {
      if (key == "address") {
        if (auto address = string_value(value, field)) {
          if (address->empty()) {
            out.address.clear();
          } else if (auto problem = check_collector_address(*address)) {
            error(value, field, *problem);
          } else {
            out.address = *address;
          }
        }
      } else if (key == "pki") {
        assign(out.pki, absolute_path(value, field));
      } else if (key == "insecure") {
        assign(out.insecure, bool_value(value, field));
      } else if (key == "outbox_max_bytes") {
        if (auto size = size_value(value, field)) {
          if (*size < kMinOutboxBytes) {
            error(value, field, fmt::format("at least {} bytes (64KiB)", kMinOutboxBytes));
          } else {
            out.outbox_max_bytes = *size;
          }
        }
      }
    });
  }

  // Returns whether event_log.path was given.
  bool parse_event_log(const YAML::Node& node, const std::string& parent, EventLogConfig& out) {
    bool path_set = false;
    if (node.IsNull() || !expect_map(node, parent)) return false;
    static constexpr std::array<std::string_view, 4> keys = {"path", "stdout", "max_bytes", "keep"};
    for_each_key(node, parent, keys, [&](const std::string& key, const YAML::Node& value, const std::string& field) {
      if (key == "path") {
        if (auto path = absolute_path(value, field)) {
          out.path = *path;
          path_set = true;
        }
      } else if (key == "stdout") {
        assign(out.stdout_mirror, bool_value(value, field));
      } else if (key == "max_bytes") {
        if (auto size = size_value(value, field)) {
          if (*size != 0 && *size < 4096) {
            error(value, field, "must be 0 (no rotation) or at least 4096 bytes");
          } else {
            out.max_bytes = *size;
          }
        }
      } else if (key == "keep") {
        if (auto count = count_value(value, field)) {
          if (*count > 1000) {
            error(value, field, "at most 1000 rotated files");
          } else {
            out.keep = static_cast<uint32_t>(*count);
          }
        }
      }
    });
    return path_set;
  }

  void parse_bpf(const YAML::Node& node, const std::string& parent, BpfConfig& out) {
    if (node.IsNull() || !expect_map(node, parent)) return;
    static constexpr std::array<std::string_view, 3> keys = {"pin_dir", "ringbuf_bytes", "report_all_egress"};
    for_each_key(node, parent, keys, [&](const std::string& key, const YAML::Node& value, const std::string& field) {
      if (key == "pin_dir") {
        assign(out.pin_dir, absolute_path(value, field));
      } else if (key == "report_all_egress") {
        assign(out.report_all_egress, bool_value(value, field));
      } else if (key == "ringbuf_bytes") {
        const auto size = size_value(value, field);
        if (!size) return;
        const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
        if (*size == 0 || (*size & (*size - 1)) != 0) {
          error(value, field, fmt::format("{} is not a power of two (e.g. 8MiB, 16MiB)", *size));
        } else if (*size % page != 0) {
          error(value, field, fmt::format("{} is not a multiple of the page size ({})", *size, page));
        } else if (*size > (1ull << 30)) {
          error(value, field, "at most 1GiB");
        } else {
          out.ringbuf_bytes = static_cast<uint32_t>(*size);
        }
      }
    });
  }

  void parse_credentials(const YAML::Node& node, const std::string& parent, std::vector<CredentialConfig>& out) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      error(node, parent, fmt::format("expected a list of credentials, got {}", describe(node)));
      return;
    }
    static constexpr std::array<std::string_view, 4> keys = {"path", "glob", "class", "owner"};
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      const std::string item_field = fmt::format("{}[{}]", parent, i);
      if (!expect_map(item, item_field)) continue;
      CredentialConfig credential;
      int patterns = 0;
      bool valid = true;
      for_each_key(item, item_field, keys,
                   [&](const std::string& key, const YAML::Node& value, const std::string& field) {
                     if (key == "path" || key == "glob") {
                       ++patterns;
                       auto text = credential_pattern(value, field);
                       if (!text) {
                         valid = false;
                         return;
                       }
                       credential.is_glob = key == "glob";
                       credential.written = *text;
                       credential.pattern = catalogue::catalogue_pattern(*text, credential.is_glob);
                     } else if (key == "class") {
                       auto text = string_value(value, field);
                       if (!text) {
                         valid = false;
                         return;
                       }
                       if (auto parsed = catalogue::parse_credential_class(*text)) {
                         credential.credential_class = *parsed;
                       } else {
                         error(value, field,
                               fmt::format("unknown credential class '{}' (one of: {})", *text,
                                           catalogue::credential_class_names()));
                         valid = false;
                       }
                     } else if (key == "owner") {
                       auto text = string_value(value, field);
                       if (text && text->empty()) error(value, field, "must not be empty");
                       if (!text || text->empty()) {
                         valid = false;
                         return;
                       }
                       credential.owner = *text;
                     }
                   });
      if (patterns == 0) {
        error(item, item_field, "needs a path: or a glob:");
        valid = false;
      } else if (patterns > 1) {
        error(item, item_field, "has both path: and glob: (use exactly one)");
        valid = false;
      }
      if (valid) out.push_back(std::move(credential));
    }
  }
};

}  // namespace

std::string_view to_string(AgentMode mode) {
  switch (mode) {
    case AgentMode::observe:
      return "observe";
    case AgentMode::policy:
      return "policy";
  }
  return "unknown";
}

ConfigParse parse_agent_config_collecting(std::string_view yaml, std::string_view source_name) {
  auto root = load_yaml(yaml, source_name);
  if (!root) {
    ConfigParse out;
    out.errors.push_back(std::move(root.error()));
    return out;
  }
  return Parser(source_name).parse(*root);
}

namespace {

Result<AgentConfig> fold(ConfigParse parse, std::string_view source, int code) {
  if (parse.ok()) return std::move(parse.config);
  return fail(Error{code, format_errors(parse.errors, source)});
}

}  // namespace

std::vector<catalogue::CatalogueEntry> catalogue_entries(const AgentConfig& config) {
  std::vector<catalogue::CatalogueEntry> entries;
  entries.reserve(config.credentials.size());
  for (const CredentialConfig& credential : config.credentials) {
    entries.push_back(catalogue::CatalogueEntry{
        .pattern = credential.pattern, .credential_class = credential.credential_class, .owner = credential.owner});
  }
  return entries;
}

ConfigParse load_agent_config_collecting(const std::string& path) {
  auto content = read_text_file(path);
  if (!content) {
    ConfigParse out;
    out.errors.push_back(ConfigError{path, 0, 0, "", content.error().message});
    return out;
  }
  return parse_agent_config_collecting(*content, path);
}

Result<AgentConfig> parse_agent_config(std::string_view yaml, std::string_view source_name) {
  return fold(parse_agent_config_collecting(yaml, source_name), source_name, EINVAL);
}

Result<AgentConfig> load_agent_config(const std::string& path) {
  auto content = read_text_file(path);
  if (!content) return fail(Error{content.error().code, path + ": " + content.error().message});
  return fold(parse_agent_config_collecting(*content, path), path, EINVAL);
}

}  // namespace nhiguard::config
