// Test helpers for the root-only tiers: a cgroup v2 subtree of the test's own, removed with every
// process in it when the object dies, and a child process that joins such a cgroup before running
// a function.
//
// By default the subtree is where the system service manager puts units:
// `<cgroup2>/system.slice/nhiguard-test-<pid>.slice/<name>`, so "payments.service" there is the
// system unit payments.service (identity/cgroup_classifier.h). /system.slice is created when it is
// missing (a host whose PID 1 is not systemd) and removed with the last test cgroup only if this
// process created it and it is empty. Placement::outside_slices puts the subtree at
// `<cgroup2>/nhiguard-test-<pid>/<name>`, where a unit name is only a look-alike.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

namespace nhiguard::testing {

class TestCgroup {
 public:
  enum class Placement { system_slice, outside_slices };
  // Creates the test's top cgroup (see above) and <relative> below it; aborts the test
  // (ADD_FAILURE + throw) when cgroup v2 is not mounted or a directory cannot be made.
  explicit TestCgroup(const std::string& relative, Placement placement = Placement::system_slice);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  const std::string& path() const { return path_; }          // absolute directory
  const std::string& relative() const { return relative_; }  // path below the cgroup2 root, with leading '/'
  uint64_t id() const { return id_; }                        // cgroup id (directory inode)
  // Moves `pid` into this cgroup.
  void add(pid_t pid) const;

 private:
  std::string root_;
  std::string top_;
  std::string path_;
  std::string relative_;
  uint64_t id_ = 0;
  bool in_system_slice_ = false;
};

// Forks a child that joins `cgroup` and then returns body()'s value as its exit status.
// Returns the child's pid; the caller waits for it with wait_for_exit.
pid_t spawn_in_cgroup(const TestCgroup& cgroup, const std::function<int()>& body);

// Waits for the child; returns its exit status (or 128 + signal).
int wait_for_exit(pid_t pid);

}  // namespace nhiguard::testing
