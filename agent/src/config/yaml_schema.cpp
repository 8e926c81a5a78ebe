#include "config/yaml_schema.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "common/filesystem.h"
#include "config/duration.h"

namespace nhiguard::config {

std::string ConfigError::to_string() const {
  std::string out = source;
  if (line > 0) out += fmt::format(":{}:{}", line, column);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

std::string format_errors(const std::vector<ConfigError>& errors, std::string_view source) {
  if (errors.size() == 1) return errors.front().to_string();
  std::string message = fmt::format("{} errors in {}:", errors.size(), source);
  for (const ConfigError& e : errors) message += "\n  " + e.to_string();
  return message;
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return fmt::format("'{}'", node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string join_field(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

bool has_dotdot_component(std::string_view path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (path.substr(start, end - start) == "..") return true;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return false;
}

Result<std::string> read_text_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("cannot read"));
  return read_to_end(fd, "cannot read");
}

std::expected<YAML::Node, ConfigError> load_yaml(std::string_view text, std::string_view source) {
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return std::unexpected(ConfigError{std::string(source), e.mark.line >= 0 ? e.mark.line + 1 : 0,
                                       e.mark.column >= 0 ? e.mark.column + 1 : 0, "", "invalid YAML: " + e.msg});
  } catch (const YAML::Exception& e) {
    return std::unexpected(ConfigError{std::string(source), 0, 0, "", std::string("invalid YAML: ") + e.what()});
  }
}

void YamlSchemaReader::error(const YAML::Mark& mark, std::string field, std::string message) {
  // yaml-cpp marks are 0-based and -1 when the node has no position.
  errors_.push_back(ConfigError{source_, mark.line >= 0 ? mark.line + 1 : 0, mark.column >= 0 ? mark.column + 1 : 0,
                                std::move(field), std::move(message)});
}

void YamlSchemaReader::error(const YAML::Node& at, std::string field, std::string message) {
  const bool use_key = (!at.IsDefined() || at.IsNull() || at.Mark().line < 0) && key_mark_.line >= 0;
  error(use_key ? key_mark_ : at.Mark(), std::move(field), std::move(message));
}

void YamlSchemaReader::for_each_key(const YAML::Node& map, std::string_view parent,
                                    std::span<const std::string_view> allowed, const KeyHandler& handle) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies, not references: yaml-cpp's iterator hands out a temporary pair.
    const YAML::Node key_node = it->first;
    const YAML::Node value = it->second;
    if (!key_node.IsScalar()) {
      error(key_node, std::string(parent), fmt::format("keys must be plain names, got {}", describe(key_node)));
      continue;
    }
    const std::string key = key_node.Scalar();
    const std::string field = join_field(parent, key);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string message = "unknown key";
      std::size_t best = 3;
      for (const std::string_view candidate : allowed) {
        const std::size_t distance = edit_distance(key, candidate);
        if (distance < best) {
          best = distance;
          message = fmt::format("unknown key (did you mean '{}'?)", candidate);
        }
      }
      error(key_node, field, message);
      continue;
    }
    if (!seen.insert(key).second) {
      error(key_node, field, "duplicate key");
      continue;
    }
    const YAML::Mark outer = std::exchange(key_mark_, key_node.Mark());
    handle(key, value, field);
    key_mark_ = outer;
  }
}

bool YamlSchemaReader::expect_map(const YAML::Node& node, const std::string& field) {
  if (node.IsMap()) return true;
  error(node, field, fmt::format("expected a mapping, got {}", describe(node)));
  return false;
}

bool YamlSchemaReader::expect_sequence(const YAML::Node& node, const std::string& field, std::string_view what) {
  if (node.IsSequence()) return true;
  error(node, field, fmt::format("expected {}, got {}", what, describe(node)));
  return false;
}

std::optional<std::string> YamlSchemaReader::string_value(const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) {
    error(node, field, fmt::format("expected a string, got {}", describe(node)));
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<std::string> YamlSchemaReader::name_value(const YAML::Node& node, const std::string& field) {
  auto text = string_value(node, field);
  if (text && text->empty()) {
    error(node, field, "must not be empty");
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> YamlSchemaReader::absolute_path(const YAML::Node& node, const std::string& field) {
  auto path = string_value(node, field);
  if (!path) return std::nullopt;
  if (path->empty() || path->front() != '/') {
    error(node, field, fmt::format("expected an absolute path, got '{}'", *path));
    return std::nullopt;
  }
  while (path->size() > 1 && path->back() == '/') path->pop_back();
  return path;
}

std::optional<std::string> YamlSchemaReader::credential_pattern(const YAML::Node& node, const std::string& field) {
  auto text = string_value(node, field);
  if (!text) return std::nullopt;
  if (text->empty() || (text->front() != '/' && !text->starts_with("~/"))) {
    error(node, field, fmt::format("expected an absolute path or one starting with ~/, got '{}'", *text));
    return std::nullopt;
  }
  if (has_dotdot_component(*text)) {
    error(node, field, "must not contain '..'");
    return std::nullopt;
  }
  return text;
}

std::optional<bool> YamlSchemaReader::bool_value(const YAML::Node& node, const std::string& field) {
  bool value = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, value)) {
    error(node, field, fmt::format("expected true or false, got {}", describe(node)));
    return std::nullopt;
  }
  return value;
}

std::optional<uint64_t> YamlSchemaReader::count_value(const YAML::Node& node, const std::string& field) {
  const bool digits_only = node.IsScalar() && !node.Scalar().empty() && node.Scalar().size() <= 9 &&
                           node.Scalar().find_first_not_of("0123456789") == std::string::npos;
  if (!digits_only) {
    error(node, field, fmt::format("expected a whole number, got {}", describe(node)));
    return std::nullopt;
  }
  return std::stoull(node.Scalar());
}

std::optional<std::chrono::milliseconds> YamlSchemaReader::duration_value(const YAML::Node& node,
                                                                          const std::string& field) {
  if (!node.IsScalar()) {
    error(node, field, fmt::format("expected a duration (e.g. 30s, 5m, 1h), got {}", describe(node)));
    return std::nullopt;
  }
  auto parsed = parse_duration(node.Scalar());
  if (!parsed) {
    error(node, field, parsed.error().message);
    return std::nullopt;
  }
  return *parsed;
}

std::optional<std::string> YamlSchemaReader::choice_value(const YAML::Node& node, const std::string& field,
                                                          std::span<const std::string_view> choices) {
  auto text = string_value(node, field);
  if (!text) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *text) != choices.end()) return text;
  error(node, field, fmt::format("unknown value '{}' (one of: {})", *text, fmt::join(choices, ", ")));
  return std::nullopt;
}

std::vector<ConfigError> YamlSchemaReader::take_errors() {
  std::vector<ConfigError> out = std::move(errors_);
  errors_.clear();
  std::stable_sort(out.begin(), out.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return out;
}

}  // namespace nhiguard::config
