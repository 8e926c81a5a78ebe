// YamlSchemaReader: the shared machinery of nhiguard's YAML file parsers (agent.yaml, policy files).
//
// A parser walks its document with a fixed schema and never stops at the first problem: every
// unknown key (with a "did you mean" for near misses), duplicate key, wrong type and bad value is
// collected as a ConfigError "file:line:column: field.path: message" (1-based line and column), so
// an operator fixes a file in one pass. Parsers derive from YamlSchemaReader (or own one) and use
// its typed readers, which report and return nullopt on a bad value.
//
// load_yaml() turns text into a document, folding invalid YAML syntax into exactly one error.
//
// Thread-safety: a YamlSchemaReader is used by one parse at a time; the free functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/result.h"

namespace nhiguard::config {

// One problem in a config or policy file. line and column are 1-based; 0 when unknown (e.g. an
// unreadable file).
struct ConfigError {
  std::string source;
  int line = 0;
  int column = 0;
  std::string field;  // "collector.address", "credentials[2].class"; "" for the whole document
  std::string message;

  // "source:line:column: field: message" (parts that are unknown are left out).
  std::string to_string() const;
};

// "N errors in SOURCE:" followed by one indented line per error (or the single error alone).
std::string format_errors(const std::vector<ConfigError>& errors, std::string_view source);

// "null", "'text'", "a list", "a mapping": how a node is named in messages.
std::string describe(const YAML::Node& node);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

// "parent.key", or "key" at the top level.
std::string join_field(std::string_view parent, std::string_view key);

// True when a '/'-separated component of `path` is exactly "..".
bool has_dotdot_component(std::string_view path);

// The whole file, with errno kept in the error (std::ifstream would lose it).
Result<std::string> read_text_file(const std::string& path);

// Parses YAML text; a syntax error becomes one ConfigError with its position.
std::expected<YAML::Node, ConfigError> load_yaml(std::string_view text, std::string_view source);

class YamlSchemaReader {
 public:
  using KeyHandler = std::function<void(const std::string& key, const YAML::Node& value, const std::string& field)>;

  explicit YamlSchemaReader(std::string_view source) : source_(source) {}

  void error(const YAML::Mark& mark, std::string field, std::string message);
  // At a node; an empty value ("mode:") is a null node whose mark points past it, so the key being
  // parsed is reported instead.
  void error(const YAML::Node& at, std::string field, std::string message);

  // Calls `handle` for every allowed key of a mapping, in document order; reports unknown,
  // duplicate and non-scalar keys. While `handle` runs, errors at null values point at its key.
  void for_each_key(const YAML::Node& map, std::string_view parent, std::span<const std::string_view> allowed,
                    const KeyHandler& handle);

  bool expect_map(const YAML::Node& node, const std::string& field);
  // A sequence (true), or an error naming what was expected (`what`, e.g. "a list of rules").
  bool expect_sequence(const YAML::Node& node, const std::string& field, std::string_view what);
  std::optional<std::string> string_value(const YAML::Node& node, const std::string& field);
  // A non-empty string.
  std::optional<std::string> name_value(const YAML::Node& node, const std::string& field);
  // An absolute path, trailing slashes removed.
  std::optional<std::string> absolute_path(const YAML::Node& node, const std::string& field);
  // A credential path or glob: absolute or starting with "~/" (every home), without a ".." component.
  std::optional<std::string> credential_pattern(const YAML::Node& node, const std::string& field);
  std::optional<bool> bool_value(const YAML::Node& node, const std::string& field);
  // Digits only, at most 9 of them.
  std::optional<uint64_t> count_value(const YAML::Node& node, const std::string& field);
  std::optional<std::chrono::milliseconds> duration_value(const YAML::Node& node, const std::string& field);
  // One of `choices`, exactly; the message lists them.
  std::optional<std::string> choice_value(const YAML::Node& node, const std::string& field,
                                          std::span<const std::string_view> choices);

  // The errors so far, sorted by position (stable for equal positions); leaves none behind.
  std::vector<ConfigError> take_errors();
  bool has_errors() const { return !errors_.empty(); }
  std::string_view source() const { return source_; }
  // For parsers that read several files with one reader (errors keep the file they came from).
  void set_source(std::string_view source) { source_ = source; }

 private:
  std::string source_;
  std::vector<ConfigError> errors_;
  YAML::Mark key_mark_ = YAML::Mark::null_mark();  // the key whose value is being parsed
};

}  // namespace nhiguard::config
