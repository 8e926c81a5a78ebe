#include "catalogue/credential_catalogue.h"

#include <fnmatch.h>
#include <glob.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace nhiguard::catalogue {
namespace {

// NHG_NAME_LEN is 64 bytes including the terminating NUL (bpf/nhiguard_abi.h).
constexpr std::size_t kMaxNameRuleLength = 63;

// Same flags for expansion (glob) and matching (fnmatch) so a path that resolve() would find is
// exactly a path match_path() accepts: '*' never crosses '/', and a leading '.' must be literal.
constexpr int kMatchFlags = FNM_PATHNAME | FNM_PERIOD;

bool is_glob_meta(char c) {
  return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\';
}

// The component without its backslash escapes when it contains no unescaped metacharacter.
std::optional<std::string> literal_component(std::string_view component) {
  std::string out;
  for (std::size_t i = 0; i < component.size(); ++i) {
    const char c = component[i];
    if (c == '\\') {
      if (i + 1 < component.size()) out += component[++i];
      continue;
    }
    if (c == '*' || c == '?' || c == '[') return std::nullopt;
    out += c;
  }
  return out;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > start) parts.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

// "/home//u/./x/" -> "/home/u/x"; "/" stays "/". ".." is left alone: callers pass canonical paths,
// and resolving it lexically would be wrong across symlinks.
std::string normalize_absolute(std::string_view path) {
  std::string out;
  for (const std::string_view part : split_path(path)) {
    if (part == ".") continue;
    out += '/';
    out += part;
  }
  return out.empty() ? std::string("/") : out;
}

std::string_view basename_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool excluded(const CatalogueEntry& entry, std::string_view path) {
  const std::string name(basename_of(path));
  return std::any_of(entry.exclude_names.begin(), entry.exclude_names.end(),
                     [&](const std::string& pattern) { return fnmatch(pattern.c_str(), name.c_str(), 0) == 0; });
}

bool is_directory(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Home directory fields of a passwd(5) file, normalized, in file order. Malformed lines are skipped:
// the file is not ours to validate, and one bad line must not hide every other home.
Result<std::vector<std::string>> read_passwd_homes(const std::string& passwd_path) {
  std::ifstream in(passwd_path);
  if (!in) return fail(Error::from_current_errno("read " + passwd_path));
  std::vector<std::string> homes;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.front() == '#') continue;
    std::size_t field_start = 0;
    std::size_t home_field_begin = std::string::npos;
    std::size_t home_field_end = std::string::npos;
    for (int field = 0; field <= 5; ++field) {
      const std::size_t colon = line.find(':', field_start);
      if (field == 5) {
        home_field_begin = field_start;
        home_field_end = colon == std::string::npos ? line.size() : colon;
        break;
      }
      if (colon == std::string::npos) break;
      field_start = colon + 1;
    }
    if (home_field_begin == std::string::npos) continue;
    const std::string_view home(line.data() + home_field_begin, home_field_end - home_field_begin);
    if (home.empty() || home.front() != '/') continue;
    homes.push_back(normalize_absolute(home));
  }
  if (in.bad()) return fail(Error::from_current_errno("read " + passwd_path));
  return homes;
}

CatalogueEntry entry(std::string pattern, CredentialClass credential_class, std::vector<std::string> exclude = {},
                     std::vector<NameRule> hints = {}) {
  return CatalogueEntry{std::move(pattern), credential_class, std::move(exclude), std::move(hints), std::nullopt};
}

std::vector<CatalogueEntry> make_builtin_entries() {
  using C = CredentialClass;
  std::vector<CatalogueEntry> e;
  // AWS CLI / SDK shared files.
  e.push_back(entry("~/.aws/credentials", C::aws));
  e.push_back(entry("~/.aws/config", C::aws));
  // gcloud: application default credentials (also placed anywhere via GOOGLE_APPLICATION_CREDENTIALS,
  // hence the parent-agnostic name rule), the credential and token databases, legacy per-account ADC.
  e.push_back(entry("~/.config/gcloud/application_default_credentials.json", C::gcp, {},
                    {{"", "application_default_credentials.json"}}));
  e.push_back(entry("~/.config/gcloud/credentials.db", C::gcp));
  e.push_back(entry("~/.config/gcloud/access_tokens.db", C::gcp));
  e.push_back(entry("~/.config/gcloud/legacy_credentials/*/adc.json", C::gcp));
  // Azure CLI token caches and profile.
  for (const char* name : {"msal_token_cache.json", "msal_token_cache.bin", "accessTokens.json",
                           "service_principal_entries.json", "service_principal_entries.bin", "azureProfile.json"}) {
    e.push_back(entry(std::string("~/.azure/") + name, C::azure));
  }
  // Kubernetes service-account tokens: the default mount, projected tokens (EKS IRSA, generic
  // /var/run/secrets/tokens), and on a node every pod's projected token under the kubelet's dir.
  for (const char* base : {"/var/run/secrets", "/run/secrets"}) {
    e.push_back(entry(std::string(base) + "/kubernetes.io/serviceaccount/token", C::kube_sa_token));
    e.push_back(entry(std::string(base) + "/eks.amazonaws.com/serviceaccount/token", C::kube_sa_token));
    e.push_back(entry(std::string(base) + "/tokens/*", C::kube_sa_token));
  }
  e.push_back(entry("/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/*/token", C::kube_sa_token));
  // kubeconfigs: users', kubeadm's control-plane and kubelet ones, k3s/rke2.
  e.push_back(entry("~/.kube/config", C::kubeconfig));
  for (const char* name : {"admin.conf", "super-admin.conf", "kubelet.conf", "controller-manager.conf",
                           "scheduler.conf", "bootstrap-kubelet.conf"}) {
    e.push_back(entry(std::string("/etc/kubernetes/") + name, C::kubeconfig));
  }
  e.push_back(entry("/var/lib/kubelet/kubeconfig", C::kubeconfig));
  e.push_back(entry("/etc/rancher/k3s/k3s.yaml", C::kubeconfig));
  e.push_back(entry("/etc/rancher/rke2/rke2.yaml", C::kubeconfig));
  // SSH private keys (never the .pub halves or certificates) and host keys.
  e.push_back(entry("~/.ssh/id_*", C::ssh_key, {"*.pub"},
                    {{".ssh", "id_rsa"},
                     {".ssh", "id_ed25519"},
                     {".ssh", "id_ecdsa"},
                     {".ssh", "id_dsa"},
                     {".ssh", "id_ecdsa_sk"},
                     {".ssh", "id_ed25519_sk"}}));
  e.push_back(entry("/etc/ssh/ssh_host_*_key", C::ssh_key, {"*.pub"},
                    {{"ssh", "ssh_host_rsa_key"},
                     {"ssh", "ssh_host_ecdsa_key"},
                     {"ssh", "ssh_host_ed25519_key"},
                     {"ssh", "ssh_host_dsa_key"}}));
  // Registry auth: Docker, and Podman/Buildah/Skopeo (${XDG_RUNTIME_DIR} is /run/user/<uid>; root
  // without a session uses /run/containers/0).
  e.push_back(entry("~/.docker/config.json", C::docker_config));
  e.push_back(entry("/run/user/*/containers/auth.json", C::docker_config));
  e.push_back(entry("/run/containers/*/auth.json", C::docker_config));
  e.push_back(entry("~/.config/containers/auth.json", C::docker_config));
  // Single-file token stores.
  e.push_back(entry("~/.vault-token", C::vault_token));
  e.push_back(entry("~/.netrc", C::netrc));
  e.push_back(entry("~/.git-credentials", C::git));
  e.push_back(entry("~/.config/git/credentials", C::git));
  e.push_back(entry("~/.pgpass", C::pgpass));
  return e;
}

Result<void> validate_entry(const CatalogueEntry& e) {
  if (e.pattern.empty()) return fail(Error{EINVAL, "credential catalogue: empty pattern"});
  if (e.pattern.front() != '/' && !e.pattern.starts_with("~/")) {
    return fail(
        Error{EINVAL, fmt::format("credential catalogue: pattern '{}' must be absolute or start with ~/", e.pattern)});
  }
  for (const std::string_view part : split_path(e.pattern)) {
    if (part == "..") {
      return fail(Error{EINVAL, fmt::format("credential catalogue: pattern '{}' contains '..'", e.pattern)});
    }
  }
  return {};
}

}  // namespace

bool is_atomic_writer_dir(const std::string& dir) {
  struct stat st{};
  return ::lstat((dir + "/..data").c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

std::string catalogue_pattern(std::string_view written, bool is_glob) {
  if (is_glob) return std::string(written);
  if (written.starts_with("~/")) return "~" + escape_glob(written.substr(1));
  return escape_glob(written);
}

std::string escape_glob(std::string_view literal) {
  std::string out;
  out.reserve(literal.size());
  for (const char c : literal) {
    if (is_glob_meta(c)) out += '\\';
    out += c;
  }
  return out;
}

// The kernel keeps a superblock's device number as (major << MINORBITS) | minor with MINORBITS = 20
// (include/linux/kdev_t.h); BPF programs read that value from sb->s_dev. glibc's dev_t, and so
// stat's st_dev, splits major and minor differently (minor bits 0-7 and 20-31, major bits 8-19 and
// 32-43) so that old 16-bit device numbers keep their value. The two agree only for major 0 and
// minor < 256; storing st_dev unconverted would make every credential on, say, an NVMe or
// device-mapper filesystem invisible to the kernel lookup.
uint64_t kernel_dev(dev_t user_dev) {
  return (static_cast<uint64_t>(major(user_dev)) << 20) | static_cast<uint64_t>(minor(user_dev));
}

const std::vector<CatalogueEntry>& builtin_entries() {
  static const std::vector<CatalogueEntry> entries = make_builtin_entries();
  return entries;
}

CredentialCatalogue::CredentialCatalogue(CatalogueOptions options) : options_(std::move(options)) {
  while (options_.root.size() > 1 && options_.root.back() == '/') options_.root.pop_back();
  if (options_.root == "/") options_.root.clear();
  if (options_.passwd_path.empty()) options_.passwd_path = options_.root + "/etc/passwd";
  if (options_.include_builtins) entries_ = builtin_entries();
  entries_.insert(entries_.end(), options_.entries.begin(), options_.entries.end());
  ids_ = options_.initial_ids;
  next_id_ = std::max<uint32_t>(1, options_.first_free_id);
  for (const auto& [path, id] : ids_) next_id_ = std::max(next_id_, id + 1);
}

Result<std::unique_ptr<CredentialCatalogue>> CredentialCatalogue::create(CatalogueOptions options) {
  for (const CatalogueEntry& e : options.entries) {
    if (auto valid = validate_entry(e); !valid) return fail(valid.error());
  }
  for (const auto& [path, id] : options.initial_ids) {
    if (id == 0) return fail(Error{EINVAL, "credential catalogue: initial id 0 for " + path});
  }
  std::unique_ptr<CredentialCatalogue> catalogue(new CredentialCatalogue(std::move(options)));
  std::unique_lock lock(catalogue->mutex_);
  if (auto expanded = catalogue->expand_locked(); !expanded) return fail(expanded.error());
  lock.unlock();
  return catalogue;
}

Result<void> CredentialCatalogue::expand_locked() {
  auto passwd_homes = read_passwd_homes(options_.passwd_path);
  if (!passwd_homes) return fail(passwd_homes.error());
  passwd_homes->push_back("/root");

  std::vector<std::string> homes;
  std::set<std::string> seen;
  for (const std::string& home : *passwd_homes) {
    // The prefix patterns are built on: "" for a home of "/" so "~/x" becomes "/x", not "//x".
    const std::string prefix = options_.root + (home == "/" ? "" : home);
    if (!seen.insert(prefix).second) continue;
    if (!is_directory(prefix.empty() ? std::string("/") : prefix)) continue;
    homes.push_back(prefix);
    // A home reached through a symlink (/home -> /data/home) is also catalogued under its
    // canonical path: the agent hands match_path() resolved paths.
    if (char* real = ::realpath(prefix.empty() ? "/" : prefix.c_str(), nullptr); real != nullptr) {
      std::string canonical = std::string(real) == "/" ? std::string() : std::string(real);
      std::free(real);
      if (seen.insert(canonical).second) homes.push_back(std::move(canonical));
    }
  }

  std::vector<ExpandedPattern> expanded;
  const std::string root = escape_glob(options_.root);
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const std::string& pattern = entries_[i].pattern;
    if (pattern.starts_with("~/")) {
      for (const std::string& home : homes) expanded.push_back({escape_glob(home) + pattern.substr(1), i});
    } else {
      expanded.push_back({root + pattern, i});
    }
  }
  homes_ = std::move(homes);
  expanded_ = std::move(expanded);
  return {};
}

uint32_t CredentialCatalogue::id_for_locked(const std::string& path) {
  const auto [it, inserted] = ids_.try_emplace(path, next_id_);
  if (inserted) ++next_id_;
  return it->second;
}

Result<std::vector<ResolvedCredential>> CredentialCatalogue::resolve() {
  std::unique_lock lock(mutex_);
  if (auto expanded = expand_locked(); !expanded) return fail(expanded.error());

  std::vector<ResolvedCredential> resolved;
  std::map<std::pair<uint64_t, uint64_t>, std::size_t> by_inode;  // (dev, ino) -> index in resolved
  for (const ExpandedPattern& expanded : expanded_) {
    const CatalogueEntry& e = entries_[expanded.entry_index];
    glob_t matches{};
    const int rc = ::glob(expanded.pattern.c_str(), 0, nullptr, &matches);
    if (rc == GLOB_NOSPACE) {
      globfree(&matches);
      return fail(Error{ENOMEM, "credential catalogue: glob " + expanded.pattern + ": out of memory"});
    }
    // GLOB_NOMATCH is the common case; GLOB_ABORTED cannot happen without GLOB_ERR, so unreadable
    // directories are simply not descended into.
    for (std::size_t k = 0; rc == 0 && k < matches.gl_pathc; ++k) {
      const std::string path = matches.gl_pathv[k];
      if (excluded(e, path)) continue;
      struct stat st{};
      if (::stat(path.c_str(), &st) != 0) {
        spdlog::debug("credential catalogue: skip {}: {}", path, std::strerror(errno));
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;
      const auto key = std::make_pair(kernel_dev(st.st_dev), static_cast<uint64_t>(st.st_ino));
      if (const auto it = by_inode.find(key); it != by_inode.end()) {
        ResolvedCredential& first = resolved[it->second];
        if (first.path != path && std::find(first.aliases.begin(), first.aliases.end(), path) == first.aliases.end()) {
          first.aliases.push_back(path);
        }
        continue;
      }
      by_inode.emplace(key, resolved.size());
      resolved.push_back(ResolvedCredential{
          .credential_id = id_for_locked(path),
          .credential_class = e.credential_class,
          .path = path,
          .aliases = {},
          .dev = key.first,
          .ino = key.second,
          .uid = static_cast<uint32_t>(st.st_uid),
          .mode = static_cast<uint32_t>(st.st_mode),
          .owner = e.owner,
      });
      add_atomic_writer_versions(resolved, by_inode, resolved.back());
    }
    globfree(&matches);
  }
  return resolved;
}

// The same file in every `..<timestamp>` directory of an atomic writer's volume: the one `..data`
// points to and the next one the kubelet has written but not swapped in yet. Each is the same
// credential (same id and path), so a rotation changes which inode the path reaches, not what it is.
void CredentialCatalogue::add_atomic_writer_versions(std::vector<ResolvedCredential>& resolved,
                                                     std::map<std::pair<uint64_t, uint64_t>, std::size_t>& by_inode,
                                                     ResolvedCredential credential) {
  const auto slash = credential.path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = credential.path.substr(0, slash);
  if (!is_atomic_writer_dir(dir)) return;
  const std::string pattern = escape_glob(dir) + "/..?*/" + escape_glob(credential.path.substr(slash + 1));
  glob_t matches{};
  if (::glob(pattern.c_str(), 0, nullptr, &matches) == 0) {
    for (std::size_t k = 0; k < matches.gl_pathc; ++k) {
      struct stat st{};
      if (::stat(matches.gl_pathv[k], &st) != 0 || !S_ISREG(st.st_mode)) continue;
      const auto key = std::make_pair(kernel_dev(st.st_dev), static_cast<uint64_t>(st.st_ino));
      if (by_inode.contains(key)) continue;
      by_inode.emplace(key, resolved.size());
      ResolvedCredential version = credential;
      version.dev = key.first;
      version.ino = key.second;
      version.uid = static_cast<uint32_t>(st.st_uid);
      version.mode = static_cast<uint32_t>(st.st_mode);
      resolved.push_back(std::move(version));
    }
  }
  globfree(&matches);
}

std::vector<NameRule> CredentialCatalogue::name_rules() const {
  std::set<NameRule> rules;
  const auto add = [&](NameRule rule) {
    if (rule.name.empty() || rule.name.size() > kMaxNameRuleLength || rule.parent.size() > kMaxNameRuleLength) return;
    rules.insert(std::move(rule));
  };
  for (const CatalogueEntry& e : entries_) {
    if (!e.name_hints.empty()) {
      for (const NameRule& hint : e.name_hints) add(hint);
      continue;
    }
    const std::vector<std::string_view> parts = split_path(e.pattern);
    if (parts.size() < 2) continue;  // a file directly under "/" has no useful parent name
    const auto name = literal_component(parts.back());
    if (!name) continue;
    const std::string_view parent_part = parts[parts.size() - 2];
    if (parts.size() == 2 && parent_part == "~" && e.pattern.starts_with("~/")) {
      add({"", *name});  // directly in a home directory, whose name varies
      continue;
    }
    const auto parent = literal_component(parent_part);
    if (!parent) continue;
    add({*parent, *name});
  }
  return {rules.begin(), rules.end()};
}

std::optional<CatalogueMatch> CredentialCatalogue::match_path(std::string_view absolute_path) const {
  if (absolute_path.empty() || absolute_path.front() != '/') return std::nullopt;
  const std::string path = normalize_absolute(absolute_path);
  std::shared_lock lock(mutex_);
  for (const ExpandedPattern& expanded : expanded_) {
    if (fnmatch(expanded.pattern.c_str(), path.c_str(), kMatchFlags) != 0) continue;
    const CatalogueEntry& e = entries_[expanded.entry_index];
    if (excluded(e, path)) continue;
    const auto id = ids_.find(path);
    return CatalogueMatch{e.credential_class, expanded.pattern, id == ids_.end() ? 0u : id->second};
  }
  return std::nullopt;
}

std::vector<std::string> CredentialCatalogue::homes() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  for (const std::string& home : homes_) out.push_back(home.empty() ? std::string("/") : home);
  return out;
}

std::map<std::string, uint32_t> CredentialCatalogue::id_table() const {
  std::shared_lock lock(mutex_);
  return ids_;
}

}  // namespace nhiguard::catalogue
