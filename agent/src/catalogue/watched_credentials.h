// WatchedCredentials: the credential files the agent watches, kept equal in the kernel and in
// memory. It owns the catalogue; sync() resolves it again and makes the kernel's tables
// (CredentialTables: the inode map and the candidate names) equal to it, naming every entry that
// goes in the log; an earlier agent's pinned entries are adopted, not cleared blindly. The id table
// (credential path -> id, which the pinned kernel state refers to) is persisted to its state file
// after every change.
//
// The event path looks credentials up by inode (a credential open) or by id (a taint); the control
// socket's manual containment looks them up by path.
//
// Credentials the kubelet rotates (projected service-account tokens) are watched with inotify
// (RotationWatch): on_rotation_events() syncs at once when a watched volume changes, so the new
// version's inode is in the kernel's tables from when the kubelet writes it.
//
// Thread-safety: sync(), on_rotation_events() and persist_ids() on the event loop's thread; the lookups from any thread
// (one mutex guards the two tables against the control thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "catalogue/credential_catalogue.h"
#include "catalogue/rotation_watch.h"
#include "kernel/credential_tables.h"

namespace nhiguard::catalogue {

class WatchedCredentials {
 public:
  WatchedCredentials(std::unique_ptr<CredentialCatalogue> catalogue, kernel::CredentialTables& tables,
                     std::string ids_path);

  // Re-resolves the catalogue and makes the kernel's tables equal to it; `why` names the occasion
  // in the log line.
  Result<void> sync(const char* why);
  // Descriptor readable when a watched token volume changed (-1: no inotify, the rescan finds
  // rotations); then on_rotation_events() reads the events and syncs when one matters (true).
  int rotation_fd() const { return rotation_ ? rotation_->fd() : -1; }
  Result<bool> on_rotation_events();
  // Writes the id table to its state file (a failure is logged: the next start rebuilds the ids
  // from the pinned kernel state).
  void persist_ids();
  // CLOCK_BOOTTIME of the last sync's start: an open after it whose file is not watched is not one
  // the catalogue has seen yet.
  uint64_t last_sync_boot_ns() const { return last_sync_boot_ns_; }

  std::optional<ResolvedCredential> by_inode(uint64_t dev, uint64_t ino) const;
  std::optional<ResolvedCredential> by_id(uint32_t id) const;
  // By its path or one of its aliases.
  std::optional<ResolvedCredential> by_path(std::string_view path) const;
  size_t size() const;
  size_t name_rules() const { return catalogue_->name_rules().size(); }

 private:
  std::unique_ptr<CredentialCatalogue> catalogue_;
  kernel::CredentialTables& tables_;
  const std::string ids_path_;
  uint64_t last_sync_boot_ns_ = 0;
  mutable std::mutex mutex_;  // guards the two maps
  std::map<uint32_t, ResolvedCredential> by_id_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> id_by_inode_;
  std::unique_ptr<RotationWatch> rotation_;
};

}  // namespace nhiguard::catalogue
