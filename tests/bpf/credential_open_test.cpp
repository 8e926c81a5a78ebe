// The sensor, loaded for real: a child process in a cgroup named like a service opens a planted
// credential in every way a path can be spelled, and each open is exactly one event carrying the
// child's identity. Needs root and a kernel with BTF; on the development machines it must run.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/openat2.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "identity/cgroup_classifier.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::events::ExecEvent;
using nhiguard::events::ExitEvent;
using nhiguard::events::FileOpenEvent;
using nhiguard::events::ForkEvent;
using nhiguard::events::KernelEvent;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 7;

nhg_inode_key inode_key_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return nhg_inode_key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path);
  out << content;
}

int read_all(int fd) {
  if (fd < 0) return 10;
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  return n > 0 ? 0 : 11;
}

class SensorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(nhiguard::kernel::check_kernel_btf().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_tracefs().has_value());
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-" + std::to_string(getpid());
    nhiguard::kernel::SensorOptions options{.pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20, .ignore_tgid = 0};
    auto sensor = nhiguard::kernel::KernelSensor::start(options, [](std::span<const std::byte> record) {
      auto event = nhiguard::events::decode_kernel_event(record);
      ASSERT_TRUE(event.has_value()) << event.error().message;
      std::lock_guard lock(mutex_);
      events_.push_back(std::move(*event));
    });
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    sensor_ = std::move(*sensor);
  }

  static void TearDownTestSuite() {
    sensor_.reset();
    fs::remove_all(pin_dir_);
  }

  void SetUp() override {
    ASSERT_TRUE(sensor_);
    {
      std::lock_guard lock(mutex_);
      events_.clear();  // the whole host's lifecycle events accumulate between tests
    }
    dir_ = fs::path("/tmp") / ("nhiguard-bpf-" + std::to_string(getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "home/.aws");
    credential_ = (dir_ / "home/.aws/credentials").string();
    write_file(credential_, "[default]\naws_access_key_id = AKIAEXAMPLEEXAMPLE00\n");
    write_file((dir_ / "home/notes.txt").string(), "not a secret\n");
    key_ = inode_key_of(credential_);
    ASSERT_TRUE(sensor_->upsert_credential(key_, {.credential_id = kCredentialId, .class_id = 1}).has_value());
    cgroup_ = std::make_unique<TestCgroup>("payments.service");
  }

  void TearDown() override {
    cgroup_.reset();
    if (sensor_) (void)sensor_->remove_credential(key_);
    (void)sensor_->set_candidate_names({});
    fs::remove_all(dir_);
  }

  // Runs body in a child in the test cgroup and returns every event of that child, collected until
  // its exit event (records of one process reach the ring buffer in order, so none can follow).
  std::vector<KernelEvent> run_child(const std::function<int()>& body, int expected_status = 0) {
    pid_t pid = spawn_in_cgroup(*cgroup_, body);
    EXPECT_EQ(wait_for_exit(pid), expected_status);
    std::vector<KernelEvent> mine;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(sensor_->poll(50).has_value());
      std::lock_guard lock(mutex_);
      for (auto it = events_.begin(); it != events_.end();) {
        if (tgid_of(*it) == static_cast<uint32_t>(pid)) {
          if (std::holds_alternative<ExitEvent>(*it)) exited = true;
          mine.push_back(std::move(*it));
          it = events_.erase(it);
        } else {
          ++it;
        }
      }
    }
    EXPECT_TRUE(exited) << "no exit event for child " << pid;
    child_pid_ = pid;
    return mine;
  }

  static uint32_t tgid_of(const KernelEvent& event) {
    return std::visit(
        [](const auto& e) -> uint32_t {
          if constexpr (std::is_same_v<std::decay_t<decltype(e)>, ForkEvent>) {
            return e.parent.tgid;
          } else {
            return e.process.tgid;
          }
        },
        event);
  }

  static std::vector<FileOpenEvent> file_events(const std::vector<KernelEvent>& events) {
    std::vector<FileOpenEvent> out;
    for (const auto& e : events) {
      if (auto* f = std::get_if<FileOpenEvent>(&e)) out.push_back(*f);
    }
    return out;
  }

  // Exactly one credential event, attributed to the child in payments.service.
  void expect_one_credential_read(const std::vector<KernelEvent>& events) {
    auto opens = file_events(events);
    ASSERT_EQ(opens.size(), 1u);
    const auto& open = opens[0];
    EXPECT_TRUE(open.by_inode);
    EXPECT_EQ(open.credential_id, kCredentialId);
    EXPECT_EQ(open.dev, key_.dev);
    EXPECT_EQ(open.ino, key_.ino);
    EXPECT_TRUE(open.readable());
    EXPECT_EQ(open.process.tgid, static_cast<uint32_t>(child_pid_));
    EXPECT_EQ(open.process.cgroup_id, cgroup_->id());
    EXPECT_EQ(open.process.uid, 0u);
    EXPECT_NE(open.process.start_ns, 0u);
    auto workload = nhiguard::identity::classify_cgroup_path(cgroup_->relative());
    EXPECT_EQ(workload.kind, nhiguard::identity::WorkloadKind::systemd_service);
    EXPECT_EQ(workload.name, "payments.service");
  }

  static inline std::unique_ptr<nhiguard::kernel::KernelSensor> sensor_;
  static inline std::string pin_dir_;
  static inline std::mutex mutex_;
  static inline std::vector<KernelEvent> events_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> cgroup_;
  pid_t child_pid_ = 0;
};

TEST_F(SensorTest, DirectPath) {
  auto events = run_child([&] { return read_all(open(credential_.c_str(), O_RDONLY)); });
  expect_one_credential_read(events);
  auto opens = file_events(events);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].requested_path, credential_);
  EXPECT_EQ(opens[0].name, "credentials");
  EXPECT_EQ(opens[0].syscall, nhiguard::events::OpenSyscall::openat);
  // A forked child runs its parent's argv: the test binary's own.
  ASSERT_FALSE(opens[0].cmdline.empty());
  EXPECT_NE(opens[0].cmdline[0].find("nhiguard_bpf_tests"), std::string::npos);
  EXPECT_FALSE(opens[0].cmdline_missing);
  EXPECT_EQ(opens[0].parent, ".aws");
}

TEST_F(SensorTest, RelativePath) {
  const std::string dir = (dir_ / "home").string();
  auto events = run_child([&] {
    if (chdir(dir.c_str()) != 0) return 12;
    return read_all(open(".aws/../.aws/credentials", O_RDONLY));
  });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].requested_path, ".aws/../.aws/credentials");
}

TEST_F(SensorTest, Symlink) {
  const std::string link = (dir_ / "innocent-looking").string();
  fs::create_symlink(credential_, link);
  auto events = run_child([&] { return read_all(open(link.c_str(), O_RDONLY)); });
  expect_one_credential_read(events);
}

TEST_F(SensorTest, HardLink) {
  const std::string hard = (dir_ / "copy-of-config").string();
  ASSERT_EQ(link(credential_.c_str(), hard.c_str()), 0);
  auto events = run_child([&] { return read_all(open(hard.c_str(), O_RDONLY)); });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].name, "copy-of-config");  // the link's own name, same inode
}

TEST_F(SensorTest, ProcSelfFdReopenOfPathDescriptor) {
  auto events = run_child([&] {
    int path_fd = open(credential_.c_str(), O_PATH);
    if (path_fd < 0) return 13;
    const std::string via = "/proc/self/fd/" + std::to_string(path_fd);
    return read_all(open(via.c_str(), O_RDONLY));
  });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].requested_path.rfind("/proc/self/fd/", 0), 0u);
}

TEST_F(SensorTest, BindMountElsewhere) {
  const std::string target = (dir_ / "mnt-target").string();
  write_file(target, "");
  auto events = run_child([&] {
    // A private mount namespace keeps the bind mount away from the host.
    if (unshare(CLONE_NEWNS) != 0) return 14;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 15;
    if (mount(credential_.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return 16;
    return read_all(open(target.c_str(), O_RDONLY));
  });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].requested_path, target);
}

TEST_F(SensorTest, OpenatOnDirectoryFd) {
  const std::string dir = (dir_ / "home/.aws").string();
  auto events = run_child([&] {
    int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) return 17;
    return read_all(openat(dir_fd, "credentials", O_RDONLY));
  });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].requested_path, "credentials");
}

TEST_F(SensorTest, Openat2Syscall) {
  auto events = run_child([&] {
    open_how how{.flags = O_RDONLY, .mode = 0, .resolve = 0};
    return read_all(static_cast<int>(syscall(SYS_openat2, AT_FDCWD, credential_.c_str(), &how, sizeof(how))));
  });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].syscall, nhiguard::events::OpenSyscall::openat2);
}

TEST_F(SensorTest, LegacyOpenSyscall) {
  auto events = run_child([&] { return read_all(static_cast<int>(syscall(SYS_open, credential_.c_str(), O_RDONLY))); });
  expect_one_credential_read(events);
  EXPECT_EQ(file_events(events)[0].syscall, nhiguard::events::OpenSyscall::open);
}

TEST_F(SensorTest, WriteOpenIsReportedAsWrite) {
  auto events = run_child([&] {
    int fd = open(credential_.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return 18;
    close(fd);
    return 0;
  });
  auto opens = file_events(events);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_TRUE(opens[0].writable());
  EXPECT_FALSE(opens[0].readable());
  EXPECT_EQ(opens[0].open_flags & O_ACCMODE, static_cast<uint32_t>(O_WRONLY));
}

TEST_F(SensorTest, NonCredentialOpensYieldNothing) {
  const std::string notes = (dir_ / "home/notes.txt").string();
  const std::string aws_dir = (dir_ / "home/.aws").string();
  auto events = run_child([&] {
    int rc = read_all(open(notes.c_str(), O_RDONLY));
    rc |= read_all(open("/etc/hostname", O_RDONLY));
    int path_only = open(credential_.c_str(), O_PATH);  // cannot read: not an access
    if (path_only < 0) return 19;
    close(path_only);
    int dir_fd = open(aws_dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) return 20;
    close(dir_fd);
    return rc;
  });
  EXPECT_TRUE(file_events(events).empty());
}

TEST_F(SensorTest, CredentialCreatedAfterStartIsCandidateThenMatched) {
  ASSERT_TRUE(sensor_->set_candidate_names({{".aws", "credentials"}, {"", ".vault-token"}}).has_value());
  const std::string later_dir = (dir_ / "later/.aws").string();
  fs::create_directories(later_dir);
  const std::string later = later_dir + "/credentials";
  auto created = run_child([&] {
    int fd = open(later.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return 21;
    if (write(fd, "[x]\n", 4) != 4) return 22;
    close(fd);
    return 0;
  });
  auto opens = file_events(created);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_FALSE(opens[0].by_inode);
  EXPECT_EQ(opens[0].name, "credentials");
  EXPECT_EQ(opens[0].parent, ".aws");
  const nhg_inode_key later_key = inode_key_of(later);
  EXPECT_EQ(opens[0].ino, later_key.ino);
  EXPECT_EQ(opens[0].dev, later_key.dev);

  // What the agent does with a candidate: resolve it and add its inode; the next read is a match.
  ASSERT_TRUE(sensor_->upsert_credential(later_key, {.credential_id = 99, .class_id = 1}).has_value());
  auto read_later = run_child([&] { return read_all(open(later.c_str(), O_RDONLY)); });
  auto reads = file_events(read_later);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_TRUE(reads[0].by_inode);
  EXPECT_EQ(reads[0].credential_id, 99u);
  (void)sensor_->remove_credential(later_key);

  // A name that matches in any directory.
  const std::string token = (dir_ / ".vault-token").string();
  auto vault = run_child([&] {
    int fd = open(token.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 23;
    close(fd);
    return 0;
  });
  ASSERT_EQ(file_events(vault).size(), 1u);
  EXPECT_EQ(file_events(vault)[0].name, ".vault-token");

  // Same name under another parent: not a candidate.
  const std::string other = (dir_ / "credentials").string();
  auto unrelated = run_child([&] {
    int fd = open(other.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 24;
    close(fd);
    return 0;
  });
  EXPECT_TRUE(file_events(unrelated).empty());
}

TEST_F(SensorTest, ProcessLifecycleEvents) {
  pid_t grandchild = 0;
  auto events = run_child([&] {
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/true", "true", nullptr);
      _exit(127);
    }
    return wait_for_exit(pid);
  });
  bool saw_fork = false;
  for (const auto& e : events) {
    if (auto* fork_event = std::get_if<ForkEvent>(&e)) {
      saw_fork = true;
      grandchild = static_cast<pid_t>(fork_event->child_tgid);
      EXPECT_NE(fork_event->child_start_ns, 0u);
      EXPECT_EQ(fork_event->parent.cgroup_id, cgroup_->id());
    }
  }
  ASSERT_TRUE(saw_fork);
  // The grandchild's exec and exit were collected by other tgid; find them in the shared buffer.
  bool saw_exec = false;
  bool saw_exit = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((!saw_exec || !saw_exit) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(sensor_->poll(50).has_value());
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (auto* exec = std::get_if<ExecEvent>(&e); exec && exec->process.tgid == static_cast<uint32_t>(grandchild)) {
        saw_exec = true;
        EXPECT_EQ(exec->filename, "/bin/true");
        EXPECT_EQ(exec->process.cgroup_id, cgroup_->id());
      }
      if (auto* exit = std::get_if<ExitEvent>(&e); exit && exit->process.tgid == static_cast<uint32_t>(grandchild)) {
        saw_exit = true;
        EXPECT_EQ(exit->exit_code, 0);
      }
    }
  }
  EXPECT_TRUE(saw_exec);
  EXPECT_TRUE(saw_exit);
}

TEST_F(SensorTest, NoDropsWhenIdle) {
  auto before = sensor_->counters();
  ASSERT_TRUE(before.has_value()) << before.error().message;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(sensor_->poll(0).has_value());
  auto after = sensor_->counters();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->ringbuf_drops(), 0u);
  EXPECT_EQ(after->values[NHG_CTR_FD_LOOKUP_FAILED], 0u);
}

TEST_F(SensorTest, DetectionMapsArePinned) {
  for (const char* map : {"nhg_credentials", "nhg_candidate_names", "nhg_candidate_pairs", "nhg_counters"}) {
    EXPECT_TRUE(fs::exists(pin_dir_ + "/" + map)) << map;
  }
  auto listed = sensor_->credentials();
  ASSERT_TRUE(listed.has_value());
  bool found = false;
  for (const auto& [key, value] : *listed) {
    if (key.ino == key_.ino && key.dev == key_.dev) found = value.credential_id == kCredentialId;
  }
  EXPECT_TRUE(found);
}

}  // namespace
