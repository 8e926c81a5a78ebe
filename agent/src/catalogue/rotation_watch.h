// RotationWatch: inotify on the directories where the kubelet's atomic writer rotates a watched
// credential (projected service-account tokens), so the new version's inode reaches the kernel's
// tables when the kubelet writes it, not at the next periodic rescan.
//
// A rotation is: a new `..<timestamp>` directory, the new file written into it, a `..data_tmp`
// symlink to it renamed over `..data`, the old directory removed. Each volume directory is watched
// for entries created or renamed into it, and each of its `..<timestamp>` directories for files
// created, written or renamed into it; a new `..<timestamp>` directory is watched the moment its
// creation is read, and drain() then asks for a sync, which finds whatever it already holds (the
// catalogue resolves every `..<timestamp>` version of a watched file, credential_catalogue.h).
//
// Left to the periodic rescan: a pod's new volume (a directory that did not hold a watched file at
// the last sync). Thread-safety: one thread (the event loop's).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/result.h"

namespace nhiguard::catalogue {

class RotationWatch {
 public:
  static Result<std::unique_ptr<RotationWatch>> create();
  ~RotationWatch();
  RotationWatch(const RotationWatch&) = delete;
  RotationWatch& operator=(const RotationWatch&) = delete;

  // Readable when events wait (non-blocking): for the event loop's epoll.
  int fd() const { return fd_; }
  // Watches exactly these volume directories (and their `..<timestamp>` directories); a directory
  // that cannot be watched is logged and left to the rescan.
  void watch(const std::set<std::string>& volume_dirs);
  // Reads every waiting event; true when one concerns a watched directory (a sync is due).
  bool drain();
  size_t watched() const { return dirs_.size(); }

 private:
  explicit RotationWatch(int fd) : fd_(fd) {}
  void add(const std::string& dir, bool volume);
  void watch_versions(const std::string& volume_dir);

  int fd_ = -1;
  std::map<int, std::string> dirs_;  // watch descriptor -> directory
  std::map<std::string, int> by_dir_;
};

}  // namespace nhiguard::catalogue
