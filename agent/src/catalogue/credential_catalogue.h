// CredentialCatalogue: which files on this host are credentials, and the (dev, inode) of each.
//
// The kernel matches credential opens by inode (DESIGN.md, "Credential match by inode"), so user
// space must turn path patterns into concrete files: resolve() expands every pattern with glob(3),
// follows symlinks with stat(2) (the credential is the target file, wherever it is linked from) and
// keeps regular files only. Files that do not exist yet are caught by the kernel's name table,
// filled from name_rules(); when such a candidate is opened the agent asks match_path() whether the
// concrete path is catalogued, then rescans.
//
// Patterns are absolute paths or glob(3) patterns. A pattern starting with "~/" is expanded once
// per home directory: the homes listed in the passwd file plus /root, deduplicated, keeping only
// those that exist as directories (a home reached through a symlink is added under its canonical
// path too). System and nologin accounts count too: a service's home is where its cloud credentials
// usually live.
//
// Every path this class accepts or returns is a real filesystem path. CatalogueOptions::root is
// prepended to every pattern and home (tests build a fake root in a temporary directory; in
// production it is empty).
//
// Invariants:
//   - a credential_id is > 0 and belongs to one catalogued path for the life of the object (and
//     across restarts when the caller persists id_table() and passes it back as initial_ids);
//     ids are never reused, even when a file disappears;
//   - resolve() returns each file (dev, ino) once: when several catalogued paths reach the same
//     file (a symlink, a hard link, /var/run -> /run), the first in catalogue order is the entry
//     and the others are listed in its aliases;
//   - a catalogued file in a directory of the kubelet's atomic writer (one with a `..data`
//     symlink: projected service-account tokens) is also returned once per other `..<timestamp>`
//     directory holding it, with the same id and path and that version's inode: the version the
//     kubelet wrote but has not swapped in yet is watched before the swap.
//
// Thread-safety: all public methods may be called concurrently (a shared mutex guards the id table
// and the expanded patterns); resolve() serialises with itself.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue/credential_class.h"
#include "common/result.h"

namespace nhiguard::catalogue {

// (parent directory name, file name) for the kernel's name table. parent "" = any directory.
// Both are single path components of at most 63 bytes (NHG_NAME_LEN - 1).
struct NameRule {
  std::string parent;
  std::string name;
  friend bool operator==(const NameRule&, const NameRule&) = default;
  friend auto operator<=>(const NameRule&, const NameRule&) = default;
};

// One catalogue line: a path pattern and what it holds.
struct CatalogueEntry {
  std::string pattern;  // absolute path or glob; "~/..." = under every home directory
  CredentialClass credential_class = CredentialClass::custom;
  // fnmatch(3) patterns on the file name that exclude a match (e.g. "*.pub" for ~/.ssh/id_*).
  std::vector<std::string> exclude_names;
  // Name-table rules to use instead of the ones derived from the pattern's last two components
  // (used when the file name is a glob, e.g. ~/.ssh/id_* -> id_rsa, id_ed25519, ...).
  std::vector<NameRule> name_hints;
  // Declared owner (a workload identity or unit name) from the config; informational for policy.
  std::optional<std::string> owner;
};

// Escapes glob(3)/fnmatch(3) metacharacters (* ? [ ] \) so a literal path can be used as a pattern.
std::string escape_glob(std::string_view literal);

// The catalogue pattern of a path or glob as written in agent.yaml or a policy: a glob is kept as
// written; a literal path has its metacharacters escaped ("~/" kept as the home marker).
std::string catalogue_pattern(std::string_view written, bool is_glob);

// The kernel's encoding of a device number, (major << 20) | minor: what BPF programs read from
// sb->s_dev. glibc's st_dev uses a different layout (see kernel_dev in the .cpp).
uint64_t kernel_dev(dev_t user_dev);

// A directory the kubelet's atomic writer manages (projected service-account tokens, secrets,
// config maps): its files are symlinks through `..data`, itself a symlink to a `..<timestamp>`
// directory that a rotation replaces (a new directory, then a rename of `..data_tmp` over `..data`).
bool is_atomic_writer_dir(const std::string& dir);

// The built-in catalogue (AWS, GCP, Azure, Kubernetes, SSH, Docker/Podman, Vault, netrc, git, pgpass).
const std::vector<CatalogueEntry>& builtin_entries();

struct CatalogueOptions {
  std::string root;         // prefix for every pattern and home; "" in production
  std::string passwd_path;  // "" = <root>/etc/passwd
  bool include_builtins = true;
  std::vector<CatalogueEntry> entries;          // added by config, after the built-ins
  std::map<std::string, uint32_t> initial_ids;  // path -> id, from a previous id_table()
  // New ids start at least here: ids below it may still be in pinned kernel maps (ids rebuilt
  // after a lost id table, daemon/state_recovery.h), so no new path may take one of them.
  uint32_t first_free_id = 1;
};

struct ResolvedCredential {
  uint32_t credential_id = 0;
  CredentialClass credential_class = CredentialClass::custom;
  std::string path;                  // the catalogued path (a symlink stays a symlink here)
  std::vector<std::string> aliases;  // other catalogued paths that reach the same file
  uint64_t dev = 0;                  // kernel_dev() of the target's st_dev
  uint64_t ino = 0;                  // the target's inode
  uint32_t uid = 0;                  // the target's owner
  uint32_t mode = 0;                 // the target's st_mode
  std::optional<std::string> owner;  // CatalogueEntry::owner
};

struct CatalogueMatch {
  CredentialClass credential_class = CredentialClass::custom;
  std::string pattern;         // the expanded pattern that matched
  uint32_t credential_id = 0;  // the path's id when already known, else 0
};

class CredentialCatalogue {
 public:
  // Validates the entries (absolute or "~/" patterns, no empty pattern) and reads the passwd file.
  static Result<std::unique_ptr<CredentialCatalogue>> create(CatalogueOptions options);

  // Re-reads the passwd file, re-expands the patterns and returns every catalogued regular file.
  // Missing files, dangling symlinks and non-regular files are skipped, not errors. Fails only when
  // the passwd file cannot be read or glob(3) runs out of memory.
  Result<std::vector<ResolvedCredential>> resolve();

  // Name-table rules for files that may appear later: derived from each pattern's last two
  // components when literal ("~" as parent means any directory), or the entry's name_hints.
  // Deduplicated and sorted; names longer than 63 bytes are skipped.
  std::vector<NameRule> name_rules() const;

  // Whether a concrete absolute path belongs to the catalogue, against the patterns as expanded
  // by the last create()/resolve(). First match in catalogue order wins.
  std::optional<CatalogueMatch> match_path(std::string_view absolute_path) const;

  // The current home directories (root-prefixed), in passwd order, /root last unless listed, each
  // followed by its canonical path when that differs.
  std::vector<std::string> homes() const;

  // path -> credential_id of every path ever resolved; persist it to keep ids across restarts.
  std::map<std::string, uint32_t> id_table() const;

 private:
  struct ExpandedPattern {
    std::string pattern;
    std::size_t entry_index;
  };

  explicit CredentialCatalogue(CatalogueOptions options);
  Result<void> expand_locked();
  uint32_t id_for_locked(const std::string& path);
  static void add_atomic_writer_versions(std::vector<ResolvedCredential>& resolved,
                                         std::map<std::pair<uint64_t, uint64_t>, std::size_t>& by_inode,
                                         ResolvedCredential credential);

  CatalogueOptions options_;
  std::vector<CatalogueEntry> entries_;  // built-ins then config entries

  mutable std::shared_mutex mutex_;
  std::vector<std::string> homes_;
  std::vector<ExpandedPattern> expanded_;
  std::map<std::string, uint32_t> ids_;
  uint32_t next_id_ = 1;
};

}  // namespace nhiguard::catalogue
