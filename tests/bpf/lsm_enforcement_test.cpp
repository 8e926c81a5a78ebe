// The BPF LSM layer (bpf/lsm.bpf.c), loaded for real where the kernel runs BPF among its LSMs (the
// kernel tier's guests boot with lsm=lockdown,capability,bpf): a denied credential's open fails
// with EACCES and nobody is killed, its fd is refused to a receiver (SCM_RIGHTS, pidfd_getfd) and
// to a process that already held it, and a blocked cgroup's sockets are refused with the cgroup
// hooks detached, so only the LSM layer can be what refuses. Where BPF LSM is not active (this
// development host refuses LSM programs) the tests skip with the probe's reason; the fallback test
// runs everywhere.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/io_uring.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/clock.h"
#include "events/kernel_event.h"
#include "kernel/feature_probe.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "records/credential_access_record.h"
#include "test_cgroup.h"

namespace fs = std::filesystem;
using namespace nhiguard;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 23;
constexpr uint32_t kDenyRule = 31;
constexpr uint32_t kBlockRule = 37;

uint64_t boot_ns() {
  return clock_ns(CLOCK_BOOTTIME);
}

// Child exit codes: 0 is what each test expects; every other value names what went wrong.
enum ChildResult : int {
  kRefused = 0,
  kOpenedOrReceived = 1,  // the LSM layer let it through
  kWrongErrno = 2,
  kReadBytes = 3,
  kSetupFailed = 4,
};

// One byte and room for one SCM_RIGHTS fd: the message both ends of a passed fd use.
struct FdMessage {
  char byte = 'f';
  iovec iov{};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};

  FdMessage() {
    iov = {.iov_base = &byte, .iov_len = 1};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
  }
};

// Sends fd over a unix socket (SCM_RIGHTS).
bool send_fd(int sock, int fd) {
  FdMessage m;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
  return sendmsg(sock, &m.msg, 0) == 1;
}

// The fd received on sock, -1 when the message came without one (the kernel refused to install
// it), -2 when no message came.
int receive_fd(int sock) {
  FdMessage m;
  if (recvmsg(sock, &m.msg, 0) != 1) return -2;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&m.msg); cmsg; cmsg = CMSG_NXTHDR(&m.msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
      return fd;
    }
  }
  return -1;
}

// A read through fd: kReadBytes when it yields any byte.
int read_through(int fd) {
  char buffer[64];
  const ssize_t n = read(fd, buffer, sizeof(buffer));
  return n > 0 ? kReadBytes : kRefused;
}

// One IORING_OP_OPENAT of path through a ring of this process's own (raw syscalls; no liburing):
// the completion's result, an fd or -errno; INT32_MIN when the ring could not be set up.
int io_uring_openat(const char* path) {
  io_uring_params params{};
  const int ring = static_cast<int>(syscall(__NR_io_uring_setup, 1, &params));
  if (ring < 0) return INT32_MIN;
  const size_t sq_bytes = params.sq_off.array + params.sq_entries * sizeof(uint32_t);
  const size_t cq_bytes = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  auto* sq = static_cast<uint8_t*>(mmap(nullptr, std::max(sq_bytes, cq_bytes), PROT_READ | PROT_WRITE,
                                        MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING));
  auto* sqes = static_cast<io_uring_sqe*>(
      mmap(nullptr, sizeof(io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES));
  // Kernels since 5.4 map both rings at once (IORING_FEAT_SINGLE_MMAP); both guests and this host do.
  if (sq == MAP_FAILED || sqes == MAP_FAILED || !(params.features & IORING_FEAT_SINGLE_MMAP)) return INT32_MIN;
  std::memset(sqes, 0, sizeof(*sqes));
  sqes->opcode = IORING_OP_OPENAT;
  sqes->fd = AT_FDCWD;
  sqes->addr = reinterpret_cast<uintptr_t>(path);
  sqes->open_flags = O_RDONLY;
  auto* tail = reinterpret_cast<uint32_t*>(sq + params.sq_off.tail);
  reinterpret_cast<uint32_t*>(sq + params.sq_off.array)[0] = 0;
  __atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
  if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, nullptr, 0) < 0) return INT32_MIN;
  const uint32_t head = __atomic_load_n(reinterpret_cast<uint32_t*>(sq + params.cq_off.head), __ATOMIC_ACQUIRE);
  const uint32_t mask = *reinterpret_cast<uint32_t*>(sq + params.cq_off.ring_mask);
  return reinterpret_cast<io_uring_cqe*>(sq + params.cq_off.cqes)[head & mask].res;
}

class LsmEnforcementTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(kernel::ensure_tracefs().has_value());
    const kernel::EnforcementPath chosen = kernel::choose_enforcement(kernel::probe_kernel_features());
    if (!chosen.lsm) {
      skip_reason_ = chosen.reason;
      return;
    }
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-lsm-" + std::to_string(getpid());
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20, .lsm_enforcement = true},
                                              [](std::span<const std::byte> record) {
                                                auto event = events::decode_kernel_event(record);
                                                ASSERT_TRUE(event.has_value()) << event.error().message;
                                                std::lock_guard lock(mutex_);
                                                events_.push_back(std::move(*event));
                                              });
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    sensor_ = std::move(*sensor);
    ASSERT_TRUE(sensor_->enforcement_path().lsm)
        << "the probe chose BPF LSM but the sensor fell back: " << sensor_->enforcement_path().reason;
    // Only the LSM layer may refuse a socket call in these tests: the cgroup hooks, which refuse the
    // same blocks, are detached (their pinned links held by this suite's sensor alone).
    for (const char* hook :
         {"egress_connect4", "egress_connect6", "egress_sendmsg4", "egress_sendmsg6", "egress_skb"}) {
      const std::string pin = pin_dir_ + "/links/" + hook;
      const int fd = bpf_obj_get(pin.c_str());
      ASSERT_GE(fd, 0) << pin << ": " << std::strerror(errno);
      ASSERT_EQ(bpf_link_detach(fd), 0) << pin << ": " << std::strerror(errno);
      close(fd);
    }
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
      events_.clear();
    }
    dir_ = fs::path("/tmp") / ("nhiguard-lsm-" + std::to_string(getpid()));
    fs::create_directories(dir_ / ".aws");
    credential_ = (dir_ / ".aws/credentials").string();
    std::ofstream(credential_) << "[default]\naws_secret_access_key = NOT-A-REAL-SECRET\n";
    struct stat st{};
    ASSERT_EQ(stat(credential_.c_str(), &st), 0);
    key_ = {.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
    ASSERT_TRUE(sensor_->credential_tables()
                    .upsert_credential(key_, {.credential_id = kCredentialId, .class_id = 1})
                    .has_value());
    service_ = std::make_unique<TestCgroup>("payments.service");
    other_ = std::make_unique<TestCgroup>("other.service");
  }

  void TearDown() override {
    if (!sensor_) return;
    (void)sensor_->enforcement().remove_credential_deny(deny_key());
    (void)sensor_->enforcement().remove_egress_block(service_->id());
    (void)sensor_->credential_tables().remove_credential(key_);
    service_.reset();
    other_.reset();
    fs::remove_all(dir_);
  }

  nhg_deny_key deny_key() const { return {.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()}; }

  void deny_to_service() {
    ASSERT_TRUE(
        sensor_->enforcement()
            .apply_credential_deny(deny_key(), {.expires_at_ns = boot_ns() + 60'000'000'000ull, .rule_id = kDenyRule})
            .has_value());
  }

  void block_service() {
    ASSERT_TRUE(sensor_->enforcement()
                    .apply_egress_block({.cgroup_id = service_->id(),
                                         .expires_at_boot_ns = boot_ns() + 60'000'000'000ull,
                                         .rule_id = kBlockRule})
                    .has_value());
  }

  uint64_t lsm_refused() const {
    auto counters = sensor_->counters().counters();
    EXPECT_TRUE(counters.has_value());
    return counters ? counters->values[NHG_CTR_LSM_REFUSED] : 0;
  }

  // Every record of `pid` that has reached the ring buffer.
  template <typename Event>
  std::vector<Event> events_of(pid_t pid) {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(sensor_->poll(20).has_value());
    std::vector<Event> out;
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (auto* typed = std::get_if<Event>(&e); typed && typed->process.tgid == static_cast<uint32_t>(pid)) {
        out.push_back(*typed);
      }
    }
    return out;
  }

  // The one file record of `pid`: a refusal by the LSM layer, by way of `syscall`, never a kill.
  void expect_one_refusal(pid_t pid, events::OpenSyscall syscall) {
    auto opens = events_of<events::FileOpenEvent>(pid);
    ASSERT_EQ(opens.size(), 1u) << "one record of the refused " << events::to_string(syscall);
    const auto& open = opens[0];
    EXPECT_EQ(open.syscall, syscall);
    EXPECT_TRUE(open.by_inode);
    EXPECT_EQ(open.credential_id, kCredentialId);
    EXPECT_EQ(open.ino, key_.ino);
    EXPECT_TRUE(open.denied);
    EXPECT_TRUE(open.refused);
    EXPECT_EQ(open.fd, -1);
    EXPECT_EQ(open.process.cgroup_id, service_->id());
    // What the agent writes: a refusal, not a kill.
    auto record = records::credential_access_to_wire(open, {.credential_id = kCredentialId, .path = credential_}, {}, 0,
                                                     "ev_test");
    auto line = records::credential_access_line(record, open, "host");
    EXPECT_EQ(line["denied"], true);
    EXPECT_EQ(line["denial"], "refused");
    EXPECT_EQ(line["syscall"], std::string(events::to_string(syscall)));
  }

  static inline std::string skip_reason_;
  static inline std::unique_ptr<kernel::KernelSensor> sensor_;
  static inline std::string pin_dir_;
  static inline std::mutex mutex_;
  static inline std::vector<events::KernelEvent> events_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> service_;
  std::unique_ptr<TestCgroup> other_;
};

TEST_F(LsmEnforcementTest, DeniedOpenFailsWithEaccesAndNobodyIsKilled) {
  deny_to_service();
  const uint64_t refused_before = lsm_refused();
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd >= 0) return read_through(fd) == kReadBytes ? kReadBytes : kOpenedOrReceived;
    return errno == EACCES ? kRefused : kWrongErrno;
  });
  // Exited on its own with the open refused: not killed (128 + SIGKILL) by the tracepoint path,
  // whose sys_exit sees the failed open.
  EXPECT_EQ(wait_for_exit(reader), kRefused);
  expect_one_refusal(reader, events::OpenSyscall::lsm_file_open);
  EXPECT_EQ(lsm_refused() - refused_before, 1u);
  EXPECT_FALSE(sensor_->enforcement().taint_of(static_cast<uint32_t>(reader)).has_value());

  // Another identity opens and reads it.
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(*other_,
                                          [&] {
                                            const int fd = open(credential_.c_str(), O_RDONLY);
                                            return fd >= 0 && read_through(fd) == kReadBytes ? 0 : 1;
                                          })),
            0);
}

// io_uring's open goes through no syscall the tracepoint path watches; the LSM hook sees it.
TEST_F(LsmEnforcementTest, DeniedIoUringOpenIsRefused) {
  deny_to_service();
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    const int res = io_uring_openat(credential_.c_str());
    if (res == INT32_MIN) return kSetupFailed;
    if (res >= 0) return read_through(res) == kReadBytes ? kReadBytes : kOpenedOrReceived;
    return res == -EACCES ? kRefused : kWrongErrno;
  });
  EXPECT_EQ(wait_for_exit(reader), kRefused);
  expect_one_refusal(reader, events::OpenSyscall::lsm_file_open);
}

TEST_F(LsmEnforcementTest, ScmRightsFdOfADeniedCredentialIsRefusedToTheReceiver) {
  deny_to_service();
  int socks[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks), 0);
  // This process (not denied) opens the credential and passes the fd on.
  const int fd = open(credential_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  pid_t receiver = spawn_in_cgroup(*service_, [&] {
    close(socks[0]);
    const int got = receive_fd(socks[1]);
    if (got == -2) return kSetupFailed;
    return got >= 0 ? (read_through(got) == kReadBytes ? kReadBytes : kOpenedOrReceived) : kRefused;
  });
  EXPECT_TRUE(send_fd(socks[0], fd));
  EXPECT_EQ(wait_for_exit(receiver), kRefused);
  expect_one_refusal(receiver, events::OpenSyscall::file_receive);

  // A receiver the credential is not denied to gets the fd, and its receipt is an event.
  int more[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, more), 0);
  pid_t allowed = spawn_in_cgroup(*other_, [&] {
    close(more[0]);
    const int got = receive_fd(more[1]);
    return got >= 0 && read_through(got) == kReadBytes ? 0 : 1;
  });
  EXPECT_TRUE(send_fd(more[0], fd));
  EXPECT_EQ(wait_for_exit(allowed), 0);
  // The receipt is one record; the read that follows is the read path's (first read by a process
  // that did not open it), which the tracepoint path reports on kernels without BPF LSM too.
  std::vector<events::FileOpenEvent> receipts;
  for (const auto& e : events_of<events::FileOpenEvent>(allowed)) {
    EXPECT_FALSE(e.denied) << events::to_string(e.syscall);
    if (e.syscall == events::OpenSyscall::file_receive) receipts.push_back(e);
  }
  ASSERT_EQ(receipts.size(), 1u);
  EXPECT_EQ(receipts[0].credential_id, kCredentialId);
  EXPECT_EQ(receipts[0].fd, -1);
  EXPECT_TRUE(receipts[0].readable());
  for (int s : {socks[0], socks[1], more[0], more[1], fd}) close(s);
}

TEST_F(LsmEnforcementTest, PidfdGetfdOfADeniedCredentialIsRefused) {
  deny_to_service();
  int ready[2];
  int done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  // The holder (not denied) opens the credential, says which fd, and waits.
  pid_t holder = spawn_in_cgroup(*other_, [&] {
    close(ready[0]);
    close(done[1]);
    const int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0 || write(ready[1], &fd, sizeof(fd)) != sizeof(fd)) return 1;
    char byte;
    return read(done[0], &byte, 1) >= 0 ? 0 : 1;
  });
  close(ready[1]);
  close(done[0]);
  int holder_fd = -1;
  ASSERT_EQ(read(ready[0], &holder_fd, sizeof(holder_fd)), static_cast<ssize_t>(sizeof(holder_fd)));
  pid_t thief = spawn_in_cgroup(*service_, [&] {
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, holder, 0));
    if (pidfd < 0) return kSetupFailed;
    const int got = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, holder_fd, 0));
    if (got >= 0) return read_through(got) == kReadBytes ? kReadBytes : kOpenedOrReceived;
    return errno == EACCES ? kRefused : kWrongErrno;
  });
  EXPECT_EQ(wait_for_exit(thief), kRefused);
  close(done[1]);
  close(ready[0]);
  EXPECT_EQ(wait_for_exit(holder), 0);
  expect_one_refusal(thief, events::OpenSyscall::file_receive);
}

// An fd opened before the deny (or held by a thread sharing the fd table): its reads are refused.
TEST_F(LsmEnforcementTest, ReadsThroughAnFdOpenedBeforeTheDenyAreRefused) {
  int ready[2];
  int go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  const uint64_t refused_before = lsm_refused();
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    close(ready[0]);
    close(go[1]);
    const int fd = open(credential_.c_str(), O_RDONLY);
    char byte = 1;
    if (fd < 0 || write(ready[1], &byte, 1) != 1 || read(go[0], &byte, 1) != 1) return kSetupFailed;
    char buffer[64];
    if (pread(fd, buffer, sizeof(buffer), 0) > 0) return kReadBytes;
    return errno == EACCES ? kRefused : kWrongErrno;
  });
  close(ready[1]);
  close(go[0]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  deny_to_service();
  ASSERT_EQ(write(go[1], &byte, 1), 1);
  EXPECT_EQ(wait_for_exit(reader), kRefused);
  EXPECT_GE(lsm_refused() - refused_before, 1u);
  close(ready[0]);
  close(go[1]);
}

// With the cgroup hooks detached (SetUpTestSuite), what refuses here is the LSM layer.
TEST_F(LsmEnforcementTest, BlockedCgroupsSocketsAreRefusedByTheLsmLayer) {
  // A TCP port on loopback nobody listens on: unblocked, the connect is refused by the stack
  // (ECONNREFUSED); blocked, by the LSM layer (EPERM) before it is tried.
  const auto connect_v4 = [] {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = {htonl(INADDR_LOOPBACK)}, .sin_zero = {}};
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ? 0 : errno;
    close(fd);
    return rc;
  };
  const auto sendto_v4 = [](int type, int protocol) {
    const int fd = socket(AF_INET, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return errno;
    sockaddr_in addr{.sin_family = AF_INET, .sin_port = htons(9), .sin_addr = {htonl(INADDR_LOOPBACK)}, .sin_zero = {}};
    const int rc = sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 1 ? 0 : errno;
    close(fd);
    return rc;
  };
  const auto packet_socket = [] {
    const int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    close(fd);
    return 0;
  };
  // Unblocked: the baseline each refusal below differs from.
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(*service_,
                                          [&] {
                                            if (connect_v4() != ECONNREFUSED) return 1;
                                            if (sendto_v4(SOCK_DGRAM, 0) != 0) return 2;
                                            if (packet_socket() != 0) return 3;
                                            return 0;
                                          })),
            0);

  block_service();
  const uint64_t refused_before = lsm_refused();
  pid_t blocked = spawn_in_cgroup(*service_, [&] {
    if (connect_v4() != EPERM) return 1;
    if (sendto_v4(SOCK_DGRAM, 0) != EPERM) return 2;
    if (packet_socket() != EPERM) return 3;
    // A raw socket cannot be made either (it would reach any destination).
    const int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (raw >= 0 || errno != EPERM) return 4;
    return 0;
  });
  EXPECT_EQ(wait_for_exit(blocked), 0);
  EXPECT_EQ(lsm_refused() - refused_before, 4u);
  auto denied = events_of<events::EgressEvent>(blocked);
  ASSERT_EQ(denied.size(), 2u) << "the refused connect and sendto are reported";
  EXPECT_EQ(denied[0].hook, events::EgressHook::connect4);
  EXPECT_EQ(denied[1].hook, events::EgressHook::sendmsg4);
  for (const auto& e : denied) {
    EXPECT_TRUE(e.denied);
    EXPECT_EQ(e.rule_id, kBlockRule);
    EXPECT_EQ(e.port, 9);
    EXPECT_EQ(e.address_string(), "127.0.0.1");
  }
  // Another service is not blocked.
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(*other_, [&] { return connect_v4() == ECONNREFUSED ? 0 : 1; })), 0);
}

// Asking for the LSM layer never fails the start: where it cannot load or attach, the sensor runs
// the tracepoint path and says why. Runs on every kernel.
TEST(LsmFallback, RequestingTheLsmLayerNeverFailsTheStart) {
  ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
  ASSERT_TRUE(kernel::ensure_bpffs().has_value());
  ASSERT_TRUE(kernel::ensure_tracefs().has_value());
  const std::string pin_dir = "/sys/fs/bpf/nhiguard-test-lsm-fallback-" + std::to_string(getpid());
  const kernel::EnforcementPath chosen = kernel::choose_enforcement(kernel::probe_kernel_features());
  EXPECT_FALSE(chosen.reason.empty());
  {
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir, .ringbuf_bytes = 1u << 20, .lsm_enforcement = true});
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    const auto& path = (*sensor)->enforcement_path();
    EXPECT_EQ(path.lsm, chosen.lsm) << path.reason;
    EXPECT_EQ(path.name(), chosen.lsm ? "lsm" : "tracepoint+sigkill");
    bool lsm_attached = false;
    for (const auto& program : (*sensor)->attached_programs()) lsm_attached |= program.starts_with("lsm_");
    EXPECT_EQ(lsm_attached, chosen.lsm);
    if (!chosen.lsm) {
      EXPECT_NE(path.reason.find("did not"), std::string::npos) << path.reason;
    }
  }
  // Not asked for, the LSM links an earlier agent pinned are removed: the tracepoint path alone enforces.
  {
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir, .ringbuf_bytes = 1u << 20});
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    EXPECT_FALSE((*sensor)->enforcement_path().lsm);
    EXPECT_FALSE(fs::exists(pin_dir + "/links/lsm_file_open"));
  }
  fs::remove_all(pin_dir);
}

}  // namespace
