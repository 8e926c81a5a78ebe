#include "policy/policy.h"

#include <fnmatch.h>

#include <algorithm>

#include <fmt/format.h>

namespace nhiguard::policy {
namespace {

bool has_glob_metacharacters(std::string_view text) {
  return text.find_first_of("*?[\\") != std::string_view::npos;
}

bool glob_match(const std::string& pattern, const std::string& text, int flags = 0) {
  return fnmatch(pattern.c_str(), text.c_str(), flags) == 0;
}

// A cgroup selector covers the cgroups it names and everything below them, as a break-glass
// cgroup does: "/payments.slice" matches "/payments.slice/x.service/worker".
bool cgroup_pattern_match(const std::string& pattern, std::string_view cgroup_path) {
  std::string path(cgroup_path);
  while (!path.empty()) {
    if (glob_match(pattern, path, FNM_PATHNAME)) return true;
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return false;
    path.resize(slash);
  }
  return false;
}

// "~/rest" covers "rest" under any home directory: any prefix, then "/rest".
bool path_pattern_match(const CredentialSelector& selector, const std::string& path) {
  if (selector.pattern.starts_with("~/")) {
    const std::string rest = selector.pattern.substr(1);  // "/rest"
    if (selector.kind == CredentialSelector::Kind::path) return path.size() > rest.size() && path.ends_with(rest);
    return glob_match("*" + rest, path, 0);
  }
  if (selector.kind == CredentialSelector::Kind::path) return path == selector.pattern;
  return glob_match(selector.pattern, path, FNM_PATHNAME | FNM_PERIOD);
}

}  // namespace

std::string Origin::to_string() const {
  return line > 0 ? fmt::format("{}:{}:{}", source, line, column) : source;
}

bool IdentitySelector::matches(const IdentityFacts& identity) const {
  if (uid && *uid != identity.uid) return false;
  if (unit && (identity.unit.empty() || !glob_match(*unit, identity.unit))) return false;
  if (user_unit && (identity.user_unit.empty() || !glob_match(*user_unit, identity.user_unit))) return false;
  if (session && (identity.session.empty() || !glob_match(*session, identity.session))) return false;
  // A user unit or session belongs to the user its path names; uid then means that user too.
  if ((user_unit || session) && uid && identity.session_uid != *uid) return false;
  if (container) {
    if (identity.container_id.empty()) return false;
    const bool prefix = !has_glob_metacharacters(*container) && container->size() >= 12 &&
                        identity.container_id.starts_with(*container);
    if (!prefix && !glob_match(*container, identity.container_id)) return false;
  }
  if (pod && (identity.pod_uid.empty() || !glob_match(*pod, identity.pod_uid))) return false;
  if (cgroup && !cgroup_pattern_match(*cgroup, identity.cgroup_path)) return false;
  if (exe && (identity.exe.empty() || !glob_match(*exe, identity.exe))) return false;
  if (uri && (identity.uri.empty() || !glob_match(*uri, identity.uri))) return false;
  return true;
}

std::string IdentitySelector::describe() const {
  std::vector<std::string> parts;
  for (const auto& k : kSelectorPatternKeys) {
    if (const auto& value = this->*k.member) parts.push_back(fmt::format("{}={}", k.name, *value));
  }
  if (uid) parts.push_back(fmt::format("uid={}", *uid));
  return fmt::format("{}", fmt::join(parts, ","));
}

bool CredentialPolicy::covers(const CredentialFacts& credential) const {
  if (selector.kind == CredentialSelector::Kind::catalogue) {
    return !selector.catalogue_class || *selector.catalogue_class == credential.credential_class;
  }
  if (path_pattern_match(selector, credential.path)) return true;
  return std::any_of(credential.aliases.begin(), credential.aliases.end(),
                     [&](const std::string& alias) { return path_pattern_match(selector, alias); });
}

const IdentityClass* Policy::find_class(std::string_view name) const {
  for (const auto& c : identity_classes) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool egress_allowed(std::span<const containment::EgressDestination> allowed, const std::array<uint8_t, 16>& address,
                    uint16_t port) {
  for (const auto& destination : allowed) {
    if (destination.port != 0 && destination.port != port) continue;
    const uint32_t bits = destination.prefix_bits;
    bool inside = true;
    for (uint32_t i = 0; i < 16 && inside; ++i) {
      const uint32_t covered = bits > i * 8 ? std::min<uint32_t>(8, bits - i * 8) : 0;
      if (covered == 0) break;
      const uint8_t mask = static_cast<uint8_t>(0xff00u >> covered);
      inside = (destination.address[i] & mask) == (address[i] & mask);
    }
    if (inside) return true;
  }
  return false;
}

}  // namespace nhiguard::policy
