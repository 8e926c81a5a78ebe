#include "policy/learned_set.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "catalogue/credential_catalogue.h"
#include "common/clock.h"

namespace nhiguard::policy {
namespace {

using nlohmann::json;

json selector_json(const IdentitySelector& s) {
  json out = json::object();
  for (const auto& k : kSelectorPatternKeys) {
    if (const auto& value = s.*k.member) out[std::string(k.name)] = *value;
  }
  if (s.uid) out["uid"] = *s.uid;
  return out;
}

Result<IdentitySelector> selector_from_json(const json& value, std::string_view where) {
  if (!value.is_object() || value.empty()) return fail(Error{EINVAL, fmt::format("{}: not a selector", where)});
  IdentitySelector s;
  for (const auto& [key, item] : value.items()) {
    if (key == "uid" && item.is_number_unsigned()) {
      s.uid = item.get<uint32_t>();
      continue;
    }
    if (!item.is_string()) return fail(Error{EINVAL, fmt::format("{}.{}: not a string", where, key)});
    const auto* k = std::find_if(kSelectorPatternKeys.begin(), kSelectorPatternKeys.end(),
                                 [&](const SelectorPatternKey& candidate) { return candidate.name == key; });
    if (k == kSelectorPatternKeys.end()) return fail(Error{EINVAL, fmt::format("{}: unknown key {}", where, key)});
    s.*k->member = item.get<std::string>();
  }
  return s;
}

void emit_selector(YAML::Emitter& out, const IdentitySelector& s) {
  out << YAML::BeginMap;
  for (const auto& k : kSelectorPatternKeys) {
    if (const auto& value = s.*k.member) out << YAML::Key << std::string(k.name) << YAML::Value << *value;
  }
  if (s.uid) out << YAML::Key << "uid" << YAML::Value << *s.uid;
  out << YAML::EndMap;
}

}  // namespace

IdentitySelector learned_selector(const IdentityFacts& identity) {
  IdentitySelector s;
  if (identity.kind == "k8s_pod" && !identity.pod_uid.empty()) {
    s.pod = catalogue::escape_glob(identity.pod_uid);
  } else if (identity.kind == "container" && !identity.container_id.empty()) {
    s.container = catalogue::escape_glob(identity.container_id);
  } else if (identity.kind == "systemd" && !identity.unit.empty()) {
    s.unit = catalogue::escape_glob(identity.unit);
  } else if (identity.kind == "user_session" && !identity.user_unit.empty() && identity.session_uid) {
    s.user_unit = catalogue::escape_glob(identity.user_unit);
    s.uid = *identity.session_uid;
  } else {
    if (!identity.exe.empty()) s.exe = catalogue::escape_glob(identity.exe);
    s.uid = identity.uid;
  }
  return s;
}

void LearnedSet::start(int64_t now_ns, int64_t until_ns) {
  std::lock_guard lock(mutex_);
  if (until_ns_ <= now_ns) since_ns_ = now_ns;
  until_ns_ = until_ns;
  dirty_ = true;
}

void LearnedSet::stop() {
  std::lock_guard lock(mutex_);
  until_ns_ = 0;
  dirty_ = true;
}

bool LearnedSet::active(int64_t now_ns) const {
  std::lock_guard lock(mutex_);
  return now_ns < until_ns_;
}

bool LearnedSet::record_read(int64_t now_ns, const CredentialFacts& credential, const IdentityFacts& identity) {
  std::lock_guard lock(mutex_);
  if (now_ns >= until_ns_ || credential.path.empty()) return false;
  ++observations_;
  auto selector = learned_selector(identity);
  auto found = credentials_.find(credential.path);
  if (found == credentials_.end()) {
    if (credentials_.size() >= kMaxCredentials) return ++dropped_, false;
    found = credentials_.emplace(credential.path, Credential{}).first;
  }
  auto& entry = found->second;
  entry.credential_class = credential.credential_class;
  const std::string key = selector.describe();
  if (!entry.readers.contains(key) && entry.readers.size() >= kMaxReadersPerCredential) return ++dropped_, false;
  const bool added = entry.readers.emplace(key, selector).second;
  dirty_ |= added;
  return added;
}

bool LearnedSet::record_egress(int64_t now_ns, const IdentityFacts& identity, const DestinationFacts& destination) {
  std::lock_guard lock(mutex_);
  if (now_ns >= until_ns_ || destination.text.empty()) return false;
  ++observations_;
  auto selector = learned_selector(identity);
  const std::string key = selector.describe();
  auto found = identities_.find(key);
  if (found == identities_.end()) {
    if (identities_.size() >= kMaxIdentities) return ++dropped_, false;
    found = identities_.emplace(key, Identity{selector, {}}).first;
  }
  auto& entry = found->second;
  if (!entry.destinations.contains(destination.text) && entry.destinations.size() >= kMaxDestinationsPerIdentity) {
    return ++dropped_, false;
  }
  const bool added = entry.destinations.insert(destination.text).second;
  dirty_ |= added;
  return added;
}

std::set<std::string> LearnedSet::readers_of(const CredentialFacts& credential) const {
  std::lock_guard lock(mutex_);
  std::set<std::string> readers;
  auto add = [&](const std::string& path) {
    if (auto it = credentials_.find(path); it != credentials_.end()) {
      for (const auto& [key, selector] : it->second.readers) readers.insert(key);
    }
  };
  add(credential.path);
  for (const auto& alias : credential.aliases) add(alias);
  return readers;
}

json LearnedSet::summary(int64_t now_ns) const {
  std::lock_guard lock(mutex_);
  return {
      {"learning", now_ns < until_ns_},
      {"since", since_ns_ > 0 ? json(format_rfc3339_ns(static_cast<uint64_t>(since_ns_))) : json(nullptr)},
      {"until", until_ns_ > 0 ? json(format_rfc3339_ns(static_cast<uint64_t>(until_ns_))) : json(nullptr)},
      {"credentials", credentials_.size()},
      {"identities", identities_.size()},
      {"observations", observations_},
      {"dropped", dropped_},
  };
}

json LearnedSet::to_json() const {
  std::lock_guard lock(mutex_);
  json credentials = json::array();
  for (const auto& [path, entry] : credentials_) {
    json readers = json::array();
    for (const auto& [key, selector] : entry.readers) readers.push_back(selector_json(selector));
    credentials.push_back(
        {{"path", path}, {"class", catalogue::to_string(entry.credential_class)}, {"readers", std::move(readers)}});
  }
  json identities = json::array();
  for (const auto& [key, entry] : identities_) {
    identities.push_back({{"match", selector_json(entry.selector)}, {"egress", entry.destinations}});
  }
  return {{"version", 1},
          {"since_ns", since_ns_},
          {"until_ns", until_ns_},
          {"observations", observations_},
          {"dropped", dropped_},
          {"credentials", std::move(credentials)},
          {"identities", std::move(identities)}};
}

Result<void> LearnedSet::load_json(const json& value) {
  try {
    if (!value.is_object() || value.value("version", 0) != 1) return fail(Error{EINVAL, "version: expected 1"});
    std::map<std::string, Credential> credentials;
    for (const auto& item : value.at("credentials")) {
      Credential entry;
      entry.credential_class = catalogue::parse_credential_class(item.at("class").get<std::string>())
                                   .value_or(catalogue::CredentialClass::custom);
      for (const auto& reader : item.at("readers")) {
        auto selector = selector_from_json(reader, "credentials[].readers[]");
        if (!selector) return fail(selector.error());
        entry.readers.emplace(selector->describe(), *selector);
      }
      credentials[item.at("path").get<std::string>()] = std::move(entry);
    }
    std::map<std::string, Identity> identities;
    for (const auto& item : value.at("identities")) {
      auto selector = selector_from_json(item.at("match"), "identities[].match");
      if (!selector) return fail(selector.error());
      Identity entry{*selector, item.at("egress").get<std::set<std::string>>()};
      identities[selector->describe()] = std::move(entry);
    }
    std::lock_guard lock(mutex_);
    since_ns_ = value.at("since_ns").get<int64_t>();
    until_ns_ = value.at("until_ns").get<int64_t>();
    observations_ = value.at("observations").get<uint64_t>();
    dropped_ = value.value("dropped", uint64_t{0});
    credentials_ = std::move(credentials);
    identities_ = std::move(identities);
    return {};
  } catch (const json::exception& e) {
    return fail(Error{EINVAL, std::string("learned set: ") + e.what()});
  }
}

std::string LearnedSet::suggest_yaml(std::string_view comment) const {
  std::lock_guard lock(mutex_);
  YAML::Emitter out;
  std::string header;
  size_t start = 0;
  while (start < comment.size()) {
    size_t end = comment.find('\n', start);
    if (end == std::string_view::npos) end = comment.size();
    header += fmt::format("# {}\n", comment.substr(start, end - start));
    start = end + 1;
  }
  out << YAML::BeginMap;
  out << YAML::Key << "version" << YAML::Value << 1;
  if (!credentials_.empty()) {
    out << YAML::Key << "credentials" << YAML::Value << YAML::BeginSeq;
    for (const auto& [path, entry] : credentials_) {
      out << YAML::BeginMap;
      out << YAML::Key << "path" << YAML::Value << path;
      out << YAML::Key << "class" << YAML::Value << std::string(catalogue::to_string(entry.credential_class));
      out << YAML::Key << "readers" << YAML::Value << YAML::BeginSeq;
      for (const auto& [key, selector] : entry.readers) emit_selector(out, selector);
      out << YAML::EndSeq << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  if (!identities_.empty()) {
    out << YAML::Key << "identities" << YAML::Value << YAML::BeginSeq;
    for (const auto& [key, entry] : identities_) {
      out << YAML::BeginMap << YAML::Key << "match" << YAML::Value;
      emit_selector(out, entry.selector);
      out << YAML::Key << "egress" << YAML::Value << YAML::BeginSeq;
      for (const auto& destination : entry.destinations) out << destination;
      out << YAML::EndSeq << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return header + out.c_str() + "\n";
}

bool LearnedSet::take_dirty() {
  std::lock_guard lock(mutex_);
  return std::exchange(dirty_, false);
}

}  // namespace nhiguard::policy
