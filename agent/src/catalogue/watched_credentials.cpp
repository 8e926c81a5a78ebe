#include "catalogue/watched_credentials.h"

#include <time.h>

#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "catalogue/credential_ids.h"
#include "common/clock.h"
#include "common/state_file.h"

namespace nhiguard::catalogue {

WatchedCredentials::WatchedCredentials(std::unique_ptr<CredentialCatalogue> catalogue, kernel::CredentialTables& tables,
                                       std::string ids_path)
    : catalogue_(std::move(catalogue)), tables_(tables), ids_path_(std::move(ids_path)) {
  auto watch = RotationWatch::create();
  if (watch) {
    rotation_ = std::move(*watch);
  } else {
    spdlog::warn("{}: rotated service-account tokens are watched from the next rescan on", watch.error().message);
  }
}

Result<bool> WatchedCredentials::on_rotation_events() {
  if (!rotation_ || !rotation_->drain()) return false;
  if (auto synced = sync("token rotation"); !synced) return fail(synced.error());
  return true;
}

Result<void> WatchedCredentials::sync(const char* why) {
  last_sync_boot_ns_ = clock_ns(CLOCK_BOOTTIME);
  auto resolved = catalogue_->resolve();
  if (!resolved) return fail(Error::plain("resolve credential catalogue: " + resolved.error().message));

  std::map<uint32_t, ResolvedCredential> by_id;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> by_inode;
  std::set<std::string> rotating_dirs;
  for (auto& credential : *resolved) {
    by_inode[{credential.dev, credential.ino}] = credential.credential_id;
    if (rotation_) {
      const auto slash = credential.path.rfind('/');
      if (slash != std::string::npos && slash > 0) {
        std::string dir = credential.path.substr(0, slash);
        if (is_atomic_writer_dir(dir)) rotating_dirs.insert(std::move(dir));
      }
    }
    // A rotated file's versions share one id: the first (the catalogued path's own) is the entry.
    by_id.emplace(credential.credential_id, std::move(credential));
  }
  if (rotation_) rotation_->watch(rotating_dirs);
  size_t added = 0;
  size_t removed = 0;
  for (const auto& [inode, id] : by_inode) {
    const auto& credential = by_id.at(id);
    auto known = id_by_inode_.find(inode);
    if (known != id_by_inode_.end() && known->second == id) continue;
    nhg_inode_key key{.dev = inode.first, .ino = inode.second};
    auto ok = tables_.upsert_credential(
        key, {.credential_id = id, .class_id = static_cast<uint32_t>(credential.credential_class)});
    if (!ok) return fail(ok.error());
    ++added;
    spdlog::debug("watching credential {} ({}) inode {}:{}", credential.path, to_string(credential.credential_class),
                  inode.first, inode.second);
  }
  // Kernel entries the catalogue no longer has (deleted file, or pinned by an earlier agent for a
  // file that is gone): remove them, each logged.
  auto pinned = tables_.credentials();
  if (!pinned) return fail(pinned.error());
  for (const auto& [key, value] : *pinned) {
    if (by_inode.contains({key.dev, key.ino})) continue;
    auto ok = tables_.remove_credential(key);
    if (!ok) return fail(ok.error());
    ++removed;
    auto old = by_id_.find(value.credential_id);
    spdlog::info("no longer watching inode {}:{} (credential id {}{}): the file is gone from the catalogue", key.dev,
                 key.ino, value.credential_id, old != by_id_.end() ? ", was " + old->second.path : "");
  }
  {
    std::lock_guard lock(mutex_);
    by_id_ = std::move(by_id);
    id_by_inode_ = std::move(by_inode);
  }

  std::vector<kernel::CandidateName> names;
  for (const auto& rule : catalogue_->name_rules()) names.push_back({rule.parent, rule.name});
  if (auto ok = tables_.set_candidate_names(names); !ok) return fail(ok.error());
  if (added || removed) {
    spdlog::info("credential catalogue sync ({}): {} watched, {} added, {} removed", why, size(), added, removed);
    persist_ids();
  }
  return {};
}

void WatchedCredentials::persist_ids() {
  if (auto written = write_state_file(ids_path_, credential_ids_to_json(catalogue_->id_table())); !written) {
    spdlog::warn("{}: the next start rebuilds the ids from the pinned kernel state", written.error().message);
  }
}

std::optional<ResolvedCredential> WatchedCredentials::by_inode(uint64_t dev, uint64_t ino) const {
  std::lock_guard lock(mutex_);
  auto known = id_by_inode_.find({dev, ino});
  if (known == id_by_inode_.end()) return std::nullopt;
  return by_id_.at(known->second);
}

std::optional<ResolvedCredential> WatchedCredentials::by_id(uint32_t id) const {
  std::lock_guard lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

std::optional<ResolvedCredential> WatchedCredentials::by_path(std::string_view path) const {
  std::lock_guard lock(mutex_);
  for (const auto& [id, credential] : by_id_) {
    if (credential.path == path) return credential;
    for (const auto& alias : credential.aliases) {
      if (alias == path) return credential;
    }
  }
  return std::nullopt;
}

size_t WatchedCredentials::size() const {
  std::lock_guard lock(mutex_);
  return by_id_.size();
}

}  // namespace nhiguard::catalogue
