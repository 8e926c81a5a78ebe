// The read path without LSM (bpf/readpath.bpf.h), loaded for real: the ways a credential is read
// without an open syscall of the reader. An fd inherited by an exec'd program is an event at its
// first read; an open through io_uring (raw io_uring_setup/io_uring_enter, no liburing) is an
// event, and under a deny the ring is refused or its opener killed; a clone(CLONE_FILES) sibling
// of a denied opener, moved to a cgroup the deny does not cover, is killed before it reads. Needs
// root.
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/openat2.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using nhiguard::events::FileOpenEvent;
using nhiguard::events::KernelEvent;
using nhiguard::events::OpenSyscall;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 23;
constexpr char kSecret[] = "[default]\naws_secret_access_key = READPATHSECRET\n";

uint64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

bool is_read_family(OpenSyscall syscall) {
  switch (syscall) {
    case OpenSyscall::read:
    case OpenSyscall::pread64:
    case OpenSyscall::readv:
    case OpenSyscall::preadv:
    case OpenSyscall::mmap:
    case OpenSyscall::sendfile:
    case OpenSyscall::splice:
    case OpenSyscall::copy_file_range:
      return true;
    default:
      return false;
  }
}

// A minimal io_uring: the rings mapped as io_uring_setup(2) describes, one SQE at a time.
class RawRing {
 public:
  // entries: ring size; sqpoll_idle_ms > 0 makes a SQPOLL ring (submissions need no syscall).
  bool setup(unsigned entries, unsigned sqpoll_idle_ms = 0) {
    io_uring_params params{};
    if (sqpoll_idle_ms > 0) {
      params.flags = IORING_SETUP_SQPOLL;
      params.sq_thread_idle = sqpoll_idle_ms;
    }
    fd_ = static_cast<int>(syscall(SYS_io_uring_setup, entries, &params));
    if (fd_ < 0) return false;
    sq_bytes_ = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    cq_bytes_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
    sq_ = mmap(nullptr, sq_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQ_RING);
    cq_ = mmap(nullptr, cq_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_CQ_RING);
    sqes_ = static_cast<io_uring_sqe*>(mmap(nullptr, params.sq_entries * sizeof(io_uring_sqe), PROT_READ | PROT_WRITE,
                                            MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQES));
    if (sq_ == MAP_FAILED || cq_ == MAP_FAILED || sqes_ == MAP_FAILED) return false;
    auto* sq = static_cast<char*>(sq_);
    auto* cq = static_cast<char*>(cq_);
    sq_tail_ = reinterpret_cast<std::atomic<unsigned>*>(sq + params.sq_off.tail);
    sq_mask_ = *reinterpret_cast<unsigned*>(sq + params.sq_off.ring_mask);
    sq_array_ = reinterpret_cast<unsigned*>(sq + params.sq_off.array);
    sq_flags_ = reinterpret_cast<std::atomic<unsigned>*>(sq + params.sq_off.flags);
    cq_head_ = reinterpret_cast<std::atomic<unsigned>*>(cq + params.cq_off.head);
    cq_tail_ = reinterpret_cast<std::atomic<unsigned>*>(cq + params.cq_off.tail);
    cq_mask_ = *reinterpret_cast<unsigned*>(cq + params.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + params.cq_off.cqes);
    return true;
  }

  // Queues an IORING_OP_OPENAT of path (read-only) and publishes it.
  void queue_openat(const char* path, uint8_t opcode = IORING_OP_OPENAT) {
    queue(opcode, [&](io_uring_sqe* sqe) {
      sqe->fd = AT_FDCWD;
      sqe->addr = reinterpret_cast<uint64_t>(path);
      if (opcode == IORING_OP_OPENAT2) {
        how_ = open_how{.flags = O_RDONLY, .mode = 0, .resolve = 0};
        sqe->off = reinterpret_cast<uint64_t>(&how_);
        sqe->len = sizeof(how_);
      } else {
        sqe->open_flags = O_RDONLY;
      }
    });
  }

  // Queues an IORING_OP_READ of len bytes of fd into buffer and publishes it.
  void queue_read(int fd, void* buffer, unsigned len) {
    queue(IORING_OP_READ, [&](io_uring_sqe* sqe) {
      sqe->fd = fd;
      sqe->addr = reinterpret_cast<uint64_t>(buffer);
      sqe->len = len;
    });
  }

  // Queues an IORING_OP_NOP and publishes it.
  void queue_nop() {
    queue(IORING_OP_NOP, [](io_uring_sqe*) {});
  }

  // io_uring_enter for a SQPOLL ring whose poller sleeps: wakes it.
  int wake_poller() {
    return static_cast<int>(syscall(SYS_io_uring_enter, fd_, 0, 0, IORING_ENTER_SQ_WAKEUP, nullptr, 0));
  }

  // io_uring_enter: submit what is queued and wait for one completion.
  int submit_and_wait() {
    return static_cast<int>(syscall(SYS_io_uring_enter, fd_, 1, 1, IORING_ENTER_GETEVENTS, nullptr, 0));
  }

  bool sqpoll_needs_wakeup() const { return (sq_flags_->load(std::memory_order_acquire) & IORING_SQ_NEED_WAKEUP) != 0; }

  // The next completion's result, waiting up to timeout by spinning on the ring (no syscall).
  bool wait_cqe(int* res, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const unsigned head = cq_head_->load(std::memory_order_relaxed);
    while (cq_tail_->load(std::memory_order_acquire) == head) {
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
    *res = cqes_[head & cq_mask_].res;
    cq_head_->store(head + 1, std::memory_order_release);
    return true;
  }

  int fd() const { return fd_; }

 private:
  // Fills the next SQE (zeroed, then opcode and what `fill` sets) and publishes it to the kernel.
  void queue(uint8_t opcode, const std::function<void(io_uring_sqe*)>& fill) {
    const unsigned tail = sq_tail_->load(std::memory_order_relaxed);
    const unsigned index = tail & sq_mask_;
    io_uring_sqe* sqe = &sqes_[index];
    std::memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = opcode;
    sqe->user_data = 42;
    fill(sqe);
    sq_array_[index] = index;
    sq_tail_->store(tail + 1, std::memory_order_release);
  }

  int fd_ = -1;
  size_t sq_bytes_ = 0;
  size_t cq_bytes_ = 0;
  void* sq_ = MAP_FAILED;
  void* cq_ = MAP_FAILED;
  io_uring_sqe* sqes_ = static_cast<io_uring_sqe*>(MAP_FAILED);
  std::atomic<unsigned>* sq_tail_ = nullptr;
  std::atomic<unsigned>* sq_flags_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* sq_array_ = nullptr;
  std::atomic<unsigned>* cq_head_ = nullptr;
  std::atomic<unsigned>* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  open_how how_{};
};

class ReadPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(nhiguard::kernel::check_kernel_btf().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(nhiguard::kernel::ensure_tracefs().has_value());
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-readpath-" + std::to_string(getpid());
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
    if (!pin_dir_.empty()) fs::remove_all(pin_dir_);
  }

  void SetUp() override {
    ASSERT_TRUE(sensor_);
    {
      std::lock_guard lock(mutex_);
      events_.clear();
    }
    dir_ = fs::path("/tmp") / ("nhiguard-bpf-readpath-" + std::to_string(getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    credential_ = (dir_ / "credentials").string();
    std::ofstream(credential_) << kSecret;
    struct stat st{};
    ASSERT_EQ(stat(credential_.c_str(), &st), 0);
    key_ = nhg_inode_key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
    ASSERT_TRUE(sensor_->credential_tables()
                    .upsert_credential(key_, {.credential_id = kCredentialId, .class_id = 1})
                    .has_value());
    service_ = std::make_unique<TestCgroup>("payments.service");
    other_ = std::make_unique<TestCgroup>("elsewhere.service");
  }

  void TearDown() override {
    if (!sensor_) return;
    if (denied_) (void)sensor_->enforcement().remove_credential_deny(deny_key());
    service_.reset();
    other_.reset();
    (void)sensor_->credential_tables().remove_credential(key_);
    fs::remove_all(dir_);
  }

  nhg_deny_key deny_key() const { return {.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()}; }

  void deny_service() {
    ASSERT_TRUE(sensor_->enforcement()
                    .apply_credential_deny(deny_key(), {.expires_at_ns = boot_ns() + 60'000'000'000ull, .rule_id = 3})
                    .has_value());
    denied_ = true;
  }

  // Every credential record collected until the exit of `until_tgid` (records of one process reach
  // the ring buffer in order, and the processes of a test exit before their parent).
  std::vector<FileOpenEvent> credential_events_until_exit_of(pid_t until_tgid) {
    std::vector<FileOpenEvent> found;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(sensor_->poll(50).has_value());
      std::lock_guard lock(mutex_);
      for (const auto& event : events_) {
        if (auto* exit = std::get_if<nhiguard::events::ExitEvent>(&event);
            exit && exit->process.tgid == static_cast<uint32_t>(until_tgid)) {
          exited = true;
        }
        if (auto* open = std::get_if<FileOpenEvent>(&event); open && open->credential_id == kCredentialId) {
          found.push_back(*open);
        }
      }
      events_.clear();
    }
    EXPECT_TRUE(exited) << "no exit event for " << until_tgid;
    return found;
  }

  // Bytes of the secret a child reported through `fd` (the count it read, written after the read).
  static ssize_t reported_bytes(int fd) {
    ssize_t n = 0;
    const ssize_t got = read(fd, &n, sizeof(n));
    return got == sizeof(n) ? n : 0;
  }

  // A child of the service cgroup runs `before` (a non-zero result is its exit status), then waits
  // while the test applies the deny, then runs `after`, which returns how many bytes of the secret it
  // read. Returns the child's pid and exit status; *read_bytes is what it reported (0 when it died
  // before reporting).
  std::pair<pid_t, int> run_across_a_deny(const std::function<int()>& before, const std::function<ssize_t()>& after,
                                          ssize_t* read_bytes) {
    int ready[2];
    int go[2];
    int result[2];
    EXPECT_EQ(pipe(ready), 0);
    EXPECT_EQ(pipe(go), 0);
    EXPECT_EQ(pipe(result), 0);
    pid_t child = spawn_in_cgroup(*service_, [&] {
      close(ready[0]);
      close(go[1]);
      close(result[0]);
      if (const int failed = before(); failed != 0) return failed;
      char byte = 1;
      if (write(ready[1], &byte, 1) != 1) return 11;
      if (read(go[0], &byte, 1) != 1) return 12;
      const ssize_t n = after();
      (void)!write(result[1], &n, sizeof(n));
      return 0;
    });
    close(ready[1]);
    close(go[0]);
    close(result[1]);
    char byte = 0;
    if (read(ready[0], &byte, 1) == 1) {
      deny_service();
      EXPECT_EQ(write(go[1], &byte, 1), 1);
    } else {
      ADD_FAILURE() << "the child failed before the deny";
    }
    close(ready[0]);
    close(go[1]);
    const int status = wait_for_exit(child);
    *read_bytes = reported_bytes(result[0]);
    close(result[0]);
    return {child, status};
  }

  static inline std::unique_ptr<nhiguard::kernel::KernelSensor> sensor_;
  static inline std::string pin_dir_;
  static inline std::mutex mutex_;
  static inline std::vector<KernelEvent> events_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> service_;
  std::unique_ptr<TestCgroup> other_;
  bool denied_ = false;
};

// Evasion: open the credential in one process and let another program read it through the
// inherited fd (`cmd < ~/.aws/credentials`). The exec'd reader opened nothing: its first read is
// the event, once, however many reads it makes.
TEST_F(ReadPathTest, InheritedFdReadByAnExecdProgramIsOneEvent) {
  pid_t opener = spawn_in_cgroup(*service_, [&] {
    const int fd = open(credential_.c_str(), O_RDONLY);  // not O_CLOEXEC: the child inherits it
    if (fd < 0) return 10;
    const pid_t reader = fork();
    if (reader == 0) {
      if (dup2(fd, STDIN_FILENO) < 0) _exit(11);
      // dd bs=1: one read(2) per byte, dozens of reads of the one fd.
      execl("/bin/dd", "dd", "bs=1", "status=none", "of=/dev/null", nullptr);
      _exit(127);
    }
    close(fd);
    return wait_for_exit(reader);
  });
  ASSERT_EQ(wait_for_exit(opener), 0);
  const auto events = credential_events_until_exit_of(opener);
  std::vector<FileOpenEvent> reads;
  bool saw_open = false;
  for (const auto& event : events) {
    if (event.process.tgid == static_cast<uint32_t>(opener)) saw_open |= event.syscall == OpenSyscall::openat;
    if (is_read_family(event.syscall)) reads.push_back(event);
  }
  EXPECT_TRUE(saw_open);
  ASSERT_EQ(reads.size(), 1u) << "one record for the exec'd reader, not one per read(2)";
  const auto& read_event = reads[0];
  EXPECT_EQ(read_event.syscall, OpenSyscall::read);
  EXPECT_NE(read_event.process.tgid, static_cast<uint32_t>(opener));
  EXPECT_EQ(read_event.process.ppid, static_cast<uint32_t>(opener));
  EXPECT_EQ(read_event.process.comm, "dd");
  EXPECT_EQ(read_event.process.cgroup_id, service_->id());
  EXPECT_EQ(read_event.fd, STDIN_FILENO);
  EXPECT_EQ(read_event.ino, key_.ino);
  EXPECT_EQ(read_event.name, "credentials");
  EXPECT_TRUE(read_event.readable());
  EXPECT_FALSE(read_event.denied);
  ASSERT_FALSE(read_event.cmdline.empty());
  EXPECT_EQ(read_event.cmdline[0], "dd");
}

// Evasion: an unrelated process gets the opener's fd without opening anything, by SCM_RIGHTS over
// a unix socket or by pidfd_getfd(2), and reads it. Its first read is the event.
TEST_F(ReadPathTest, FdReceivedByScmRightsOrPidfdGetfdIsAnEventAtItsFirstRead) {
  for (const bool by_pidfd : {false, true}) {
    SCOPED_TRACE(by_pidfd ? "pidfd_getfd" : "SCM_RIGHTS");
    int channel[2];
    int done[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, channel), 0);
    ASSERT_EQ(pipe(done), 0);
    pid_t holder = spawn_in_cgroup(*service_, [&] {
      close(done[1]);
      const int fd = open(credential_.c_str(), O_RDONLY);
      if (fd < 0) return 10;
      char tag = 'f';
      iovec iov{.iov_base = &tag, .iov_len = 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{.msg_iov = &iov, .msg_iovlen = 1};
      if (by_pidfd) {
        tag = static_cast<char>(fd);  // the number the receiver asks pidfd_getfd for
      } else {
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
      }
      if (sendmsg(channel[0], &msg, 0) != 1) return 11;
      char byte;
      return read(done[0], &byte, 1) >= 0 ? 0 : 12;  // stays alive until the receiver is done
    });
    pid_t receiver = spawn_in_cgroup(*other_, [&] {
      char tag = 0;
      iovec iov{.iov_base = &tag, .iov_len = 1};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
      if (recvmsg(channel[1], &msg, 0) != 1) return 20;
      int fd = -1;
      if (by_pidfd) {
        const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, holder, 0));
        if (pidfd < 0) return 21;
        fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, static_cast<int>(tag), 0));
      } else if (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg && cmsg->cmsg_type == SCM_RIGHTS) {
        std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
      }
      if (fd < 0) return 22;
      char buf[64];
      int rc = 0;
      for (int i = 0; i < 3; ++i) rc |= pread(fd, buf, sizeof(buf), 0) > 0 ? 0 : 23;
      return rc;
    });
    EXPECT_EQ(wait_for_exit(receiver), 0);
    close(done[1]);
    EXPECT_EQ(wait_for_exit(holder), 0);
    close(done[0]);
    close(channel[0]);
    close(channel[1]);
    std::vector<FileOpenEvent> reads;
    for (const auto& event : credential_events_until_exit_of(holder)) {
      if (event.process.tgid == static_cast<uint32_t>(receiver)) reads.push_back(event);
    }
    ASSERT_EQ(reads.size(), 1u) << "one record for the receiver, at its first read";
    EXPECT_EQ(reads[0].syscall, OpenSyscall::pread64);
    EXPECT_EQ(reads[0].process.cgroup_id, other_->id());
    EXPECT_EQ(reads[0].ino, key_.ino);
  }
}

// The opener's own reads are covered by its open: no read records for it, whichever syscall.
TEST_F(ReadPathTest, TheOpenersOwnReadsAreNoEvents) {
  pid_t opener = spawn_in_cgroup(*service_, [&] {
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0) return 10;
    char buf[8];
    for (int i = 0; i < 5; ++i) {
      if (pread(fd, buf, sizeof(buf), i) <= 0) return 11;
    }
    void* mapped = mmap(nullptr, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) return 12;
    munmap(mapped, 4096);
    return 0;
  });
  ASSERT_EQ(wait_for_exit(opener), 0);
  for (const auto& event : credential_events_until_exit_of(opener)) {
    EXPECT_FALSE(is_read_family(event.syscall)) << nhiguard::events::to_string(event.syscall);
  }
}

// Evasion: open the credential through io_uring (IORING_OP_OPENAT), which makes no open syscall.
TEST_F(ReadPathTest, IoUringOpenIsACredentialEvent) {
  for (const uint8_t opcode : {static_cast<uint8_t>(IORING_OP_OPENAT), static_cast<uint8_t>(IORING_OP_OPENAT2)}) {
    SCOPED_TRACE(opcode == IORING_OP_OPENAT ? "IORING_OP_OPENAT" : "IORING_OP_OPENAT2");
    pid_t opener = spawn_in_cgroup(*service_, [&] {
      RawRing ring;
      if (!ring.setup(4)) return 10;
      ring.queue_openat(credential_.c_str(), opcode);
      if (ring.submit_and_wait() != 1) return 11;
      int fd = -1;
      if (!ring.wait_cqe(&fd, std::chrono::seconds(5)) || fd < 0) return 12;
      char buf[16];
      return read(fd, buf, sizeof(buf)) > 0 ? 0 : 13;  // the opener's read: covered by the open
    });
    ASSERT_EQ(wait_for_exit(opener), 0);
    const auto events = credential_events_until_exit_of(opener);
    ASSERT_EQ(events.size(), 1u) << "one record: the io_uring open (its own read is no event)";
    const auto& open = events[0];
    EXPECT_EQ(open.syscall, opcode == IORING_OP_OPENAT ? OpenSyscall::io_uring_openat : OpenSyscall::io_uring_openat2);
    EXPECT_TRUE(open.by_inode);
    EXPECT_EQ(open.process.tgid, static_cast<uint32_t>(opener));
    EXPECT_EQ(open.process.cgroup_id, service_->id());
    EXPECT_EQ(open.ino, key_.ino);
    EXPECT_TRUE(open.readable());
    EXPECT_FALSE(open.denied);
  }
}

// Evasion: read an inherited credential fd through io_uring (IORING_OP_READ), past the read
// syscalls. The completion still holds the file: one record for the reader.
TEST_F(ReadPathTest, IoUringReadOfAnInheritedFdIsAnEvent) {
  pid_t opener = spawn_in_cgroup(*service_, [&] {
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0) return 10;
    const pid_t reader = fork();
    if (reader == 0) {
      RawRing ring;
      if (!ring.setup(4)) _exit(11);
      char buf[64];
      for (int i = 0; i < 3; ++i) {
        ring.queue_read(fd, buf, sizeof(buf));
        int n = -1;
        if (ring.submit_and_wait() != 1 || !ring.wait_cqe(&n, std::chrono::seconds(5)) || n <= 0) _exit(12);
      }
      _exit(0);
    }
    return wait_for_exit(reader);
  });
  ASSERT_EQ(wait_for_exit(opener), 0);
  std::vector<FileOpenEvent> reads;
  for (const auto& event : credential_events_until_exit_of(opener)) {
    if (event.syscall == OpenSyscall::io_uring_read) reads.push_back(event);
  }
  ASSERT_EQ(reads.size(), 1u) << "one record for the reader, not one per io_uring read";
  EXPECT_EQ(reads[0].process.ppid, static_cast<uint32_t>(opener));
  EXPECT_EQ(reads[0].process.cgroup_id, service_->id());
  EXPECT_EQ(reads[0].ino, key_.ino);
  EXPECT_EQ(reads[0].fd, -1);
  EXPECT_FALSE(reads[0].denied);
}

// Evasion under a deny: io_uring opens and reads without the syscalls the deny watches. A process of
// the denied cgroup is killed at io_uring_setup, before a ring exists.
TEST_F(ReadPathTest, IoUringSetupUnderADenyIsKilled) {
  ASSERT_NO_FATAL_FAILURE(deny_service());
  int result[2];
  ASSERT_EQ(pipe(result), 0);
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    close(result[0]);
    RawRing ring;
    const bool made = ring.setup(4);
    const ssize_t marker = made ? -1 : -2;
    (void)!write(result[1], &marker, sizeof(marker));  // never reached: killed in io_uring_setup
    return 0;
  });
  close(result[1]);
  EXPECT_EQ(wait_for_exit(reader), 128 + SIGKILL);
  ssize_t marker = 0;
  EXPECT_EQ(read(result[0], &marker, sizeof(marker)), 0) << "the process outlived io_uring_setup";
  close(result[0]);
  const auto events = credential_events_until_exit_of(reader);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].syscall, OpenSyscall::io_uring_ring);
  EXPECT_TRUE(events[0].denied);
  EXPECT_EQ(events[0].process.tgid, static_cast<uint32_t>(reader));
  EXPECT_EQ(events[0].fd, -1);

  // Another cgroup's io_uring is untouched by the deny.
  pid_t other = spawn_in_cgroup(*other_, [&] {
    RawRing ring;
    return ring.setup(4) ? 0 : 20;
  });
  EXPECT_EQ(wait_for_exit(other), 0);
}

// Evasion under a deny: a SQPOLL ring made before the deny submits an open without any syscall.
// The open's completion kills the process, so it never reads the fd it got.
TEST_F(ReadPathTest, IoUringOpenFromARingMadeBeforeTheDenyIsKilled) {
  RawRing ring;
  ssize_t read_bytes = 0;
  const auto [reader, status] = run_across_a_deny(
      [&] {
        if (!ring.setup(4, /*sqpoll_idle_ms=*/20000)) return 20;
        // A first request (before the deny) gets the poller running; it then polls for 20 s.
        ring.queue_nop();
        if (ring.sqpoll_needs_wakeup() && ring.wake_poller() < 0) return 21;
        int nop = -1;
        return ring.wait_cqe(&nop, std::chrono::seconds(5)) && nop == 0 ? 0 : 22;
      },
      [&]() -> ssize_t {
        ring.queue_openat(credential_.c_str());
        if (ring.sqpoll_needs_wakeup()) return -13;  // the poller slept: the test would not be about SQPOLL
        int fd = -1;
        if (!ring.wait_cqe(&fd, std::chrono::seconds(5))) return -14;
        char buf[64];
        return fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
      },
      &read_bytes);
  EXPECT_EQ(status, 128 + SIGKILL);
  EXPECT_EQ(read_bytes, 0) << "the process read the credential through its ring's open";
  const auto events = credential_events_until_exit_of(reader);
  bool open_denied = false;
  for (const auto& event : events) {
    if (event.process.tgid == static_cast<uint32_t>(reader) && event.syscall == OpenSyscall::io_uring_openat) {
      open_denied = event.denied;
    }
  }
  EXPECT_TRUE(open_denied) << "no denied io_uring_openat record";
}

// Evasion: a clone(CLONE_FILES) sibling shares the opener's fd table, so the fd a deny's kill
// leaves behind is still open in it; the sibling moves to a cgroup the deny does not cover and reads
// the fd after the opener died. It must be killed before it reads a byte.
TEST_F(ReadPathTest, CloneFilesSiblingOfADeniedOpenerIsKilledBeforeItReads) {
  ASSERT_NO_FATAL_FAILURE(deny_service());
  // The sibling is the opener's child; once the opener dies it is reparented to this process.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int result[2];
  int sibling_pid[2];
  ASSERT_EQ(pipe(result), 0);
  ASSERT_EQ(pipe(sibling_pid), 0);
  const std::string other_procs = other_->path() + "/cgroup.procs";
  const ino_t credential_ino = key_.ino;
  pid_t opener = spawn_in_cgroup(*service_, [&] {
    int ready[2];
    if (pipe(ready) != 0) return 10;
    // Raw clone: a new process (not a thread) that shares this one's fd table.
    const long sibling = syscall(SYS_clone, CLONE_FILES | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (sibling < 0) return 11;
    if (sibling == 0) {
      const pid_t parent = getppid();
      std::ofstream(other_procs) << getpid() << std::flush;  // out of the denied cgroup
      (void)!write(ready[1], "r", 1);
      // Wait for the opener's death (the kill of its open), then look for the fd it left.
      while (getppid() == parent) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ssize_t n = -1;
      for (int fd = 0; fd < 256; ++fd) {
        struct stat st{};
        if (fstat(fd, &st) == 0 && st.st_ino == credential_ino) {
          char buf[64];
          n = read(fd, buf, sizeof(buf));
          break;
        }
      }
      (void)!write(result[1], &n, sizeof(n));
      _exit(0);
    }
    const pid_t sibling_tgid = static_cast<pid_t>(sibling);
    (void)!write(sibling_pid[1], &sibling_tgid, sizeof(sibling_tgid));
    char byte;
    if (read(ready[0], &byte, 1) != 1) return 12;
    (void)open(credential_.c_str(), O_RDONLY);  // killed on return: the fd stays in the shared table
    return 13;
  });
  close(result[1]);
  close(sibling_pid[1]);
  EXPECT_EQ(wait_for_exit(opener), 128 + SIGKILL);
  pid_t sibling = -1;
  ASSERT_EQ(read(sibling_pid[0], &sibling, sizeof(sibling)), static_cast<ssize_t>(sizeof(sibling)));
  close(sibling_pid[0]);
  EXPECT_EQ(wait_for_exit(sibling), 128 + SIGKILL) << "the sibling outlived its read of the fd";
  EXPECT_EQ(reported_bytes(result[0]), 0) << "the sibling read the credential";
  close(result[0]);
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);

  const auto events = credential_events_until_exit_of(sibling);
  bool sibling_killed = false;
  for (const auto& event : events) {
    if (event.process.tgid != static_cast<uint32_t>(sibling)) continue;
    EXPECT_TRUE(is_read_family(event.syscall));
    EXPECT_EQ(event.process.cgroup_id, other_->id());
    sibling_killed = event.denied && event.shared_fd_table;
  }
  EXPECT_TRUE(sibling_killed) << "no denied, shared_fd_table record of the sibling";
}

// A deny covers an fd opened before it: the opener's next read is killed, not only its next open.
TEST_F(ReadPathTest, ReadOfAnFdOpenedBeforeTheDenyIsKilled) {
  int fd = -1;
  ssize_t read_bytes = 0;
  const auto [reader, status] = run_across_a_deny(
      [&] {
        fd = open(credential_.c_str(), O_RDONLY);
        return fd >= 0 ? 0 : 20;
      },
      [&] {
        char buf[64];
        return read(fd, buf, sizeof(buf));
      },
      &read_bytes);
  EXPECT_EQ(status, 128 + SIGKILL);
  EXPECT_EQ(read_bytes, 0);
}

}  // namespace
