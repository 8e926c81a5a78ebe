#include "identity/cgroup_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "identity/mountinfo.h"

namespace nhiguard::identity {
namespace {

// include/linux/exportfs.h: kernfs (and so cgroup2) file handles are this type with the 64-bit
// node id as their only payload.
constexpr int kFileIdKernfs = 0xfe;

// Negative entries are a burst guard, not a record: past this many they are all dropped at once.
constexpr size_t kMaxNegative = 4096;

std::string strip_trailing_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string join(const std::string& parent, std::string_view name) {
  return parent == "/" ? "/" + std::string(name) : parent + "/" + std::string(name);
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

CgroupIndex::CgroupIndex(std::string root, Options options)
    : root_(strip_trailing_slashes(std::move(root))),
      options_(options),
      by_id_(std::max<size_t>(options.max_entries, 1)) {
  if (options_.max_entries == 0) options_.max_entries = 1;
  if (char* real = ::realpath(root_.c_str(), nullptr); real != nullptr) {
    resolved_root_ = real;
    std::free(real);
  } else {
    resolved_root_ = root_;
  }
}

Result<std::unique_ptr<CgroupIndex>> CgroupIndex::open_host(Options options) {
  auto mount = find_cgroup2_mount();
  if (!mount) return fail(std::move(mount.error()));
  return std::make_unique<CgroupIndex>(*mount, options);
}

std::optional<std::string> CgroupIndex::cached(uint64_t id) {
  std::lock_guard lock(mu_);
  const std::string* path = by_id_.find(id);
  if (path == nullptr) return std::nullopt;
  ++stats_.hits;
  return *path;
}

void CgroupIndex::insert_locked(uint64_t id, std::string path, bool evict) {
  if (!evict && by_id_.full() && !by_id_.contains(id)) return;
  by_id_.put(id, std::move(path));
}

Result<std::string> CgroupIndex::path_of(uint64_t id) {
  if (auto hit = cached(id)) return *hit;

  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    ++stats_.misses;
    if (auto it = negative_.find(id); it != negative_.end()) {
      if (it->second > now) {
        ++stats_.not_found;
        return fail(Error{ENOENT, "cgroup id " + std::to_string(id) + " not found under " + root_});
      }
      negative_.erase(it);
    }
  }

  std::lock_guard resolving(resolve_mu_);
  // Another thread may have resolved it while this one waited.
  if (auto hit = cached(id)) return *hit;

  if (options_.use_file_handles) {
    if (auto path = resolve_by_handle(id); path) {
      std::lock_guard lock(mu_);
      ++stats_.handle_resolutions;
      insert_locked(id, *path, true);
      return *path;
    }
    // Any failure (no CAP_DAC_READ_SEARCH, not kernfs, a hidden mount) falls through to the walk,
    // which needs nothing but read access and is always right.
  }

  // The event that carried this id came from a process already in the cgroup, so the cgroup
  // existed before this walk started: a walk that does not find it means it is gone (or was never
  // a cgroup), and remembering that for a short while is safe.
  auto walked = walk(id);
  if (!walked) return fail(std::move(walked.error()));

  std::lock_guard lock(mu_);
  ++stats_.walks;
  if (walked->target_found) insert_locked(id, walked->target_path, true);
  for (auto& [found_id, path] : walked->found) {
    if (found_id != id) insert_locked(found_id, std::move(path), false);
  }
  if (walked->target_found) return walked->target_path;

  ++stats_.not_found;
  if (negative_.size() >= kMaxNegative) negative_.clear();
  negative_[id] = std::chrono::steady_clock::now() + options_.negative_ttl;
  return fail(Error{ENOENT, "cgroup id " + std::to_string(id) + " not found under " + root_});
}

Result<std::string> CgroupIndex::resolve_by_handle(uint64_t id) const {
  const int mount_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mount_fd < 0) return fail(Error::from_current_errno("open " + root_));
  FdCloser mount_closer{mount_fd};

  alignas(struct file_handle) std::array<unsigned char, sizeof(struct file_handle) + sizeof(uint64_t)> storage{};
  auto* handle = reinterpret_cast<struct file_handle*>(storage.data());
  handle->handle_bytes = sizeof(uint64_t);
  handle->handle_type = kFileIdKernfs;
  std::memcpy(handle->f_handle, &id, sizeof(id));

  const int fd = ::open_by_handle_at(mount_fd, handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open_by_handle_at cgroup id " + std::to_string(id)));
  FdCloser closer{fd};

  // The handle must really name this id: on a filesystem that is not kernfs the type is foreign
  // and the open fails, but check anyway rather than trust it.
  struct stat st{};
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_ino) != id) {
    return fail(Error{ESTALE, "file handle for cgroup id " + std::to_string(id) + " named another inode"});
  }

  std::array<char, PATH_MAX> buf{};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) return fail(Error::from_current_errno("readlink " + link));
  std::string path(buf.data(), static_cast<size_t>(n));
  if (path.ends_with(" (deleted)")) return fail(Error{ENOENT, "cgroup id " + std::to_string(id) + " was removed"});
  // The fd's path is as seen from this process's root; only a path under the mount translates.
  if (path == resolved_root_) return std::string("/");
  if (!path.starts_with(resolved_root_ + "/")) {
    return fail(Error{EXDEV, "cgroup id " + std::to_string(id) + " is outside " + resolved_root_ + ": " + path});
  }
  return path.substr(resolved_root_ == "/" ? 0 : resolved_root_.size());
}

Result<CgroupIndex::WalkResult> CgroupIndex::walk(std::optional<uint64_t> target) const {
  WalkResult result;
  const int root_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return fail(Error::from_current_errno("open " + root_));
  struct stat root_st{};
  if (::fstat(root_fd, &root_st) != 0) {
    const int err = errno;
    ::close(root_fd);
    return fail(Error::from_errno(err, "fstat " + root_));
  }
  result.found.emplace(root_st.st_ino, "/");
  if (target && root_st.st_ino == *target) {
    result.target_found = true;
    result.target_path = "/";
  }

  // Iterative depth-first walk with openat: directory fds, not path strings, so a cgroup renamed
  // or removed mid-walk costs only its own subtree, and depth cannot exhaust the stack.
  struct Frame {
    DIR* dir;
    std::string path;
    size_t depth;
  };
  std::vector<Frame> stack;
  DIR* root_dir = ::fdopendir(root_fd);
  if (root_dir == nullptr) {
    const int err = errno;
    ::close(root_fd);
    return fail(Error::from_errno(err, "opendir " + root_));
  }
  stack.push_back({root_dir, "/", 0});

  while (!stack.empty() && !result.target_found) {
    Frame& frame = stack.back();
    errno = 0;
    const dirent* entry = ::readdir(frame.dir);
    if (entry == nullptr) {
      ::closedir(frame.dir);
      stack.pop_back();
      continue;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (entry->d_type != DT_DIR && entry->d_type != DT_UNKNOWN) continue;

    const int parent_fd = ::dirfd(frame.dir);
    struct stat st{};
    if (::fstatat(parent_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) continue;
    std::string path = join(frame.path, name);
    const size_t depth = frame.depth + 1;
    if (target && static_cast<uint64_t>(st.st_ino) == *target) {
      result.target_found = true;
      result.target_path = path;
    }
    if (depth < options_.max_depth) {
      const int child_fd = ::openat(parent_fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (child_fd >= 0) {
        if (DIR* child = ::fdopendir(child_fd); child != nullptr) {
          stack.push_back({child, path, depth});  // invalidates `frame`
        } else {
          ::close(child_fd);
        }
      }
    }
    result.found.emplace(st.st_ino, std::move(path));
  }
  for (Frame& frame : stack) ::closedir(frame.dir);
  return result;
}

Result<size_t> CgroupIndex::rescan() {
  std::lock_guard resolving(resolve_mu_);
  auto walked = walk(std::nullopt);
  if (!walked) return fail(std::move(walked.error()));
  std::lock_guard lock(mu_);
  ++stats_.walks;
  for (auto& [id, path] : walked->found) insert_locked(id, std::move(path), false);
  return walked->found.size();
}

Result<uint64_t> CgroupIndex::id_of(std::string_view path) const {
  std::string full = root_;
  if (!path.empty() && path != "/") {
    if (!path.starts_with('/')) full += '/';
    full += path;
  }
  struct stat st{};
  if (::stat(full.c_str(), &st) != 0) return fail(Error::from_current_errno("stat " + full));
  if (!S_ISDIR(st.st_mode)) return fail(Error{ENOTDIR, full + " is not a cgroup directory"});
  return static_cast<uint64_t>(st.st_ino);
}

void CgroupIndex::forget(uint64_t id) {
  std::lock_guard lock(mu_);
  by_id_.erase(id);
  negative_.erase(id);
}

size_t CgroupIndex::size() const {
  std::lock_guard lock(mu_);
  return by_id_.size();
}

CgroupIndex::Stats CgroupIndex::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace nhiguard::identity
