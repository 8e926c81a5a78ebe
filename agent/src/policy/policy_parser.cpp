#include "policy/policy.h"

#include <dirent.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/enum_names.h"

namespace nhiguard::policy {
namespace {

using catalogue::CredentialClass;
using config::ConfigError;

constexpr auto kConfidences = enum_names<Confidence>({{Confidence::low, "low"},
                                                      {Confidence::medium, "medium"},
                                                      {Confidence::high, "high"},
                                                      {Confidence::certain, "certain"}});
constexpr auto kImpacts = enum_names<Impact>(
    {{Impact::low, "low"}, {Impact::medium, "medium"}, {Impact::high, "high"}, {Impact::critical, "critical"}});
constexpr auto kModes = enum_names<RuleMode>({{RuleMode::observe, "observe"},
                                              {RuleMode::alert, "alert"},
                                              {RuleMode::hold, "hold"},
                                              {RuleMode::enforce, "enforce"}});
constexpr auto kTriggers = enum_names<TriggerKind>({{TriggerKind::unexpected_reader, "unexpected_reader"},
                                                    {TriggerKind::unexpected_egress, "unexpected_egress"},
                                                    {TriggerKind::canary_read, "canary_read"},
                                                    {TriggerKind::credential_memory_access, "credential_memory_access"},
                                                    {TriggerKind::block_device_read, "block_device_read"}});

// fnmatch(3) takes any string, but an unclosed '[' or a trailing '\' silently matches literally,
// which is never what the author meant: report them.
std::optional<std::string> glob_problem(std::string_view pattern) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\') {
      if (i + 1 == pattern.size()) return "ends with a lone '\\'";
      ++i;
    } else if (pattern[i] == '[') {
      size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;  // a leading ']' is a member
      while (j < pattern.size() && pattern[j] != ']') ++j;
      if (j >= pattern.size()) return fmt::format("'[' at offset {} is never closed", i);
      i = j;
    }
  }
  return std::nullopt;
}
constexpr std::array<std::string_view, 10> kTopLevelKeys = {
    "version",     "defaults", "rate_limit", "identity_classes",    "identities", "protected",
    "credentials", "canaries", "rules",      "block_device_readers"};

class PolicyParser : public config::YamlSchemaReader {
 public:
  PolicyParser() : YamlSchemaReader("") {}

  void parse_document(const PolicySource& source) {
    source_name_ = source.name;
    set_source(source.name);
    auto root = config::load_yaml(source.text, source.name);
    policy_.sources.push_back(source.name);
    if (!root) {
      errors_.push_back(std::move(root.error()));
      return;
    }
    if (root->IsNull()) {
      error(*root, "", "empty policy file (it needs at least `version: 1`)");
      flush();
      return;
    }
    if (!root->IsMap()) {
      error(*root, "", fmt::format("expected a mapping at the top level, got {}", config::describe(*root)));
      flush();
      return;
    }
    bool version_seen = false;
    for_each_key(
        *root, "", kTopLevelKeys, [&](const std::string& key, const YAML::Node& value, const std::string& field) {
          if (key == "version") {
            version_seen = true;
            if (auto v = count_value(value, field); v && *v != 1) {
              error(value, field, fmt::format("unsupported policy version {} (this agent reads version 1)", *v));
            }
          } else if (key == "defaults") {
            parse_defaults(value, field);
          } else if (key == "rate_limit") {
            parse_rate_limit(value, field);
          } else if (key == "identity_classes") {
            each_item(value, field, "a list of identity classes",
                      [&](const YAML::Node& item, const std::string& f) { parse_identity_class(item, f); });
          } else if (key == "identities") {
            each_item(value, field, "a list of identities",
                      [&](const YAML::Node& item, const std::string& f) { parse_identity(item, f); });
          } else if (key == "protected") {
            each_item(value, field, "a list of identity selectors", [&](const YAML::Node& item, const std::string& f) {
              if (auto selector = parse_selector(item, f)) policy_.protected_identities.push_back(std::move(*selector));
            });
          } else if (key == "block_device_readers") {
            if (block_device_readers_origin_) {
              error(value, field,
                    fmt::format("block_device_readers is already set at {}: one file sets it",
                                block_device_readers_origin_->to_string()));
              return;
            }
            block_device_readers_origin_ = origin_of(value);
            policy_.block_device_readers.emplace();
            each_item(value, field, "a list of identity selectors", [&](const YAML::Node& item, const std::string& f) {
              if (auto selector = parse_selector(item, f))
                policy_.block_device_readers->push_back(std::move(*selector));
            });
          } else if (key == "credentials") {
            each_item(value, field, "a list of credentials",
                      [&](const YAML::Node& item, const std::string& f) { parse_credential(item, f); });
          } else if (key == "canaries") {
            each_item(value, field, "a list of canaries",
                      [&](const YAML::Node& item, const std::string& f) { parse_canary(item, f); });
          } else if (key == "rules") {
            each_item(value, field, "a list of rules",
                      [&](const YAML::Node& item, const std::string& f) { parse_rule(item, f); });
          }
        });
    if (!version_seen) error(root->Mark(), "version", "missing: every policy file starts with `version: 1`");
    flush();
  }

  PolicyParse finish() {
    // References between files are checked once everything is read.
    for (const auto& ref : class_refs_) {
      if (!policy_.find_class(ref.name)) {
        std::vector<std::string_view> known;
        for (const auto& c : policy_.identity_classes) known.push_back(c.name);
        errors_.push_back(
            ConfigError{ref.origin.source, ref.origin.line, ref.origin.column, ref.field,
                        fmt::format("unknown identity class '{}' (defined: {})", ref.name,
                                    known.empty() ? std::string("none") : fmt::format("{}", fmt::join(known, ", ")))});
      }
    }
    auto file_index = [&](const std::string& source) {
      return std::find(policy_.sources.begin(), policy_.sources.end(), source) - policy_.sources.begin();
    };
    std::stable_sort(errors_.begin(), errors_.end(), [&](const ConfigError& a, const ConfigError& b) {
      return std::tuple(file_index(a.source), a.line, a.column) < std::tuple(file_index(b.source), b.line, b.column);
    });
    return PolicyParse{std::move(policy_), std::move(errors_)};
  }

 private:
  struct ClassRef {
    std::string name;
    std::string field;
    Origin origin;
  };

  void flush() {
    for (auto& e : take_errors()) errors_.push_back(std::move(e));
  }

  Origin origin_of(const YAML::Node& node) const {
    const auto mark = node.Mark();
    return Origin{source_name_, mark.line >= 0 ? mark.line + 1 : 0, mark.column >= 0 ? mark.column + 1 : 0};
  }

  template <typename F>
  void each_item(const YAML::Node& list, const std::string& field, std::string_view what, F&& parse_item) {
    if (list.IsNull()) return;
    if (!expect_sequence(list, field, what)) return;
    for (size_t i = 0; i < list.size(); ++i) parse_item(list[i], fmt::format("{}[{}]", field, i));
  }

  // A list of strings, or one string as a list of one.
  std::vector<std::pair<std::string, YAML::Node>> string_list(const YAML::Node& node, const std::string& field) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    if (node.IsScalar()) {
      out.emplace_back(node.Scalar(), node);
      return out;
    }
    if (!expect_sequence(node, field, "a string or a list of strings")) return out;
    for (size_t i = 0; i < node.size(); ++i) {
      if (auto text = string_value(node[i], fmt::format("{}[{}]", field, i))) out.emplace_back(*text, node[i]);
    }
    return out;
  }

  std::vector<containment::EgressDestination> egress_list(const YAML::Node& node, const std::string& field) {
    std::vector<containment::EgressDestination> out;
    if (node.IsNull()) return out;
    if (!expect_sequence(node, field, "a list of destinations (CIDR[:port])")) return out;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string item_field = fmt::format("{}[{}]", field, i);
      auto text = string_value(node[i], item_field);
      if (!text) continue;
      auto parsed = containment::parse_egress_destination(*text);
      if (!parsed) {
        error(node[i], item_field, parsed.error().message);
        continue;
      }
      out.push_back(*parsed);
    }
    return out;
  }

  std::optional<std::string> pattern_value(const YAML::Node& node, const std::string& field) {
    auto text = name_value(node, field);
    if (!text) return std::nullopt;
    if (auto problem = glob_problem(*text)) {
      error(node, field, fmt::format("invalid pattern '{}': {}", *text, *problem));
      return std::nullopt;
    }
    return text;
  }

  std::optional<CredentialClass> class_value(const YAML::Node& node, const std::string& field) {
    auto text = string_value(node, field);
    if (!text) return std::nullopt;
    auto parsed = catalogue::parse_credential_class(*text);
    if (!parsed) {
      error(node, field,
            fmt::format("unknown credential class '{}' (one of: {})", *text, catalogue::credential_class_names()));
    }
    return parsed;
  }

  std::optional<std::chrono::milliseconds> ttl_value(const YAML::Node& node, const std::string& field) {
    auto ttl = duration_value(node, field);
    if (!ttl) return std::nullopt;
    if (*ttl <= std::chrono::milliseconds::zero() || *ttl > kMaxTtl) {
      error(node, field, "a TTL must be more than 0 and at most 24h");
      return std::nullopt;
    }
    return ttl;
  }

  template <typename E, size_t N>
  std::optional<E> enum_value(const EnumNames<E, N>& table, const YAML::Node& node, const std::string& field,
                              std::string_view what) {
    auto text = string_value(node, field);
    if (!text) return std::nullopt;
    auto parsed = table.parse(*text);
    if (!parsed) error(node, field, fmt::format("unknown {} '{}' (one of: {})", what, *text, table.list()));
    return parsed;
  }

  std::optional<IdentitySelector> parse_selector(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return std::nullopt;
    static constexpr auto keys = [] {
      std::array<std::string_view, kSelectorPatternKeys.size() + 1> names{};
      for (size_t i = 0; i < kSelectorPatternKeys.size(); ++i) names[i] = kSelectorPatternKeys[i].name;
      names.back() = "uid";
      return names;
    }();
    IdentitySelector selector;
    selector.origin = origin_of(node);
    bool valid = true;
    int set = 0;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      ++set;
      if (key == "uid") {
        auto uid = count_value(value, f);
        if (!uid || *uid > UINT32_MAX) {
          if (uid) error(value, f, "a uid is at most 4294967295");
          valid = false;
          return;
        }
        selector.uid = static_cast<uint32_t>(*uid);
        return;
      }
      auto pattern = pattern_value(value, f);
      if (!pattern) {
        valid = false;
        return;
      }
      if ((key == "exe" || key == "cgroup") && pattern->front() != '/' && pattern->front() != '*') {
        error(value, f,
              fmt::format("expected an absolute path (or a pattern starting with / or *), got '{}'", *pattern));
        valid = false;
        return;
      }
      if (key == "uri" && !pattern->starts_with("spiffe://") && pattern->front() != '*') {
        error(value, f, fmt::format("expected a spiffe:// URI (or a pattern), got '{}'", *pattern));
        valid = false;
        return;
      }
      if ((key == "unit" || key == "user_unit") && pattern->ends_with(".slice")) {
        error(value, f,
              fmt::format("{} names a service or scope, not the slice '{}' (select a slice with "
                          "cgroup: /path/of/{})",
                          key, *pattern, *pattern));
        valid = false;
        return;
      }
      for (const auto& k : kSelectorPatternKeys) {
        if (k.name == key) selector.*k.member = *pattern;
      }
    });
    if (set == 0 && node.size() == 0) {
      error(node, field, fmt::format("an identity selector needs at least one of {}", fmt::join(keys, ", ")));
      return std::nullopt;
    }
    if (valid && selector.user_unit && !selector.uid) {
      // A user unit's name is the user's own choice: without the owner, user 1000 could name a
      // unit like user 2000's and be taken for it.
      error(node, field, "a user_unit selector needs uid (the user whose service manager runs the unit)");
      valid = false;
    }
    if (!valid || set == 0) return std::nullopt;
    return selector;
  }

  void parse_defaults(const YAML::Node& node, const std::string& field) {
    if (node.IsNull() || !expect_map(node, field)) return;
    if (!once(defaults_origin_, node, field)) return;
    static constexpr std::array<std::string_view, 3> keys = {"ttl", "impact", "egress"};
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "ttl") {
        if (auto ttl = ttl_value(value, f)) policy_.default_ttl = *ttl;
      } else if (key == "impact") {
        if (auto impact = enum_value(kImpacts, value, f, "impact")) policy_.default_impact = *impact;
      } else if (key == "egress") {
        policy_.default_egress = egress_list(value, f);
      }
    });
  }

  void parse_rate_limit(const YAML::Node& node, const std::string& field) {
    if (node.IsNull() || !expect_map(node, field)) return;
    if (!once(rate_limit_origin_, node, field)) return;
    static constexpr std::array<std::string_view, 2> keys = {"max_actions", "window"};
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "max_actions") {
        if (auto n = count_value(value, f)) {
          if (*n > 100000) {
            error(value, f, "at most 100000");
          } else {
            policy_.rate_limit.max_actions = static_cast<uint32_t>(*n);
          }
        }
      } else if (key == "window") {
        if (auto window = duration_value(value, f)) {
          if (*window < std::chrono::seconds(1) || *window > std::chrono::hours(24 * 7)) {
            error(value, f, "must be between 1s and 7d");
          } else {
            policy_.rate_limit.window = *window;
          }
        }
      }
    });
  }

  // A section that may appear in one file only.
  bool once(std::optional<Origin>& first, const YAML::Node& node, const std::string& field) {
    if (first) {
      error(node, field,
            fmt::format("already set at {} (defaults and rate_limit belong to one file)", first->to_string()));
      return false;
    }
    first = origin_of(node);
    return true;
  }

  void parse_identity_class(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return;
    static constexpr std::array<std::string_view, 4> keys = {"name", "impact", "protected", "shared"};
    IdentityClass c;
    c.origin = origin_of(node);
    bool valid = true;
    bool impact_set = false;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "name") {
        auto name = name_value(value, f);
        if (!name) {
          valid = false;
        } else if (const auto* existing = policy_.find_class(*name)) {
          error(value, f,
                fmt::format("identity class '{}' is already defined at {}", *name, existing->origin.to_string()));
          valid = false;
        } else {
          c.name = *name;
        }
      } else if (key == "impact") {
        auto impact = enum_value(kImpacts, value, f, "impact");
        impact_set = impact.has_value();
        if (impact) c.impact = *impact;
        valid &= impact_set;
      } else if (key == "protected") {
        auto v = bool_value(value, f);
        valid &= v.has_value();
        c.is_protected = v.value_or(false);
      } else if (key == "shared") {
        auto v = bool_value(value, f);
        valid &= v.has_value();
        c.shared = v.value_or(false);
      }
    });
    if (c.name.empty() && valid) {
      error(node, field, "an identity class needs a name");
      valid = false;
    }
    if (!impact_set && valid) {
      error(node, field, fmt::format("identity class '{}' needs an impact ({})", c.name, kImpacts.list()));
      valid = false;
    }
    if (valid) policy_.identity_classes.push_back(std::move(c));
  }

  void parse_identity(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return;
    static constexpr std::array<std::string_view, 3> keys = {"match", "class", "egress"};
    IdentityPolicy identity;
    identity.origin = origin_of(node);
    bool valid = true;
    bool matched = false;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "match") {
        auto selector = parse_selector(value, f);
        matched = selector.has_value();
        valid &= matched;
        if (selector) identity.match = std::move(*selector);
      } else if (key == "class") {
        auto name = name_value(value, f);
        valid &= name.has_value();
        if (name) {
          identity.class_name = *name;
          class_refs_.push_back({*name, f, origin_of(value)});
        }
      } else if (key == "egress") {
        const size_t before = errors_count();
        identity.egress = egress_list(value, f);
        valid &= errors_count() == before;
      }
    });
    if (!matched && valid) {
      error(node, field,
            "an identity needs match: (an identity selector: unit, user_unit, session, container, pod, cgroup, exe, "
            "uri or uid)");
      valid = false;
    }
    if (valid) policy_.identities.push_back(std::move(identity));
  }

  size_t errors_count() {
    flush();
    return errors_.size();
  }

  void parse_credential(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return;
    static constexpr std::array<std::string_view, 6> keys = {"path", "glob", "catalogue", "class", "owner", "readers"};
    CredentialPolicy credential;
    credential.origin = origin_of(node);
    bool valid = true;
    int selectors = 0;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "path" || key == "glob") {
        ++selectors;
        auto text = credential_pattern(value, f);
        if (text && key == "glob") {
          if (auto problem = glob_problem(*text)) {
            error(value, f, fmt::format("invalid glob '{}': {}", *text, *problem));
            text.reset();
          }
        }
        if (!text) {
          valid = false;
          return;
        }
        credential.selector.kind = key == "glob" ? CredentialSelector::Kind::glob : CredentialSelector::Kind::path;
        credential.selector.pattern = *text;
      } else if (key == "catalogue") {
        ++selectors;
        auto text = string_value(value, f);
        if (!text) {
          valid = false;
          return;
        }
        credential.selector.kind = CredentialSelector::Kind::catalogue;
        credential.selector.pattern = *text;
        if (*text != "any") {
          auto parsed = catalogue::parse_credential_class(*text);
          if (!parsed) {
            error(value, f,
                  fmt::format("unknown credential class '{}' (any, or one of: {})", *text,
                              catalogue::credential_class_names()));
            valid = false;
            return;
          }
          credential.selector.catalogue_class = *parsed;
        }
      } else if (key == "class") {
        auto parsed = class_value(value, f);
        valid &= parsed.has_value();
        if (parsed) credential.credential_class = *parsed;
      } else if (key == "owner") {
        auto owner = name_value(value, f);
        valid &= owner.has_value();
        credential.owner = owner;
      } else if (key == "readers") {
        if (value.IsNull()) return;
        if (!expect_sequence(value, f, "a list of identity selectors")) {
          valid = false;
          return;
        }
        for (size_t i = 0; i < value.size(); ++i) {
          auto selector = parse_selector(value[i], fmt::format("{}[{}]", f, i));
          if (selector) {
            credential.readers.push_back(std::move(*selector));
          } else {
            valid = false;
          }
        }
      }
    });
    if (selectors != 1 && valid) {
      error(node, field,
            selectors == 0 ? "needs one of path:, glob: or catalogue:"
                           : "has more than one of path:, glob:, catalogue: (use exactly one)");
      valid = false;
    }
    if (valid) policy_.credentials.push_back(std::move(credential));
  }

  void parse_canary(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return;
    static constexpr std::array<std::string_view, 3> keys = {"path", "class", "plant"};
    CanaryPolicy canary;
    canary.origin = origin_of(node);
    bool valid = true;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "path") {
        auto path = absolute_path(value, f);
        if (path && config::has_dotdot_component(*path)) {
          error(value, f, "must not contain '..'");
          path.reset();
        }
        valid &= path.has_value();
        if (path) canary.path = *path;
      } else if (key == "class") {
        auto parsed = class_value(value, f);
        valid &= parsed.has_value();
        if (parsed) canary.credential_class = *parsed;
      } else if (key == "plant") {
        auto v = bool_value(value, f);
        valid &= v.has_value();
        canary.plant = v.value_or(false);
      }
    });
    if (canary.path.empty() && valid) {
      error(node, field, "a canary needs a path: (an absolute file path)");
      valid = false;
    }
    if (valid) policy_.canaries.push_back(std::move(canary));
  }

  void parse_rule(const YAML::Node& node, const std::string& field) {
    if (!expect_map(node, field)) return;
    static constexpr std::array<std::string_view, 8> keys = {"name",    "trigger",  "confidence", "mode",
                                                             "dry_run", "response", "ttl",        "when"};
    Rule rule;
    rule.origin = origin_of(node);
    bool valid = true;
    bool trigger_set = false;
    bool confidence_set = false;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      if (key == "name") {
        auto name = name_value(value, f);
        if (name) {
          if (auto seen = rule_names_.find(*name); seen != rule_names_.end()) {
            error(value, f, fmt::format("rule '{}' is already defined at {}", *name, seen->second.to_string()));
            name.reset();
          } else {
            rule_names_.emplace(*name, origin_of(value));
            rule.name = *name;
          }
        }
        valid &= name.has_value();
      } else if (key == "trigger") {
        auto trigger = enum_value(kTriggers, value, f, "trigger");
        trigger_set = trigger.has_value();
        valid &= trigger_set;
        if (trigger) rule.trigger = *trigger;
      } else if (key == "confidence") {
        auto confidence = enum_value(kConfidences, value, f, "confidence");
        confidence_set = confidence.has_value();
        valid &= confidence_set;
        if (confidence) rule.confidence = *confidence;
      } else if (key == "mode") {
        auto mode = enum_value(kModes, value, f, "mode");
        valid &= mode.has_value();
        if (mode) rule.mode = *mode;
      } else if (key == "dry_run") {
        auto v = bool_value(value, f);
        valid &= v.has_value();
        rule.dry_run = v.value_or(false);
      } else if (key == "ttl") {
        auto ttl = ttl_value(value, f);
        valid &= ttl.has_value();
        rule.ttl = ttl;
      } else if (key == "response") {
        for (const auto& [text, item] : string_list(value, f)) {
          auto kind = containment::parse_action_kind(text);
          if (!kind) {
            error(item, f,
                  fmt::format("unknown action '{}' (one of: block_egress, deny_credential, freeze, "
                              "kill_process, kill_session)",
                              text));
            valid = false;
            continue;
          }
          if (std::find(rule.response.begin(), rule.response.end(), *kind) == rule.response.end()) {
            rule.response.push_back(*kind);
          }
        }
        if (value.IsSequence() && value.size() == 0) {
          error(value, f, "an empty response: leave the key out for the default (block_egress)");
          valid = false;
        }
      } else if (key == "when") {
        valid &= parse_when(value, f, rule);
      }
    });
    if (rule.name.empty() && valid) {
      error(node, field, "a rule needs a name");
      valid = false;
    }
    if (!trigger_set && valid) {
      error(node, field, fmt::format("rule '{}' needs a trigger ({})", rule.name, kTriggers.list()));
      valid = false;
    }
    if (!confidence_set) {
      // Canary reads cannot be false positives; the other triggers depend on how complete the
      // allow-lists are.
      // A process reaching into a credential holder's memory has no innocent reading outside a
      // debugger session, which a policy names by its own rule.
      rule.confidence = rule.trigger == TriggerKind::canary_read                ? Confidence::certain
                        : rule.trigger == TriggerKind::unexpected_egress        ? Confidence::high
                        : rule.trigger == TriggerKind::credential_memory_access ? Confidence::high
                                                                                : Confidence::medium;
    }
    std::sort(rule.response.begin(), rule.response.end());
    if (rule.trigger == TriggerKind::unexpected_egress &&
        std::find(rule.response.begin(), rule.response.end(), containment::ActionKind::deny_credential) !=
            rule.response.end()) {
      error(node, field, "deny_credential cannot answer unexpected_egress: the credential was already read");
      valid = false;
    }
    if (rule.trigger == TriggerKind::block_device_read &&
        std::find(rule.response.begin(), rule.response.end(), containment::ActionKind::deny_credential) !=
            rule.response.end()) {
      error(node, field, "deny_credential cannot answer block_device_read: a raw read names no credential");
      valid = false;
    }
    if (rule.trigger == TriggerKind::block_device_read && !rule.credential_classes.empty()) {
      error(node, field, "block_device_read concerns no credential: when.credential_class cannot match it");
      valid = false;
    }
    if (valid) policy_.rules.push_back(std::move(rule));
  }

  bool parse_when(const YAML::Node& node, const std::string& field, Rule& rule) {
    if (!expect_map(node, field)) return false;
    static constexpr std::array<std::string_view, 2> keys = {"credential_class", "identity_class"};
    bool valid = true;
    for_each_key(node, field, keys, [&](const std::string& key, const YAML::Node& value, const std::string& f) {
      for (const auto& [text, item] : string_list(value, f)) {
        if (key == "credential_class") {
          auto parsed = class_value(item, f);
          valid &= parsed.has_value();
          if (parsed) rule.credential_classes.push_back(*parsed);
        } else {
          rule.identity_classes.push_back(text);
          class_refs_.push_back({text, f, origin_of(item)});
        }
      }
    });
    return valid;
  }

  Policy policy_;
  std::vector<ConfigError> errors_;
  std::string source_name_;
  std::optional<Origin> defaults_origin_;
  std::optional<Origin> rate_limit_origin_;
  std::optional<Origin> block_device_readers_origin_;
  std::map<std::string, Origin> rule_names_;
  std::vector<ClassRef> class_refs_;
};

}  // namespace

std::string_view to_string(Confidence value) {
  return kConfidences.name(value);
}
std::string_view to_string(Impact value) {
  return kImpacts.name(value);
}
std::string_view to_string(RuleMode value) {
  return kModes.name(value);
}
std::string_view to_string(TriggerKind value) {
  return kTriggers.name(value);
}
std::optional<Confidence> parse_confidence(std::string_view text) {
  return kConfidences.parse(text);
}
std::optional<Impact> parse_impact(std::string_view text) {
  return kImpacts.parse(text);
}
std::optional<RuleMode> parse_rule_mode(std::string_view text) {
  return kModes.parse(text);
}
std::optional<TriggerKind> parse_trigger(std::string_view text) {
  return kTriggers.parse(text);
}

std::vector<IdentitySelector> default_block_device_readers() {
  std::vector<IdentitySelector> readers;
  for (const char* exe :
       {"/usr/lib/systemd/systemd-udevd", "/usr/bin/udevadm", "/usr/sbin/blkid", "/usr/libexec/udisks2/udisksd",
        "/usr/sbin/lvm", "/usr/sbin/multipathd", "/usr/sbin/mdadm", "/usr/sbin/e2fsck", "/usr/sbin/fsck.*"}) {
    readers.push_back(IdentitySelector{.exe = exe, .origin = {.source = "built-in block_device_readers"}});
  }
  return readers;
}

PolicyParse parse_policy_documents(std::span<const PolicySource> sources) {
  PolicyParser parser;
  for (const auto& source : sources) parser.parse_document(source);
  return parser.finish();
}

PolicyParse load_policy_files(const std::vector<std::string>& paths) {
  std::vector<PolicySource> sources;
  std::vector<ConfigError> read_errors;
  for (const auto& path : paths) {
    auto text = config::read_text_file(path);
    if (!text) {
      read_errors.push_back(ConfigError{path, 0, 0, "", text.error().message});
      continue;
    }
    sources.push_back({path, std::move(*text)});
  }
  PolicyParse parse = parse_policy_documents(sources);
  parse.errors.insert(parse.errors.begin(), read_errors.begin(), read_errors.end());
  return parse;
}

PolicyParse load_policy_dir(const std::string& dir) {
  DIR* handle = opendir(dir.c_str());
  if (!handle) {
    PolicyParse out;
    out.errors.push_back(ConfigError{dir, 0, 0, "",
                                     Error::from_current_errno("cannot open the policy directory").message +
                                         " (create it, even empty, to run without a policy)"});
    return out;
  }
  std::vector<std::string> paths;
  while (const dirent* entry = readdir(handle)) {
    const std::string_view name = entry->d_name;
    if (name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml"))) continue;
    const std::string path = dir + "/" + std::string(name);
    struct stat st{};
    if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) paths.push_back(path);
  }
  closedir(handle);
  std::sort(paths.begin(), paths.end());
  return load_policy_files(paths);
}

}  // namespace nhiguard::policy
