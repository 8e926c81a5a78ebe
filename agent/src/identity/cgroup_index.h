// CgroupIndex: cgroup v2 id -> path relative to the cgroup2 root.
//
// The kernel reports a cgroup by id (bpf_get_current_cgroup_id); the id is the inode number of the
// cgroup's directory on cgroup2 (a kernfs node id, unique for the boot: ids are never reused). The
// path is what says which workload it is. On a miss the index resolves the id by
//   1. open_by_handle_at() with a kernfs file handle (FILEID_KERNFS) and readlink of the fd, when
//      the process has CAP_DAC_READ_SEARCH — one syscall pair instead of a tree walk; then
//   2. a walk of the cgroup2 tree comparing st_ino, which needs only read access.
// A walk records every directory it sees while there is room, so one walk answers many misses.
//
// Invariants:
//   - paths are "/"-prefixed and relative to the root given at construction ("/" is the root
//     itself), the same form as a /proc/PID/cgroup "0::" line;
//   - the cache holds at most Options::max_entries ids (least recently used go first);
//   - a cached mapping is returned as is, even if the cgroup has since been removed: ids are not
//     reused, so it still says where that id was — which is what an event about a process that
//     ran there needs. forget() drops one;
//   - an id that resolves to nothing (never existed, or removed before it was seen) is an ENOENT
//     error, remembered for Options::negative_ttl so a burst of events from a vanished cgroup does
//     not walk the tree once per event.
//
// Thread-safety: all member functions may be called concurrently. Lookups that hit the cache take
// one mutex briefly; resolutions are serialised so that concurrent misses share one walk.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/lru_cache.h"
#include "common/result.h"

namespace nhiguard::identity {

class CgroupIndex {
 public:
  struct Options {
    size_t max_entries = 16384;
    std::chrono::milliseconds negative_ttl{2000};
    bool use_file_handles = true;  // try open_by_handle_at before walking
    size_t max_depth =
        64;  // deeper directories are not walked (cgroup2's own default is unlimited; real trees are < 20)
  };

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t handle_resolutions = 0;  // misses answered by open_by_handle_at
    uint64_t walks = 0;
    uint64_t not_found = 0;
  };

  // `root`: the cgroup2 mount point (see find_cgroup2_mount); any directory tree works, which is
  // how the tests exercise the walk without root.
  explicit CgroupIndex(std::string root, Options options);
  explicit CgroupIndex(std::string root) : CgroupIndex(std::move(root), Options{}) {}

  // Finds the host's cgroup2 mount from /proc/self/mountinfo and indexes it.
  static Result<std::unique_ptr<CgroupIndex>> open_host(Options options);

  // The path of cgroup `id`; ENOENT when no cgroup with that id exists (or existed while cached).
  Result<std::string> path_of(uint64_t id);

  // The id of the cgroup at `path` (relative to root), from stat: st_ino. Does not touch the cache.
  Result<uint64_t> id_of(std::string_view path) const;

  // Walks the whole tree and caches what fits; returns the number of cgroups seen.
  Result<size_t> rescan();

  void forget(uint64_t id);
  size_t size() const;
  Stats stats() const;
  const std::string& root() const { return root_; }

 private:
  struct WalkResult {
    std::unordered_map<uint64_t, std::string> found;
    bool target_found = false;
    std::string target_path;
  };

  std::optional<std::string> cached(uint64_t id);
  void insert_locked(uint64_t id, std::string path, bool evict);
  Result<std::string> resolve_by_handle(uint64_t id) const;
  Result<WalkResult> walk(std::optional<uint64_t> target) const;

  std::string root_;           // as given, without a trailing slash
  std::string resolved_root_;  // realpath(root_), to strip from readlink results
  Options options_;

  mutable std::mutex mu_;  // guards by_id_, negative_, stats_
  LruCache<uint64_t, std::string> by_id_;
  std::unordered_map<uint64_t, std::chrono::steady_clock::time_point> negative_;  // id -> remembered until
  Stats stats_;

  std::mutex resolve_mu_;  // one resolution (handle or walk) at a time
};

}  // namespace nhiguard::identity
