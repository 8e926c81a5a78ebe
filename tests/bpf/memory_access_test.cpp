// Ways around the credential table that do not open the credential file: reaching into the memory
// of a process that read it (ptrace attach/seize, process_vm_readv, /proc/PID/mem and environ), and
// reading the disk under the file system (a block device opened for reading). The sensor is loaded
// for real; a "holder" child reads a planted credential (and so is tainted) and waits, and an
// accessor child reaches into it: each way must be exactly one record naming both.
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "sensor_harness.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::events::BlockDeviceOpenEvent;
using nhiguard::events::KernelEvent;
using nhiguard::events::MemoryAccessEvent;
using nhiguard::events::MemoryAccessHow;
using nhiguard::testing::DirectReads;
using nhiguard::testing::ProbeReads;
using nhiguard::testing::SensorHarness;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::VariantNames;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 31;

// What the holder copied out of the credential: the bytes process_vm_readv goes after. A global so
// that the accessor, forked from the same image, knows its address.
char g_secret[64];

nhg_inode_key inode_key_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return nhg_inode_key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
}

// A process that read the credential and then waits (with a second thread, for the per-thread
// ways in) until it is killed.
struct Holder {
  pid_t pid = 0;
  pid_t thread_tid = 0;
};

template <typename Variant>
class MemoryAccessTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (Variant::kDirect && !nhiguard::testing::kernel_has_direct_reads()) {
      skip_reason_ = "this kernel lacks bpf_rdonly_cast (6.2+): the direct variant cannot load here";
      return;
    }
    harness_ = SensorHarness::start("mem-" + VariantNames::GetName<Variant>(0), Variant::kDirect);
  }

  static void TearDownTestSuite() { harness_.reset(); }

  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(harness_);
    harness_->clear();
    dir_ = fs::path("/tmp") / ("nhiguard-mem-" + std::to_string(getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / ".aws");
    credential_ = (dir_ / ".aws/credentials").string();
    std::ofstream(credential_) << "[default]\naws_secret_access_key = EXAMPLEKEYEXAMPLEKEY\n";
    key_ = inode_key_of(credential_);
    ASSERT_TRUE(harness_->sensor()
                    .credential_tables()
                    .upsert_credential(key_, {.credential_id = kCredentialId, .class_id = 1})
                    .has_value());
    cgroup_ = std::make_unique<TestCgroup>("payments.service");
  }

  void TearDown() override {
    if (!harness_) return;
    for (pid_t pid : holders_) {
      kill(pid, SIGKILL);
      wait_for_exit(pid);
    }
    cgroup_.reset();
    (void)harness_->sensor().credential_tables().remove_credential(key_);
    fs::remove_all(dir_);
  }

  // Starts a holder. read_credential false: an untainted process of the same shape.
  Holder start_holder(bool read_credential = true) {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    const std::string path = credential_;
    pid_t pid = spawn_in_cgroup(*cgroup_, [&]() -> int {
      close(ready[0]);
      if (read_credential) {
        int fd = open(path.c_str(), O_RDONLY);
        if (fd < 0) return 20;
        if (read(fd, g_secret, sizeof(g_secret) - 1) <= 0) return 21;
        close(fd);
      }
      std::atomic<pid_t> tid{0};
      std::thread waiter([&] {
        tid = gettid();
        for (;;) pause();
      });
      while (tid == 0) std::this_thread::yield();
      const pid_t reported = tid;
      if (write(ready[1], &reported, sizeof(reported)) != sizeof(reported)) return 22;
      for (;;) pause();
    });
    close(ready[1]);
    Holder holder{.pid = pid};
    EXPECT_EQ(read(ready[0], &holder.thread_tid, sizeof(holder.thread_tid)),
              static_cast<ssize_t>(sizeof(holder.thread_tid)));
    close(ready[0]);
    holders_.push_back(pid);
    return holder;
  }

  // Runs body in a child in the test cgroup; every event of that child.
  std::vector<KernelEvent> run_accessor(const std::function<int()>& body) {
    pid_t pid = spawn_in_cgroup(*cgroup_, body);
    EXPECT_EQ(wait_for_exit(pid), 0);
    accessor_pid_ = pid;
    return harness_->events_of({static_cast<uint32_t>(pid)});
  }

  template <typename T>
  static std::vector<T> of_type(const std::vector<KernelEvent>& events) {
    return SensorHarness::of_type<T>(events);
  }

  // Exactly one memory access by the accessor into the holder, by `how`.
  MemoryAccessEvent expect_one_access(const std::vector<KernelEvent>& events, const Holder& holder, MemoryAccessHow how,
                                      pid_t named_tid) {
    auto accesses = of_type<MemoryAccessEvent>(events);
    EXPECT_EQ(accesses.size(), 1u);
    if (accesses.empty()) return {};
    const auto& a = accesses[0];
    EXPECT_EQ(a.how, how);
    EXPECT_EQ(a.process.tgid, static_cast<uint32_t>(accessor_pid_));
    EXPECT_EQ(a.process.cgroup_id, cgroup_->id());
    EXPECT_EQ(a.target_tgid, static_cast<uint32_t>(holder.pid));
    EXPECT_EQ(a.target_tid, static_cast<uint32_t>(named_tid));
    EXPECT_NE(a.target_start_ns, 0u);
    EXPECT_EQ(a.taint_credential_id, kCredentialId);
    EXPECT_EQ(a.taint_source_tgid, static_cast<uint32_t>(holder.pid));
    EXPECT_NE(a.tainted_at_ns, 0u);
    return a;
  }

  static inline std::string skip_reason_;
  static inline std::unique_ptr<SensorHarness> harness_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> cgroup_;
  std::vector<pid_t> holders_;
  pid_t accessor_pid_ = 0;
};

using Variants = ::testing::Types<DirectReads, ProbeReads>;
TYPED_TEST_SUITE(MemoryAccessTest, Variants, VariantNames);

// Attaches, waits for the stop and detaches: the tracer could now read the tracee's memory.
int ptrace_attach_and_detach(long request, pid_t tid) {
  if (ptrace(static_cast<__ptrace_request>(request), tid, nullptr, nullptr) != 0) return 30;
  if (request == PTRACE_SEIZE && ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) return 31;
  int status = 0;
  if (waitpid(tid, &status, __WALL) != tid) return 32;
  return ptrace(PTRACE_DETACH, tid, nullptr, nullptr) == 0 ? 0 : 33;
}

TYPED_TEST(MemoryAccessTest, PtraceAttach) {
  const Holder holder = this->start_holder();
  auto events = this->run_accessor([&] { return ptrace_attach_and_detach(PTRACE_ATTACH, holder.pid); });
  auto access = this->expect_one_access(events, holder, MemoryAccessHow::ptrace_attach, holder.pid);
  EXPECT_EQ(access.result, 0);
}

// Seizing a thread other than the leader: the record names the thread's process.
TYPED_TEST(MemoryAccessTest, PtraceSeizeOfANonLeaderThread) {
  const Holder holder = this->start_holder();
  ASSERT_NE(holder.thread_tid, holder.pid);
  auto events = this->run_accessor([&] { return ptrace_attach_and_detach(PTRACE_SEIZE, holder.thread_tid); });
  auto access = this->expect_one_access(events, holder, MemoryAccessHow::ptrace_seize, holder.thread_tid);
  EXPECT_EQ(access.result, 0);
}

TYPED_TEST(MemoryAccessTest, ProcessVmReadv) {
  const Holder holder = this->start_holder();
  auto events = this->run_accessor([&] {
    char copy[sizeof(g_secret)] = {};
    iovec local{.iov_base = copy, .iov_len = sizeof(copy)};
    iovec remote{.iov_base = g_secret, .iov_len = sizeof(g_secret)};
    const ssize_t n = process_vm_readv(holder.pid, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(sizeof(copy))) return 40;
    return std::strstr(copy, "aws_secret_access_key") ? 0 : 41;  // the bytes really moved
  });
  auto access = this->expect_one_access(events, holder, MemoryAccessHow::process_vm_readv, holder.pid);
  EXPECT_EQ(access.result, static_cast<int64_t>(sizeof(g_secret)));
}

int read_proc_file(const std::string& path, int flags = O_RDONLY) {
  int fd = open(path.c_str(), flags);
  if (fd < 0) return 50;
  // At the secret's address: what /proc/PID/mem serves there (an unmapped offset is EIO); environ
  // just ends before it.
  char buf[64];
  const bool ok = pread(fd, buf, sizeof(buf), reinterpret_cast<off_t>(g_secret)) >= 0;
  close(fd);
  return ok ? 0 : 51;
}

TYPED_TEST(MemoryAccessTest, ProcPidEnviron) {
  const Holder holder = this->start_holder();
  const std::string path = "/proc/" + std::to_string(holder.pid) + "/environ";
  auto events = this->run_accessor([&] { return read_proc_file(path); });
  auto access = this->expect_one_access(events, holder, MemoryAccessHow::proc_environ, holder.pid);
  EXPECT_GE(access.result, 0);
  EXPECT_EQ(access.f_mode & 0x3, 0x1u);
}

TYPED_TEST(MemoryAccessTest, ProcPidMem) {
  const Holder holder = this->start_holder();
  const std::string path = "/proc/" + std::to_string(holder.pid) + "/mem";
  auto events = this->run_accessor([&] {
    int fd = open(path.c_str(), O_RDWR);
    if (fd < 0) return 52;
    char copy[sizeof(g_secret)] = {};
    const bool ok = pread(fd, copy, sizeof(copy), reinterpret_cast<off_t>(g_secret)) == sizeof(copy) &&
                    std::strstr(copy, "aws_secret_access_key");
    close(fd);
    return ok ? 0 : 53;
  });
  auto access = this->expect_one_access(events, holder, MemoryAccessHow::proc_mem, holder.pid);
  EXPECT_EQ(access.f_mode & 0x3, 0x3u) << "opened for writing too: code injection";
}

TYPED_TEST(MemoryAccessTest, ProcTaskTidMemOfANonLeaderThread) {
  const Holder holder = this->start_holder();
  const std::string path =
      "/proc/" + std::to_string(holder.pid) + "/task/" + std::to_string(holder.thread_tid) + "/mem";
  auto events = this->run_accessor([&] { return read_proc_file(path); });
  this->expect_one_access(events, holder, MemoryAccessHow::proc_mem, holder.thread_tid);
}

// The same ways into a process that read nothing, and a process's view of its own memory, are no
// records: the prefilter stays on the taint.
TYPED_TEST(MemoryAccessTest, UntaintedTargetsAndSelfAreNoRecords) {
  const Holder untainted = this->start_holder(false);
  const std::string environ_path = "/proc/" + std::to_string(untainted.pid) + "/environ";
  const std::string mem_path = "/proc/" + std::to_string(untainted.pid) + "/mem";
  auto events = this->run_accessor([&] {
    if (read_proc_file(environ_path) != 0 || read_proc_file(mem_path) != 0) return 60;
    if (ptrace_attach_and_detach(PTRACE_ATTACH, untainted.pid) != 0) return 61;
    // The accessor taints itself and then looks at its own memory.
    int fd = open(this->credential_.c_str(), O_RDONLY);
    if (fd < 0) return 62;
    close(fd);
    if (read_proc_file("/proc/self/environ") != 0 || read_proc_file("/proc/self/mem") != 0) return 63;
    return 0;
  });
  EXPECT_TRUE(this->template of_type<MemoryAccessEvent>(events).empty());
}

// A loop device over a temporary file (the test's own block device), opened for reading: the file
// system's permissions on every file of that disk are bypassed, so the open is a record.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& backing) {
    int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (control < 0) {
      error_ = std::string("open /dev/loop-control: ") + strerror(errno);
      return;
    }
    index_ = ioctl(control, LOOP_CTL_GET_FREE);
    close(control);
    if (index_ < 0) {
      error_ = std::string("LOOP_CTL_GET_FREE: ") + strerror(errno);
      return;
    }
    path_ = "/dev/loop" + std::to_string(index_);
    int file = open(backing.c_str(), O_RDWR | O_CLOEXEC);
    int device = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (file < 0 || device < 0 || ioctl(device, LOOP_SET_FD, file) != 0) {
      error_ = path_ + " LOOP_SET_FD: " + strerror(errno);
    } else {
      attached_ = true;
    }
    if (file >= 0) close(file);
    if (device >= 0) close(device);
  }
  ~LoopDevice() {
    if (!attached_) return;
    int device = open(path_.c_str(), O_RDWR | O_CLOEXEC);
    if (device >= 0) {
      ioctl(device, LOOP_CLR_FD, 0);
      close(device);
    }
  }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  int index_ = -1;
  std::string path_;
  std::string error_;
  bool attached_ = false;
};

TYPED_TEST(MemoryAccessTest, BlockDeviceOpenForReading) {
  const std::string backing = (this->dir_ / "disk.img").string();
  {
    std::ofstream out(backing);
    out << std::string(1 << 20, '\0');
  }
  LoopDevice loop(backing);
  ASSERT_TRUE(loop.error().empty()) << loop.error();
  struct stat st{};
  ASSERT_EQ(stat(loop.path().c_str(), &st), 0);
  ASSERT_TRUE(S_ISBLK(st.st_mode));
  const std::string device = loop.path();
  auto events = this->run_accessor([&] {
    int fd = open(device.c_str(), O_RDONLY);
    if (fd < 0) return 70;
    char sector[512];
    const bool ok = read(fd, sector, sizeof(sector)) == sizeof(sector);
    close(fd);
    return ok ? 0 : 71;
  });
  auto opens = this->template of_type<BlockDeviceOpenEvent>(events);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].process.tgid, static_cast<uint32_t>(this->accessor_pid_));
  EXPECT_EQ(opens[0].name, fs::path(device).filename().string());
  EXPECT_EQ(opens[0].major(), major(st.st_rdev));
  EXPECT_EQ(opens[0].minor(), minor(st.st_rdev));
  EXPECT_EQ(opens[0].f_mode & 0x3, 0x1u);
  EXPECT_GE(opens[0].fd, 0);
}

// Opening a block device for writing only (a tool that formats it) reads nothing: no record.
TYPED_TEST(MemoryAccessTest, BlockDeviceWriteOnlyOpenIsNoRecord) {
  const std::string backing = (this->dir_ / "disk.img").string();
  {
    std::ofstream out(backing);
    out << std::string(1 << 20, '\0');
  }
  LoopDevice loop(backing);
  ASSERT_TRUE(loop.error().empty()) << loop.error();
  const std::string device = loop.path();
  auto events = this->run_accessor([&] {
    int fd = open(device.c_str(), O_WRONLY);
    if (fd < 0) return 72;
    close(fd);
    return 0;
  });
  EXPECT_TRUE(this->template of_type<BlockDeviceOpenEvent>(events).empty());
}

}  // namespace
