#include "test_cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "identity/mountinfo.h"

namespace nhiguard::testing {
namespace {

void write_file(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  if (!out) throw std::runtime_error("write " + path + ": " + std::strerror(errno));
}

// Kills every process of one cgroup directory (and its children) and removes the directories.
void kill_and_remove(const std::string& dir) {
  const std::string kill_file = dir + "/cgroup.kill";
  if (access(kill_file.c_str(), W_OK) == 0) {
    std::ofstream(kill_file) << "1";
  }
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "could not remove test cgroup " << dir << ": " << std::strerror(errno);
}

// Whether this process made <cgroup2>/system.slice, and how many TestCgroups below it are alive.
bool made_system_slice = false;
int alive_in_system_slice = 0;

void make_dir(const std::string& path, bool* created = nullptr) {
  if (mkdir(path.c_str(), 0755) == 0) {
    if (created) *created = true;
    return;
  }
  if (errno == EEXIST) return;
  ADD_FAILURE() << "mkdir " << path << ": " << std::strerror(errno);
  throw std::runtime_error("mkdir cgroup");
}

}  // namespace

TestCgroup::TestCgroup(const std::string& relative, Placement placement) {
  auto root = identity::find_cgroup2_mount();
  if (!root) {
    ADD_FAILURE() << "cgroup v2 is not mounted: " << root.error().message;
    throw std::runtime_error("no cgroup2");
  }
  root_ = *root;
  const std::string pid = std::to_string(getpid());
  const std::string top_relative =
      placement == Placement::system_slice ? "/system.slice/nhiguard-test-" + pid + ".slice" : "/nhiguard-test-" + pid;
  in_system_slice_ = placement == Placement::system_slice;
  top_ = root_ + top_relative;
  relative_ = top_relative + "/" + relative;
  path_ = root_ + relative_;
  if (in_system_slice_) {
    bool created = false;
    make_dir(root_ + "/system.slice", &created);
    made_system_slice |= created;
  }
  try {
    make_dir(top_);
    make_dir(path_);
    struct stat st{};
    if (stat(path_.c_str(), &st) != 0) throw std::runtime_error("stat " + path_);
    id_ = st.st_ino;
  } catch (...) {
    rmdir(top_.c_str());
    if (in_system_slice_ && alive_in_system_slice == 0 && made_system_slice &&
        rmdir((root_ + "/system.slice").c_str()) == 0) {
      made_system_slice = false;
    }
    throw;
  }
  if (in_system_slice_) ++alive_in_system_slice;
}

TestCgroup::~TestCgroup() {
  kill_and_remove(path_);
  // The top directory is shared by every TestCgroup of this process; the last one removes it.
  rmdir(top_.c_str());
  if (in_system_slice_ && --alive_in_system_slice == 0 && made_system_slice) {
    // Only when empty: anything else below /system.slice is not ours.
    if (rmdir((root_ + "/system.slice").c_str()) == 0) made_system_slice = false;
  }
}

void TestCgroup::add(pid_t pid) const {
  write_file(path_ + "/cgroup.procs", std::to_string(pid));
}

pid_t spawn_in_cgroup(const TestCgroup& cgroup, const std::function<int()>& body) {
  int ready[2];
  if (pipe(ready) != 0) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    close(ready[1]);
    char go;
    // Wait until the parent has moved us: every syscall of body() is then made from the cgroup.
    if (read(ready[0], &go, 1) != 1) _exit(120);
    _exit(body());
  }
  close(ready[0]);
  try {
    cgroup.add(pid);
  } catch (...) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    close(ready[1]);
    throw;
  }
  if (write(ready[1], "g", 1) != 1) ADD_FAILURE() << "could not release the child";
  close(ready[1]);
  return pid;
}

int wait_for_exit(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace nhiguard::testing
