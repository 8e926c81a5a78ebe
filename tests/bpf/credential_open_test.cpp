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
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "identity/cgroup_classifier.h"
#include "kernel/feature_probe.h"
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
  struct stat st{};
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

// The open programs come in two variants (sensor.bpf.c SENSOR_OPEN_EXIT); every case runs against
// both: plain loads through bpf_rdonly_cast (kernel 6.2+) and bpf_probe_read_kernel (5.8+).
struct DirectReads {
  static constexpr bool kDirect = true;
};
struct ProbeReads {
  static constexpr bool kDirect = false;
};
struct VariantNames {
  template <typename Variant>
  static std::string GetName(int) {
    return Variant::kDirect ? "direct" : "probe_read";
  }
};

template <typename Variant>
class SensorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (Variant::kDirect && !nhiguard::kernel::probe_kernel_features().supports("rdonly_cast")) {
      skip_reason_ = "this kernel lacks bpf_rdonly_cast (6.2+): the direct variant cannot load here";
      return;
    }
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(nhiguard::kernel::check_kernel_btf().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_tracefs().has_value());
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-" + std::to_string(getpid()) + "-" + VariantNames::GetName<Variant>(0);
    nhiguard::kernel::SensorOptions options{
        .pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20, .ignore_tgid = 0, .direct_file_reads = Variant::kDirect};
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
    if (!pin_dir_.empty()) fs::remove_all(pin_dir_);
  }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
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
    ASSERT_TRUE(sensor_->credential_tables()
                    .upsert_credential(key_, {.credential_id = kCredentialId, .class_id = 1})
                    .has_value());
    cgroup_ = std::make_unique<TestCgroup>("payments.service");
  }

  void TearDown() override {
    if (!sensor_) return;
    cgroup_.reset();
    (void)sensor_->credential_tables().remove_credential(key_);
    (void)sensor_->credential_tables().set_candidate_names({});
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

  static inline std::string skip_reason_;
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

using Variants = ::testing::Types<DirectReads, ProbeReads>;
TYPED_TEST_SUITE(SensorTest, Variants, VariantNames);

TYPED_TEST(SensorTest, DirectPath) {
  auto events = this->run_child([&] { return read_all(open(this->credential_.c_str(), O_RDONLY)); });
  this->expect_one_credential_read(events);
  auto opens = this->file_events(events);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].requested_path, this->credential_);
  EXPECT_EQ(opens[0].name, "credentials");
  EXPECT_EQ(opens[0].syscall, nhiguard::events::OpenSyscall::openat);
  // A forked child runs its parent's argv: the test binary's own.
  ASSERT_FALSE(opens[0].cmdline.empty());
  EXPECT_NE(opens[0].cmdline[0].find("nhiguard_bpf_tests"), std::string::npos);
  EXPECT_FALSE(opens[0].cmdline_missing);
  EXPECT_EQ(opens[0].parent, ".aws");
}

TYPED_TEST(SensorTest, RelativePath) {
  const std::string dir = (this->dir_ / "home").string();
  auto events = this->run_child([&] {
    if (chdir(dir.c_str()) != 0) return 12;
    return read_all(open(".aws/../.aws/credentials", O_RDONLY));
  });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].requested_path, ".aws/../.aws/credentials");
}

TYPED_TEST(SensorTest, Symlink) {
  const std::string link = (this->dir_ / "innocent-looking").string();
  fs::create_symlink(this->credential_, link);
  auto events = this->run_child([&] { return read_all(open(link.c_str(), O_RDONLY)); });
  this->expect_one_credential_read(events);
}

TYPED_TEST(SensorTest, HardLink) {
  const std::string hard = (this->dir_ / "copy-of-config").string();
  ASSERT_EQ(link(this->credential_.c_str(), hard.c_str()), 0);
  auto events = this->run_child([&] { return read_all(open(hard.c_str(), O_RDONLY)); });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].name, "copy-of-config");  // the link's own name, same inode
}

TYPED_TEST(SensorTest, ProcSelfFdReopenOfPathDescriptor) {
  auto events = this->run_child([&] {
    int path_fd = open(this->credential_.c_str(), O_PATH);
    if (path_fd < 0) return 13;
    const std::string via = "/proc/self/fd/" + std::to_string(path_fd);
    return read_all(open(via.c_str(), O_RDONLY));
  });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].requested_path.rfind("/proc/self/fd/", 0), 0u);
}

TYPED_TEST(SensorTest, BindMountElsewhere) {
  const std::string target = (this->dir_ / "mnt-target").string();
  write_file(target, "");
  auto events = this->run_child([&] {
    // A private mount namespace keeps the bind mount away from the host.
    if (unshare(CLONE_NEWNS) != 0) return 14;
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return 15;
    if (mount(this->credential_.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) return 16;
    return read_all(open(target.c_str(), O_RDONLY));
  });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].requested_path, target);
}

TYPED_TEST(SensorTest, OpenatOnDirectoryFd) {
  const std::string dir = (this->dir_ / "home/.aws").string();
  auto events = this->run_child([&] {
    int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) return 17;
    return read_all(openat(dir_fd, "credentials", O_RDONLY));
  });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].requested_path, "credentials");
}

TYPED_TEST(SensorTest, Openat2Syscall) {
  auto events = this->run_child([&] {
    open_how how{.flags = O_RDONLY, .mode = 0, .resolve = 0};
    return read_all(static_cast<int>(syscall(SYS_openat2, AT_FDCWD, this->credential_.c_str(), &how, sizeof(how))));
  });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].syscall, nhiguard::events::OpenSyscall::openat2);
}

TYPED_TEST(SensorTest, LegacyOpenSyscall) {
  auto events = this->run_child(
      [&] { return read_all(static_cast<int>(syscall(SYS_open, this->credential_.c_str(), O_RDONLY))); });
  this->expect_one_credential_read(events);
  EXPECT_EQ(this->file_events(events)[0].syscall, nhiguard::events::OpenSyscall::open);
}

TYPED_TEST(SensorTest, WriteOpenIsReportedAsWrite) {
  auto events = this->run_child([&] {
    int fd = open(this->credential_.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return 18;
    close(fd);
    return 0;
  });
  auto opens = this->file_events(events);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_TRUE(opens[0].writable());
  EXPECT_FALSE(opens[0].readable());
  EXPECT_EQ(opens[0].open_flags & O_ACCMODE, static_cast<uint32_t>(O_WRONLY));
}

TYPED_TEST(SensorTest, NonCredentialOpensYieldNothing) {
  const std::string notes = (this->dir_ / "home/notes.txt").string();
  const std::string aws_dir = (this->dir_ / "home/.aws").string();
  auto events = this->run_child([&] {
    int rc = read_all(open(notes.c_str(), O_RDONLY));
    rc |= read_all(open("/etc/hostname", O_RDONLY));
    int path_only = open(this->credential_.c_str(), O_PATH);  // cannot read: not an access
    if (path_only < 0) return 19;
    close(path_only);
    int dir_fd = open(aws_dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd < 0) return 20;
    close(dir_fd);
    return rc;
  });
  EXPECT_TRUE(this->file_events(events).empty());
}

TYPED_TEST(SensorTest, CredentialCreatedAfterStartIsCandidateThenMatched) {
  ASSERT_TRUE(this->sensor_->credential_tables()
                  .set_candidate_names({{".aws", "credentials"}, {"", ".vault-token"}})
                  .has_value());
  const std::string later_dir = (this->dir_ / "later/.aws").string();
  fs::create_directories(later_dir);
  const std::string later = later_dir + "/credentials";
  auto created = this->run_child([&] {
    int fd = open(later.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return 21;
    if (write(fd, "[x]\n", 4) != 4) return 22;
    close(fd);
    return 0;
  });
  auto opens = this->file_events(created);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_FALSE(opens[0].by_inode);
  EXPECT_EQ(opens[0].name, "credentials");
  EXPECT_EQ(opens[0].parent, ".aws");
  const nhg_inode_key later_key = inode_key_of(later);
  EXPECT_EQ(opens[0].ino, later_key.ino);
  EXPECT_EQ(opens[0].dev, later_key.dev);

  // What the agent does with a candidate: resolve it and add its inode; the next read is a match.
  ASSERT_TRUE(this->sensor_->credential_tables()
                  .upsert_credential(later_key, {.credential_id = 99, .class_id = 1})
                  .has_value());
  auto read_later = this->run_child([&] { return read_all(open(later.c_str(), O_RDONLY)); });
  auto reads = this->file_events(read_later);
  ASSERT_EQ(reads.size(), 1u);
  EXPECT_TRUE(reads[0].by_inode);
  EXPECT_EQ(reads[0].credential_id, 99u);
  (void)this->sensor_->credential_tables().remove_credential(later_key);

  // A name that matches in any directory.
  const std::string token = (this->dir_ / ".vault-token").string();
  auto vault = this->run_child([&] {
    int fd = open(token.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 23;
    close(fd);
    return 0;
  });
  ASSERT_EQ(this->file_events(vault).size(), 1u);
  EXPECT_EQ(this->file_events(vault)[0].name, ".vault-token");

  // Same name under another parent: not a candidate.
  const std::string other = (this->dir_ / "credentials").string();
  auto unrelated = this->run_child([&] {
    int fd = open(other.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd < 0) return 24;
    close(fd);
    return 0;
  });
  EXPECT_TRUE(this->file_events(unrelated).empty());
}

TYPED_TEST(SensorTest, ProcessLifecycleEvents) {
  pid_t grandchild = 0;
  auto events = this->run_child([&] {
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
      EXPECT_EQ(fork_event->parent.cgroup_id, this->cgroup_->id());
    }
  }
  ASSERT_TRUE(saw_fork);
  // The grandchild's exec and exit were collected by other tgid; find them in the shared buffer.
  bool saw_exec = false;
  bool saw_exit = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((!saw_exec || !saw_exit) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(this->sensor_->poll(50).has_value());
    std::lock_guard lock(this->mutex_);
    for (const auto& e : this->events_) {
      if (auto* exec = std::get_if<ExecEvent>(&e); exec && exec->process.tgid == static_cast<uint32_t>(grandchild)) {
        saw_exec = true;
        EXPECT_EQ(exec->filename, "/bin/true");
        EXPECT_EQ(exec->process.cgroup_id, this->cgroup_->id());
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

TYPED_TEST(SensorTest, NoDropsWhenIdle) {
  auto before = this->sensor_->counters().counters();
  ASSERT_TRUE(before.has_value()) << before.error().message;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(this->sensor_->poll(0).has_value());
  auto after = this->sensor_->counters().counters();
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->ringbuf_drops(), 0u);
  EXPECT_EQ(after->values[NHG_CTR_FD_LOOKUP_FAILED], 0u);
}

// A process reading the same credential in a loop costs one record per window, not one per open,
// and every open is accounted for: a record, or a repeat counted into a later record or into the
// summary written at the process's exit.
TYPED_TEST(SensorTest, RepeatReadsByOneProcessAreCoalesced) {
  constexpr int kReads = 1000;
  auto before = this->sensor_->counters().counters();
  ASSERT_TRUE(before.has_value());
  auto events = this->run_child([&] {
    int rc = 0;
    for (int i = 0; i < kReads; ++i) rc |= read_all(open(this->credential_.c_str(), O_RDONLY));
    return rc;
  });
  auto after = this->sensor_->counters().counters();
  ASSERT_TRUE(after.has_value());
  auto records = this->file_events(events);
  ASSERT_GE(records.size(), 2u);
  EXPECT_LE(records.size(), 4u) << "a 1000-read loop should take well under the 1 s window";
  EXPECT_FALSE(records.front().cmdline_omitted);
  EXPECT_FALSE(records.front().repeat_summary);
  const auto& summary = records.back();
  EXPECT_TRUE(summary.repeat_summary);
  EXPECT_EQ(summary.credential_id, kCredentialId);
  EXPECT_EQ(summary.ino, this->key_.ino);
  EXPECT_EQ(summary.syscall, nhiguard::events::OpenSyscall::none);
  EXPECT_EQ(summary.fd, -1);
  uint64_t opens = 0;
  uint64_t folded = 0;
  for (const auto& record : records) {
    if (!record.repeat_summary) ++opens;
    folded += record.coalesced_opens;
  }
  EXPECT_EQ(opens + folded, static_cast<uint64_t>(kReads));
  EXPECT_EQ(after->values[NHG_CTR_CREDENTIAL_OPENS_COALESCED] - before->values[NHG_CTR_CREDENTIAL_OPENS_COALESCED],
            folded);
}

// Past the window, the next repeat is a record again and carries the count of the ones between.
TYPED_TEST(SensorTest, RepeatReadAfterTheWindowCarriesTheCount) {
  const auto window = std::chrono::nanoseconds(NHG_REPEAT_WINDOW_NS) + std::chrono::milliseconds(150);
  auto events = this->run_child([&] {
    int rc = read_all(open(this->credential_.c_str(), O_RDONLY));
    std::this_thread::sleep_for(window);
    for (int i = 0; i < 5; ++i) rc |= read_all(open(this->credential_.c_str(), O_RDONLY));
    std::this_thread::sleep_for(window);
    return rc | read_all(open(this->credential_.c_str(), O_RDONLY));
  });
  auto opens = this->file_events(events);
  ASSERT_EQ(opens.size(), 3u);
  EXPECT_EQ(opens[0].coalesced_opens, 0u);
  EXPECT_FALSE(opens[0].cmdline_omitted);
  EXPECT_EQ(opens[1].coalesced_opens, 0u);  // the first of the five: past the first window
  EXPECT_TRUE(opens[1].cmdline_omitted);
  EXPECT_EQ(opens[2].coalesced_opens, 4u);  // the other four of the five
  EXPECT_TRUE(opens[2].cmdline_omitted);
  for (const auto& open : opens) EXPECT_FALSE(open.repeat_summary);  // nothing left to sum up at exit
}

// Two credentials whose inodes share a slot of the open path's prefilter: removing one must leave
// the slot counting the other, or the other would go unseen.
TYPED_TEST(SensorTest, CredentialsSharingAFilterSlotStayMatchedOneByOne) {
  const fs::path pool = this->dir_ / "pool";
  fs::create_directories(pool);
  std::map<uint32_t, std::string> by_slot;
  std::string first;
  std::string second;
  for (int i = 0; i < 20000 && second.empty(); ++i) {
    const std::string path = (pool / ("f" + std::to_string(i))).string();
    write_file(path, "x");
    const nhg_inode_key key = inode_key_of(path);
    auto [it, inserted] = by_slot.emplace(nhg_credential_filter_slot(key.dev, key.ino), path);
    if (!inserted) {
      first = it->second;
      second = path;
    }
  }
  ASSERT_FALSE(second.empty()) << "no two of 20000 files share a filter slot";
  const nhg_inode_key first_key = inode_key_of(first);
  const nhg_inode_key second_key = inode_key_of(second);
  ASSERT_TRUE(this->sensor_->credential_tables()
                  .upsert_credential(first_key, {.credential_id = 41, .class_id = 1})
                  .has_value());
  ASSERT_TRUE(this->sensor_->credential_tables()
                  .upsert_credential(second_key, {.credential_id = 42, .class_id = 1})
                  .has_value());
  // Upserting an existing key again must not count it twice.
  ASSERT_TRUE(this->sensor_->credential_tables()
                  .upsert_credential(first_key, {.credential_id = 41, .class_id = 1})
                  .has_value());

  auto read_both = [&] {
    auto events = this->run_child([&] {
      int rc = read_all(open(first.c_str(), O_RDONLY));
      return rc | read_all(open(second.c_str(), O_RDONLY));
    });
    std::set<uint32_t> ids;
    for (const auto& open : this->file_events(events)) ids.insert(open.credential_id);
    return ids;
  };
  EXPECT_EQ(read_both(), (std::set<uint32_t>{41, 42}));
  ASSERT_TRUE(this->sensor_->credential_tables().remove_credential(first_key).has_value());
  EXPECT_EQ(read_both(), (std::set<uint32_t>{42}));
  ASSERT_TRUE(this->sensor_->credential_tables().remove_credential(second_key).has_value());
  EXPECT_EQ(read_both(), (std::set<uint32_t>{}));
}

TYPED_TEST(SensorTest, DetectionMapsArePinned) {
  for (const char* map : {"nhg_credentials", "nhg_candidate_names", "nhg_candidate_pairs", "nhg_counters",
                          "nhg_credential_filter", "nhg_candidate_filter"}) {
    EXPECT_TRUE(fs::exists(this->pin_dir_ + "/" + map)) << map;
  }
  auto listed = this->sensor_->credential_tables().credentials();
  ASSERT_TRUE(listed.has_value());
  bool found = false;
  for (const auto& [key, value] : *listed) {
    if (key.ino == this->key_.ino && key.dev == this->key_.dev) found = value.credential_id == kCredentialId;
  }
  EXPECT_TRUE(found);
}

// An agent that starts on tables pinned by an earlier one (a restart, or an upgrade from a build
// without the prefilters) must rebuild the filters from the tables before its programs run:
// here the filter pins are removed, as if they had never existed, and a credential and a candidate
// name added by the first sensor are still seen by the second.
TEST(SensorRestart, FiltersAreRebuiltFromPinnedTables) {
  ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
  const std::string pin_dir = "/sys/fs/bpf/nhiguard-test-" + std::to_string(getpid()) + "-restart";
  const fs::path dir = fs::path("/tmp") / ("nhiguard-bpf-" + std::to_string(getpid()) + "-restart");
  // Removing the pins detaches the programs whose links they hold, also when an assertion ends the
  // test early.
  struct RemoveOnExit {
    std::vector<fs::path> paths;
    ~RemoveOnExit() {
      std::error_code ignored;
      for (const auto& path : paths) fs::remove_all(path, ignored);
    }
  } cleanup{{pin_dir, dir}};
  fs::create_directories(dir / ".aws");
  const std::string credential = (dir / ".aws/credentials").string();
  write_file(credential, "[default]\n");
  const nhg_inode_key key = inode_key_of(credential);

  std::mutex mutex;
  std::vector<FileOpenEvent> opens;
  auto handler = [&](std::span<const std::byte> record) {
    auto event = nhiguard::events::decode_kernel_event(record);
    if (!event) return;
    if (auto* open = std::get_if<FileOpenEvent>(&*event)) {
      std::lock_guard lock(mutex);
      opens.push_back(*open);
    }
  };
  nhiguard::kernel::SensorOptions options{.pin_dir = pin_dir, .ringbuf_bytes = 1u << 20, .ignore_tgid = 0};
  {
    auto first = nhiguard::kernel::KernelSensor::start(options, handler);
    ASSERT_TRUE(first.has_value()) << first.error().message;
    ASSERT_TRUE((*first)->credential_tables().upsert_credential(key, {.credential_id = 5, .class_id = 1}).has_value());
    ASSERT_TRUE((*first)->credential_tables().set_candidate_names({{"", "late-token"}}).has_value());
  }
  for (const char* filter : {"nhg_credential_filter", "nhg_candidate_filter"}) {
    ASSERT_EQ(unlink((pin_dir + "/" + filter).c_str()), 0) << filter;
  }
  auto second = nhiguard::kernel::KernelSensor::start(options, handler);
  ASSERT_TRUE(second.has_value()) << second.error().message;

  const std::string late = (dir / "late-token").string();
  pid_t pid = fork();
  if (pid == 0) {
    int rc = read_all(open(credential.c_str(), O_RDONLY));
    int fd = open(late.c_str(), O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) close(fd);
    _exit(rc | (fd < 0 ? 2 : 0));
  }
  EXPECT_EQ(wait_for_exit(pid), 0);
  bool saw_credential = false;
  bool saw_candidate = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((!saw_credential || !saw_candidate) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE((*second)->poll(50).has_value());
    std::lock_guard lock(mutex);
    for (const auto& open : opens) {
      if (open.process.tgid != static_cast<uint32_t>(pid)) continue;
      saw_credential |= open.by_inode && open.credential_id == 5;
      saw_candidate |= !open.by_inode && open.name == "late-token";
    }
  }
  EXPECT_TRUE(saw_credential) << "the pinned credential was not matched after the restart";
  EXPECT_TRUE(saw_candidate) << "the pinned candidate name was not matched after the restart";
  second->reset();
}

}  // namespace
