#include "catalogue/rotation_watch.h"

#include <dirent.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace nhiguard::catalogue {
namespace {

constexpr uint32_t kVolumeEvents = IN_CREATE | IN_MOVED_TO | IN_ONLYDIR;
constexpr uint32_t kVersionEvents = IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR;

// `..<timestamp>` directories; `..data` and `..data_tmp` are the symlinks that point to them.
bool is_version_name(std::string_view name) {
  return name.size() > 2 && name.starts_with("..") && !name.starts_with("..data");
}

}  // namespace

Result<std::unique_ptr<RotationWatch>> RotationWatch::create() {
  const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("inotify_init1 for token rotations"));
  return std::unique_ptr<RotationWatch>(new RotationWatch(fd));
}

RotationWatch::~RotationWatch() {
  if (fd_ >= 0) close(fd_);
}

void RotationWatch::add(const std::string& dir, bool volume) {
  if (by_dir_.contains(dir)) return;
  const int wd = inotify_add_watch(fd_, dir.c_str(), volume ? kVolumeEvents : kVersionEvents);
  if (wd < 0) {
    spdlog::warn("cannot watch {} for token rotations ({}); its next version is found at the next rescan", dir,
                 std::strerror(errno));
    return;
  }
  dirs_[wd] = dir;
  by_dir_[dir] = wd;
}

void RotationWatch::watch_versions(const std::string& volume_dir) {
  DIR* handle = opendir(volume_dir.c_str());
  if (!handle) return;
  while (const dirent* entry = readdir(handle)) {
    if (entry->d_type == DT_DIR && is_version_name(entry->d_name)) add(volume_dir + "/" + entry->d_name, false);
  }
  closedir(handle);
}

void RotationWatch::watch(const std::set<std::string>& volume_dirs) {
  // Drop what is no longer wanted: directories of volumes that hold no watched file any more.
  for (auto it = by_dir_.begin(); it != by_dir_.end();) {
    const std::string& dir = it->first;
    const auto slash = dir.rfind('/');
    const bool wanted =
        volume_dirs.contains(dir) || (slash != std::string::npos && volume_dirs.contains(dir.substr(0, slash)) &&
                                      is_version_name(std::string_view(dir).substr(slash + 1)));
    if (wanted) {
      ++it;
      continue;
    }
    inotify_rm_watch(fd_, it->second);
    dirs_.erase(it->second);
    it = by_dir_.erase(it);
  }
  for (const auto& dir : volume_dirs) {
    add(dir, true);
    watch_versions(dir);
  }
}

bool RotationWatch::drain() {
  bool changed = false;
  alignas(inotify_event) char buffer[16 * 1024];
  for (;;) {
    const ssize_t n = read(fd_, buffer, sizeof(buffer));
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        spdlog::warn("reading token rotation events: {}; rotations are found at the next rescan", std::strerror(errno));
      }
      return changed;
    }
    for (ssize_t off = 0; off < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
      if (event->mask & IN_Q_OVERFLOW) {
        changed = true;  // events were lost: look at everything again
        continue;
      }
      auto dir = dirs_.find(event->wd);
      if (dir == dirs_.end()) continue;
      if (event->mask & IN_IGNORED) {  // the directory is gone (the old version, removed)
        by_dir_.erase(dir->second);
        dirs_.erase(dir);
        continue;
      }
      changed = true;
      const std::string_view name = event->len ? std::string_view(event->name) : std::string_view();
      // A new version directory: watch it now, so the file written into it is seen when closed.
      if ((event->mask & IN_ISDIR) && is_version_name(name) && by_dir_.contains(dir->second)) {
        add(dir->second + "/" + std::string(name), false);
      }
    }
  }
}

}  // namespace nhiguard::catalogue
