// Test helpers for the root-only tiers: a cgroup v2 subtree of the test's own
// (`<cgroup2>/nhiguard-test-<pid>/<name>`), removed with every process in it when the object dies,
// and a child process that joins such a cgroup before running a function.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

namespace nhiguard::testing {

class TestCgroup {
 public:
  // Creates <cgroup2 root>/nhiguard-test-<pid>/<relative>; aborts the test (ADD_FAILURE + throw)
  // when cgroup v2 is not mounted or the directory cannot be made.
  explicit TestCgroup(const std::string& relative);
  ~TestCgroup();
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  const std::string& path() const { return path_; }           // absolute directory
  const std::string& relative() const { return relative_; }   // path below the cgroup2 root, with leading '/'
  uint64_t id() const { return id_; }                         // cgroup id (directory inode)
  // Moves `pid` into this cgroup.
  void add(pid_t pid) const;

 private:
  std::string root_;
  std::string top_;
  std::string path_;
  std::string relative_;
  uint64_t id_ = 0;
};

// Forks a child that joins `cgroup` and then returns body()'s value as its exit status.
// Returns the child's pid; the caller waits for it with wait_for_exit.
pid_t spawn_in_cgroup(const TestCgroup& cgroup, const std::function<int()>& body);

// Waits for the child; returns its exit status (or 128 + signal).
int wait_for_exit(pid_t pid);

}  // namespace nhiguard::testing
