// ExeHashCache: SHA-256 of executables, computed once per file version.
//
// A file version is (dev, inode, size, mtime, ctime). mtime alone can be set back by the file's
// owner (touch -d); ctime cannot be set from user space, so a rewrite that restores mtime still
// changes the key. Hashing by pid opens /proc/PID/exe, which reaches the very file the process
// runs — also when it was deleted or replaced on disk, or lives in a container's mount namespace
// where the path means nothing to the agent.
//
// Files larger than Options::max_file_size are not read: the result says too_large and has no
// hash, so a huge binary cannot stall the pipeline; the bound keeps the result honest rather than
// silently hashing a prefix.
//
// Thread-safety: all member functions may be called concurrently. Hashing runs outside the lock;
// two threads missing on the same file at once may both hash it (same answer, no harm).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "common/lru_cache.h"
#include "common/result.h"

namespace nhiguard::identity {

struct ExeFileKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const ExeFileKey&) const = default;
};

struct ExeHash {
  ExeFileKey file;
  std::string sha256;      // 64 lowercase hex digits; empty when too_large
  bool too_large = false;  // file.size exceeds the configured limit: deliberately not hashed
  bool cached = false;     // answered from the cache
};

class ExeHashCache {
 public:
  struct Options {
    uint64_t max_file_size = 256ull * 1024 * 1024;
    size_t max_entries = 4096;
    std::string proc_root = "/proc";
  };
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t too_large = 0;
    uint64_t bytes_hashed = 0;
  };

  ExeHashCache() : ExeHashCache(Options{}) {}
  explicit ExeHashCache(Options options);

  // The executable of process `pid`, via <proc_root>/PID/exe. ENOENT/ESRCH when the process is
  // gone, EACCES without the right to inspect it.
  Result<ExeHash> hash_pid(pid_t pid);
  // The executable behind an open /proc/PID directory (ProcessDir::fd()): opens "exe" relative
  // to it, so the answer is about that process even if the pid has since been reused.
  Result<ExeHash> hash_proc_dir(int proc_pid_dir_fd, pid_t pid);
  // The file at `path` (symlinks followed).
  Result<ExeHash> hash_path(const std::string& path);

  size_t size() const;
  Stats stats() const;

 private:
  struct KeyHash {
    size_t operator()(const ExeFileKey& k) const;
  };
  Result<ExeHash> hash_open_file(int fd, const std::string& what);

  Options options_;
  mutable std::mutex mu_;                             // guards index_, stats_
  LruCache<ExeFileKey, std::string, KeyHash> index_;  // value: hex digest
  Stats stats_;
};

// Lowercase hex SHA-256 of a byte buffer (OpenSSL EVP).
std::string sha256_hex(std::span<const unsigned char> data);

}  // namespace nhiguard::identity
