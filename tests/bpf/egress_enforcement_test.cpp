// Egress and credential enforcement, for real: a service in a test cgroup reads a planted
// credential and talks to a listener in a network namespace of the test's own (veth pair). Taint
// reaches its egress events and its children; egress blocks refuse connects and sendmsgs (TCP and
// UDP, IPv4 and IPv6) and stop an established connection, for that cgroup only, until removed or
// expired in the kernel; deny_credential kills the reader on open.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"
#include "test_netns.h"

namespace fs = std::filesystem;
using namespace nhiguard;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::TestListener;
using nhiguard::testing::TestNetns;
using nhiguard::testing::wait_for_exit;

namespace {

constexpr uint32_t kCredentialId = 11;
constexpr uint16_t kPort = 18443;

uint64_t boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// 0 on success, else errno of the first failing call.
int send_to(const std::string& address, uint16_t port, int type, const std::string& payload) {
  const bool v6 = address.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_storage storage{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    inet_pton(AF_INET6, address.c_str(), &a->sin6_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, address.c_str(), &a->sin_addr);
    len = sizeof(*a);
  }
  int rc = 0;
  if (type == SOCK_STREAM) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0) {
      rc = errno;
    } else if (send(fd, payload.data(), payload.size(), MSG_NOSIGNAL) < 0) {
      rc = errno;
    }
  } else if (sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&storage), len) < 0) {
    rc = errno;
  }
  close(fd);
  return rc;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(3000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

class EgressTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(kernel::ensure_tracefs().has_value());
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-egress-" + std::to_string(getpid());
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20},
                                              [](std::span<const std::byte> record) {
                                                auto event = events::decode_kernel_event(record);
                                                ASSERT_TRUE(event.has_value()) << event.error().message;
                                                std::lock_guard lock(mutex_);
                                                events_.push_back(std::move(*event));
                                              });
    ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
    sensor_ = std::move(*sensor);
    netns_ = std::make_unique<TestNetns>();
    listener_ = std::make_unique<TestListener>(*netns_, kPort);
  }

  static void TearDownTestSuite() {
    listener_.reset();
    netns_.reset();
    sensor_.reset();
    fs::remove_all(pin_dir_);
  }

  void SetUp() override {
    {
      std::lock_guard lock(mutex_);
      events_.clear();
    }
    dir_ = fs::path("/tmp") / ("nhiguard-egress-" + std::to_string(getpid()));
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
    (void)sensor_->enforcement().remove_egress_block(service_->id());
    (void)sensor_->enforcement().remove_credential_deny(
        {.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()});
    (void)sensor_->credential_tables().remove_credential(key_);
    service_.reset();
    other_.reset();
    fs::remove_all(dir_);
  }

  void drain() {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(sensor_->poll(20).has_value());
  }

  std::vector<events::EgressEvent> egress_of(pid_t pid) {
    drain();
    std::vector<events::EgressEvent> out;
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (auto* egress = std::get_if<events::EgressEvent>(&e);
          egress && egress->process.tgid == static_cast<uint32_t>(pid)) {
        out.push_back(*egress);
      }
    }
    return out;
  }

  int run_in(const TestCgroup& cgroup, const std::function<int()>& body, pid_t* pid_out = nullptr) {
    pid_t pid = spawn_in_cgroup(cgroup, body);
    if (pid_out) *pid_out = pid;
    return wait_for_exit(pid);
  }

  kernel::EgressBlockSpec block_all(uint64_t ttl_ns = 60'000'000'000ull) {
    return {.cgroup_id = service_->id(), .expires_at_boot_ns = boot_ns() + ttl_ns, .rule_id = 5};
  }

  static inline std::unique_ptr<kernel::KernelSensor> sensor_;
  static inline std::unique_ptr<TestNetns> netns_;
  static inline std::unique_ptr<TestListener> listener_;
  static inline std::string pin_dir_;
  static inline std::mutex mutex_;
  static inline std::vector<events::KernelEvent> events_;
  fs::path dir_;
  std::string credential_;
  nhg_inode_key key_{};
  std::unique_ptr<TestCgroup> service_;
  std::unique_ptr<TestCgroup> other_;
};

TEST_F(EgressTest, TaintedEgressIsReportedAndInheritedByChildren) {
  const std::string remote = netns_->remote_v4();
  pid_t reader = 0;
  pid_t child_pid_seen = 0;
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const int status = run_in(
      *service_,
      [&] {
        int fd = open(credential_.c_str(), O_RDONLY);
        if (fd < 0) return 30;
        char buffer[64];
        if (read(fd, buffer, sizeof(buffer)) <= 0) return 31;
        close(fd);
        if (send_to(remote, kPort, SOCK_STREAM, "token-use") != 0) return 32;
        pid_t child = fork();
        if (child == 0) _exit(send_to(remote, kPort, SOCK_DGRAM, "from-child") == 0 ? 0 : 33);
        if (write(pipefd[1], &child, sizeof(child)) != sizeof(child)) return 34;
        return wait_for_exit(child);
      },
      &reader);
  close(pipefd[1]);
  ASSERT_EQ(read(pipefd[0], &child_pid_seen, sizeof(child_pid_seen)), static_cast<ssize_t>(sizeof(child_pid_seen)));
  close(pipefd[0]);
  ASSERT_EQ(status, 0);

  auto parent_events = egress_of(reader);
  ASSERT_EQ(parent_events.size(), 1u);
  EXPECT_EQ(parent_events[0].taint_credential_id, kCredentialId);
  EXPECT_EQ(parent_events[0].taint_source_tgid, static_cast<uint32_t>(reader));
  EXPECT_EQ(parent_events[0].address_string(), remote);
  EXPECT_EQ(parent_events[0].port, kPort);
  EXPECT_EQ(parent_events[0].protocol, IPPROTO_TCP);
  EXPECT_EQ(parent_events[0].hook, events::EgressHook::connect4);
  EXPECT_FALSE(parent_events[0].denied);
  EXPECT_EQ(parent_events[0].process.cgroup_id, service_->id());

  auto child_events = egress_of(child_pid_seen);
  ASSERT_EQ(child_events.size(), 1u);
  EXPECT_EQ(child_events[0].taint_credential_id, kCredentialId);
  EXPECT_EQ(child_events[0].taint_source_tgid, static_cast<uint32_t>(reader));  // inherited
  EXPECT_EQ(child_events[0].protocol, IPPROTO_UDP);
  EXPECT_EQ(child_events[0].hook, events::EgressHook::sendmsg4);

  // The taint is cleared when the process exits.
  EXPECT_TRUE(eventually([&] { return !sensor_->enforcement().taint_of(static_cast<uint32_t>(reader)).has_value(); }));
}

TEST_F(EgressTest, UntaintedAllowedEgressIsNotReported) {
  pid_t pid = 0;
  const std::string remote = netns_->remote_v4();
  ASSERT_EQ(run_in(*service_, [&] { return send_to(remote, kPort, SOCK_STREAM, "hello"); }, &pid), 0);
  EXPECT_TRUE(egress_of(pid).empty());
}

TEST_F(EgressTest, BlockRefusesEveryProtocolAndFamilyForThatCgroupOnly) {
  ASSERT_TRUE(sensor_->enforcement().apply_egress_block(block_all()).has_value());
  const uint64_t tcp_before = listener_->tcp_bytes();
  const uint64_t udp_before = listener_->udp_bytes();
  const std::string v4 = netns_->remote_v4();
  const std::string v6 = netns_->remote_v6();
  pid_t pid = 0;
  ASSERT_EQ(run_in(
                *service_,
                [&] {
                  // Each attempt must fail with EPERM; the exit code says which did not.
                  if (send_to(v4, kPort, SOCK_STREAM, "x") != EPERM) return 40;
                  if (send_to(v6, kPort, SOCK_STREAM, "x") != EPERM) return 41;
                  if (send_to(v4, kPort, SOCK_DGRAM, "x") != EPERM) return 42;
                  if (send_to(v6, kPort, SOCK_DGRAM, "x") != EPERM) return 43;
                  return 0;
                },
                &pid),
            0);
  auto denied = egress_of(pid);
  ASSERT_EQ(denied.size(), 4u);
  for (const auto& e : denied) {
    EXPECT_TRUE(e.denied);
    EXPECT_EQ(e.rule_id, 5u);
  }
  // A sub-cgroup of the blocked service is blocked too.
  TestCgroup worker("payments.service/worker");
  EXPECT_EQ(run_in(worker, [&] { return send_to(v4, kPort, SOCK_STREAM, "x") == EPERM ? 0 : 44; }), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(listener_->tcp_bytes(), tcp_before);
  EXPECT_EQ(listener_->udp_bytes(), udp_before);

  // Another service still reaches the listener.
  EXPECT_EQ(run_in(*other_, [&] { return send_to(v4, kPort, SOCK_STREAM, "other-ok"); }), 0);
  EXPECT_TRUE(eventually([&] { return listener_->tcp_bytes() == tcp_before + 8; }));

  // Removing the block restores the service.
  ASSERT_TRUE(sensor_->enforcement().remove_egress_block(service_->id()).has_value());
  EXPECT_EQ(run_in(*service_, [&] { return send_to(v6, kPort, SOCK_STREAM, "back"); }), 0);
  EXPECT_TRUE(eventually([&] { return listener_->tcp_bytes() == tcp_before + 12; }));
}

TEST_F(EgressTest, EstablishedConnectionStopsDeliveringAndResumesOnRollback) {
  const std::string v4 = netns_->remote_v4();
  int to_child[2];
  int from_child[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(from_child), 0);
  // The child connects first, then sends one chunk per command byte from the test.
  pid_t pid = spawn_in_cgroup(*service_, [&] {
    close(to_child[1]);
    close(from_child[0]);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(kPort);
    inet_pton(AF_INET, v4.c_str(), &addr.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 50;
    char command;
    while (read(to_child[0], &command, 1) == 1) {
      if (command == 'q') break;
      if (send(fd, "0123456789", 10, MSG_NOSIGNAL) != 10) return 51;
      char ack = 'k';
      if (write(from_child[1], &ack, 1) != 1) return 52;
    }
    close(fd);
    return 0;
  });
  close(to_child[0]);
  close(from_child[1]);
  auto send_chunk = [&] {
    char ack;
    return write(to_child[1], "s", 1) == 1 && read(from_child[0], &ack, 1) == 1;
  };
  const uint64_t before = listener_->tcp_bytes();
  ASSERT_TRUE(send_chunk());
  ASSERT_TRUE(eventually([&] { return listener_->tcp_bytes() == before + 10; }));

  ASSERT_TRUE(sensor_->enforcement().apply_egress_block(block_all()).has_value());
  ASSERT_TRUE(send_chunk());  // accepted by the local socket buffer, dropped on the way out
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(listener_->tcp_bytes(), before + 10);

  ASSERT_TRUE(sensor_->enforcement().remove_egress_block(service_->id()).has_value());
  // TCP retransmits the held chunk once packets flow again (first retransmit after ~200 ms-1 s).
  EXPECT_TRUE(eventually([&] { return listener_->tcp_bytes() == before + 20; }, std::chrono::milliseconds(8000)));
  ASSERT_EQ(write(to_child[1], "q", 1), 1);
  close(to_child[1]);
  close(from_child[0]);
  EXPECT_EQ(wait_for_exit(pid), 0);
}

TEST_F(EgressTest, BlockExpiresInTheKernelWithoutAnyAgent) {
  ASSERT_TRUE(sensor_->enforcement().apply_egress_block(block_all(800'000'000ull)).has_value());
  const std::string v4 = netns_->remote_v4();
  EXPECT_EQ(run_in(*service_, [&] { return send_to(v4, kPort, SOCK_STREAM, "x") == EPERM ? 0 : 60; }), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  // Nothing removed the entry: the programs ignore it once expired.
  ASSERT_TRUE(sensor_->enforcement().egress_blocks().has_value());
  EXPECT_EQ(sensor_->enforcement().egress_blocks()->size(), 1u);
  EXPECT_EQ(run_in(*service_, [&] { return send_to(v4, kPort, SOCK_STREAM, "x"); }), 0);
}

TEST_F(EgressTest, ListedDestinationsBlockOnlyThose) {
  auto spec = block_all();
  auto exact = containment::parse_egress_destination(netns_->remote_v4() + ":" + std::to_string(kPort));
  auto v6net = containment::parse_egress_destination("[" + netns_->remote_v6() + "/64]:" + std::to_string(kPort));
  ASSERT_TRUE(exact.has_value() && v6net.has_value());
  spec.destinations = {*exact, *v6net};
  ASSERT_TRUE(sensor_->enforcement().apply_egress_block(spec).has_value());
  const std::string v4 = netns_->remote_v4();
  const std::string v6 = netns_->remote_v6();
  EXPECT_EQ(run_in(*service_,
                   [&] {
                     if (send_to(v4, kPort, SOCK_STREAM, "x") != EPERM) return 70;
                     if (send_to(v6, kPort, SOCK_DGRAM, "x") != EPERM) return 71;
                     // Another port of the same host is not listed: the connect reaches the namespace (refused there).
                     if (send_to(v4, kPort + 1, SOCK_STREAM, "x") != ECONNREFUSED) return 72;
                     return 0;
                   }),
            0);
}

TEST_F(EgressTest, DenyCredentialKillsTheReaderBeforeItReads) {
  const nhg_deny_key deny{.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()};
  ASSERT_TRUE(sensor_->enforcement()
                  .apply_credential_deny(deny, {.expires_at_ns = boot_ns() + 60'000'000'000ull, .rule_id = 9})
                  .has_value());
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    close(pipefd[0]);
    int fd = open(credential_.c_str(), O_RDONLY);
    char buffer[64];
    ssize_t n = read(fd, buffer, sizeof(buffer));
    // Never reached: the process is killed on return from open.
    (void)!write(pipefd[1], &n, sizeof(n));
    return 0;
  });
  close(pipefd[1]);
  EXPECT_EQ(wait_for_exit(reader), 128 + SIGKILL);
  ssize_t leaked = 0;
  EXPECT_EQ(read(pipefd[0], &leaked, sizeof(leaked)), 0);  // no byte count was ever written
  close(pipefd[0]);
  drain();
  bool reported = false;
  {
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (auto* open = std::get_if<events::FileOpenEvent>(&e);
          open && open->process.tgid == static_cast<uint32_t>(reader)) {
        reported = open->denied;
      }
    }
  }
  EXPECT_TRUE(reported);
  EXPECT_FALSE(sensor_->enforcement().taint_of(static_cast<uint32_t>(reader)).has_value());

  // Another identity reads the same credential fine.
  EXPECT_EQ(run_in(*other_,
                   [&] {
                     int fd = open(credential_.c_str(), O_RDONLY);
                     char buffer[64];
                     return read(fd, buffer, sizeof(buffer)) > 0 ? 0 : 80;
                   }),
            0);
}

// Repeat reads by one process are coalesced in the kernel before the credential lookup; a deny
// applied between two reads must still see the second one, inside the coalescing window.
TEST_F(EgressTest, DenyAppliedBetweenTwoReadsKillsTheRepeatRead) {
  int ready[2];
  int go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  pid_t reader = spawn_in_cgroup(*service_, [&] {
    close(ready[0]);
    close(go[1]);
    char buffer[64];
    int fd = open(credential_.c_str(), O_RDONLY);
    if (fd < 0 || read(fd, buffer, sizeof(buffer)) <= 0) return 81;
    close(fd);
    char byte = 1;
    if (write(ready[1], &byte, 1) != 1) return 82;
    if (read(go[0], &byte, 1) != 1) return 83;
    fd = open(credential_.c_str(), O_RDONLY);  // the repeat: killed on return from open
    return fd >= 0 ? 84 : 85;
  });
  close(ready[1]);
  close(go[0]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  const nhg_deny_key deny{.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()};
  ASSERT_TRUE(sensor_->enforcement()
                  .apply_credential_deny(deny, {.expires_at_ns = boot_ns() + 60'000'000'000ull, .rule_id = 9})
                  .has_value());
  ASSERT_EQ(write(go[1], &byte, 1), 1);
  EXPECT_EQ(wait_for_exit(reader), 128 + SIGKILL);
  close(ready[0]);
  close(go[1]);
}

// The deny and egress-block maps hold 4096 entries each. When one is full the kernel refuses the
// entry (E2BIG): the action must fail with that reason and be counted (status
// `enforcement_map_full`, the alert of the same name), never be taken for applied. Once one slot
// is free again the same deny applies and holds. The maps are filled through their pins (each
// agent-side change re-counts both maps, which is cheap at a few entries and slow at 4096).
TEST_F(EgressTest, AFullEnforcementMapRefusesTheEntryCountsItAndNamesIt) {
  constexpr uint64_t kFakeCgroups = uint64_t{1} << 62;  // ids no cgroup has: nothing else matches
  const uint64_t far = boot_ns() + 600'000'000'000ull;
  const int denies_fd = bpf_obj_get((pin_dir_ + "/nhg_credential_denies").c_str());
  const int blocks_fd = bpf_obj_get((pin_dir_ + "/nhg_egress_blocks").c_str());
  ASSERT_GE(denies_fd, 0) << strerror(errno);
  ASSERT_GE(blocks_fd, 0) << strerror(errno);
  auto fake_deny = [&](uint32_t i) {
    return nhg_deny_key{.credential_id = kCredentialId, .pad = 0, .cgroup_id = kFakeCgroups + i};
  };
  const nhg_deny_value deny_value{.expires_at_ns = far, .rule_id = 1, .pad = 0};
  const nhg_egress_block block_value{.expires_at_ns = far, .mode = NHG_BLOCK_ALL, .rule_id = 1};
  uint32_t denies = 0, blocks = 0;
  for (; denies < 8192; ++denies) {
    const nhg_deny_key key = fake_deny(denies);
    if (bpf_map_update_elem(denies_fd, &key, &deny_value, BPF_NOEXIST) != 0) break;
  }
  for (; blocks < 8192; ++blocks) {
    const uint64_t id = kFakeCgroups + blocks;
    if (bpf_map_update_elem(blocks_fd, &id, &block_value, BPF_NOEXIST) != 0) break;
  }
  auto cleanup = [&] {
    for (uint32_t i = 0; i < denies; ++i) {
      const nhg_deny_key key = fake_deny(i);
      (void)bpf_map_delete_elem(denies_fd, &key);
    }
    for (uint32_t i = 0; i < blocks; ++i) {
      const uint64_t id = kFakeCgroups + i;
      (void)bpf_map_delete_elem(blocks_fd, &id);
    }
    close(denies_fd);
    close(blocks_fd);
  };
  EXPECT_EQ(denies, 4096u) << "the deny map's size";
  EXPECT_EQ(blocks, 4096u) << "the egress-block map's size";

  const uint64_t full_before = sensor_->enforcement().enforcement_map_full();
  const nhg_deny_key deny{.credential_id = kCredentialId, .pad = 0, .cgroup_id = service_->id()};
  auto refused_deny = sensor_->enforcement().apply_credential_deny(deny, {.expires_at_ns = far, .rule_id = 9});
  ASSERT_FALSE(refused_deny.has_value());
  EXPECT_EQ(refused_deny.error().code, E2BIG);
  EXPECT_NE(refused_deny.error().message.find("the map is full"), std::string::npos) << refused_deny.error().message;
  auto refused_block = sensor_->enforcement().apply_egress_block(block_all());
  ASSERT_FALSE(refused_block.has_value());
  EXPECT_EQ(refused_block.error().code, E2BIG);
  EXPECT_NE(refused_block.error().message.find("the map is full"), std::string::npos) << refused_block.error().message;
  EXPECT_EQ(sensor_->enforcement().enforcement_map_full() - full_before, 2u);

  // Nothing of the refused deny is in force: the reader reads.
  EXPECT_EQ(run_in(*service_,
                   [&] {
                     char buffer[64];
                     const int fd = open(credential_.c_str(), O_RDONLY);
                     return fd >= 0 && read(fd, buffer, sizeof(buffer)) > 0 ? 0 : 1;
                   }),
            0);

  // One slot free: the deny applies and holds.
  const nhg_deny_key last = fake_deny(--denies);
  ASSERT_EQ(bpf_map_delete_elem(denies_fd, &last), 0);
  ASSERT_TRUE(sensor_->enforcement().apply_credential_deny(deny, {.expires_at_ns = far, .rule_id = 9}).has_value());
  EXPECT_EQ(run_in(*service_,
                   [&] {
                     const int fd = open(credential_.c_str(), O_RDONLY);
                     return fd >= 0 ? 84 : 85;
                   }),
            128 + SIGKILL);
  cleanup();
}

}  // namespace
