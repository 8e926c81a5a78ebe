// Ways around a block or a deny, each closed (issue 12, items 3 and 4), on the real kernel: the
// loaded sensor and egress programs, the containment executor with a real ledger, services in test
// cgroups and a listener in a network namespace of the test's own (veth pair).
// - A process of a blocked (or denied) service that writes itself into another cgroup's
//   cgroup.procs stays blocked (denied), and so does the child it forks there; the move is an
//   event; after rollback the moved process connects again.
// - A target 20 levels deep is refused (the kernel walks 16); a process that deep is counted.
// - An unconnected ping socket's send to a blocked --to destination is dropped (the packet's own
//   destination); so is a raw socket's hand-built UDP datagram; a blocked service cannot open a raw
//   socket at all.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "containment/containment_executor.h"
#include "events/kernel_event.h"
#include "identity/mountinfo.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"
#include "test_netns.h"

namespace fs = std::filesystem;
using namespace nhiguard;
using containment::ActionKind;
using containment::RollbackHandle;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::TestListener;
using nhiguard::testing::TestNetns;
using nhiguard::testing::wait_for_exit;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kCredentialId = 31;
constexpr uint16_t kPort = 18461;

sockaddr_in v4_address(const std::string& address, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  return a;
}

// 0 when a TCP connect to address:port succeeds, else its errno.
int connect_to(const std::string& address, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const sockaddr_in a = v4_address(address, port);
  const int rc = connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

// Writes the calling process into the cgroup directory `dir` (what an escaping service does).
bool move_self_to(const std::string& dir) {
  std::ofstream procs(dir + "/cgroup.procs");
  procs << getpid() << std::flush;
  return static_cast<bool>(procs);
}

// One echo request from an unconnected ping socket (SOCK_DGRAM, IPPROTO_ICMP): true when the
// reply came back within the timeout.
bool ping_once(int fd, const std::string& address) {
  icmphdr request{};
  request.type = ICMP_ECHO;
  request.un.echo.sequence = htons(1);
  const sockaddr_in to = v4_address(address, 0);
  if (sendto(fd, &request, sizeof(request), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) return false;
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, 1000) != 1) return false;
  icmphdr reply{};
  return recv(fd, &reply, sizeof(reply), 0) >= static_cast<ssize_t>(sizeof(reply)) && reply.type == ICMP_ECHOREPLY;
}

// A UDP datagram built by hand and sent through a raw IP socket (no sendmsg hook sees it).
bool raw_udp_send(int fd, const std::string& address, uint16_t port, const std::string& payload) {
  std::vector<uint8_t> datagram(sizeof(udphdr) + payload.size());
  auto* udp = reinterpret_cast<udphdr*>(datagram.data());
  udp->source = htons(40000);
  udp->dest = htons(port);
  udp->len = htons(static_cast<uint16_t>(datagram.size()));
  udp->check = 0;  // no checksum: allowed for UDP over IPv4
  std::copy(payload.begin(), payload.end(), datagram.begin() + sizeof(udphdr));
  const sockaddr_in to = v4_address(address, 0);
  return sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(datagram.size());
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

// A pair of pipes to step a child through a script: the test sends one byte per step, the child
// answers with one result byte.
struct Steps {
  int to_child[2];
  int from_child[2];
  Steps() {
    if (pipe(to_child) != 0 || pipe(from_child) != 0) throw std::runtime_error("pipe");
  }
  ~Steps() {
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) {
      if (fd >= 0) close(fd);
    }
  }
  // After the fork: the test keeps only its ends, so a child that dies reads as 255, not a hang.
  void forked() {
    close(to_child[0]);
    close(from_child[1]);
    to_child[0] = from_child[1] = -1;
  }
  // Child side: wait for the go of the next step.
  bool wait_go() const {
    char c;
    return read(to_child[0], &c, 1) == 1;
  }
  void answer(uint8_t result) const { (void)!write(from_child[1], &result, 1); }
  // Test side: run the next step, return the child's answer (255: the child is gone).
  int step() const {
    signal(SIGPIPE, SIG_IGN);  // a child that died: write fails with EPIPE instead
    if (write(to_child[1], "s", 1) != 1) return 255;
    uint8_t result = 255;
    if (read(from_child[0], &result, 1) != 1) return 255;
    return result;
  }
};

pid_t spawn_stepped(const TestCgroup& cgroup, Steps& steps, const std::function<int()>& body) {
  const pid_t pid = spawn_in_cgroup(cgroup, body);
  steps.forked();
  return pid;
}

class FollowTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
    ASSERT_TRUE(kernel::ensure_bpffs().has_value());
    ASSERT_TRUE(kernel::ensure_tracefs().has_value());
    netns_ = std::make_unique<TestNetns>();
    listener_ = std::make_unique<TestListener>(*netns_, kPort);
  }
  static void TearDownTestSuite() {
    listener_.reset();
    netns_.reset();
  }

  void SetUp() override {
    {
      std::lock_guard lock(mutex_);
      events_.clear();
    }
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-follow-" + std::to_string(getpid());
    dir_ = fs::path("/tmp") / ("nhiguard-follow-" + std::to_string(getpid()));
    fs::create_directories(dir_ / ".aws");
    credential_ = (dir_ / ".aws/credentials").string();
    std::ofstream(credential_) << "[default]\naws_secret_access_key = NOT-A-REAL-SECRET\n";
    service_ = std::make_unique<TestCgroup>("payments.service");
    other_ = std::make_unique<TestCgroup>("other.service");
    auto root = identity::find_cgroup2_mount();
    ASSERT_TRUE(root) << root.error().message;
    cgroup2_root_ = *root;
    auto protected_targets = containment::ProtectedTargets::from_host({});
    ASSERT_TRUE(protected_targets) << protected_targets.error().message;
    protected_ = std::make_unique<containment::ProtectedTargets>(std::move(*protected_targets));
    resolver_ = std::make_unique<containment::TargetResolver>(cgroup2_root_);
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20},
                                              [](std::span<const std::byte> record) {
                                                auto event = events::decode_kernel_event(record);
                                                ASSERT_TRUE(event.has_value()) << event.error().message;
                                                std::lock_guard lock(mutex_);
                                                events_.push_back(std::move(*event));
                                              });
    ASSERT_TRUE(sensor) << sensor.error().message;
    sensor_ = std::move(*sensor);
    struct stat st{};
    ASSERT_EQ(stat(credential_.c_str(), &st), 0);
    const nhg_inode_key key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev),
                            .ino = st.st_ino};
    ASSERT_TRUE(sensor_->credential_tables().upsert_credential(key, {.credential_id = kCredentialId, .class_id = 1}));
    auto ledger = ledger::RollbackLedger::open((dir_ / "ledger.db").string());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    executor_ = std::make_unique<containment::ContainmentExecutor>(
        sensor_->enforcement(), *ledger_, *protected_, *resolver_, cgroup2_root_,
        [this](std::string_view path) -> std::optional<catalogue::ResolvedCredential> {
          if (path != credential_) return std::nullopt;
          catalogue::ResolvedCredential c;
          c.path = credential_;
          c.credential_id = kCredentialId;
          return c;
        },
        clock_);
  }

  void TearDown() override {
    executor_.reset();
    ledger_.reset();
    sensor_.reset();
    while (!deep_.empty()) deep_.pop_back();  // innermost first: a cgroup with children cannot go
    service_.reset();
    other_.reset();
    fs::remove_all(pin_dir_);
    fs::remove_all(dir_);
  }

  Result<RollbackHandle> contain(ActionKind kind, const std::string& cgroup, std::vector<std::string> to = {}) {
    return executor_->contain({.action = kind,
                               .target = {.cgroup = cgroup},
                               .credential_path = kind == ActionKind::deny_credential ? credential_ : "",
                               .destinations = std::move(to),
                               .ttl = 60s,
                               .reason = "bpf test"},
                              "nhiguardctl");
  }

  std::vector<events::CgroupMoveEvent> moves_of(pid_t pid) {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(sensor_->poll(20).has_value());
    std::vector<events::CgroupMoveEvent> out;
    std::lock_guard lock(mutex_);
    for (const auto& e : events_) {
      if (auto* move = std::get_if<events::CgroupMoveEvent>(&e);
          move && move->process.tgid == static_cast<uint32_t>(pid)) {
        out.push_back(*move);
      }
    }
    return out;
  }

  uint64_t counter(nhg_counter which) {
    auto c = sensor_->counters().counters();
    EXPECT_TRUE(c) << c.error().message;
    return c ? c->values[which] : 0;
  }

  static inline std::unique_ptr<TestNetns> netns_;
  static inline std::unique_ptr<TestListener> listener_;
  static inline std::mutex mutex_;
  static inline std::vector<events::KernelEvent> events_;
  std::string pin_dir_;
  fs::path dir_;
  std::string credential_;
  std::string cgroup2_root_;
  std::unique_ptr<TestCgroup> service_;
  std::unique_ptr<TestCgroup> other_;
  std::vector<std::unique_ptr<TestCgroup>> deep_;  // innermost last
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  std::unique_ptr<kernel::KernelSensor> sensor_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ContainmentExecutor> executor_;
  SystemClock clock_;
};

TEST_F(FollowTest, BlockedProcessThatMovesToAnotherCgroupStaysBlockedWithItsChildrenUntilRollback) {
  const std::string remote = netns_->remote_v4();
  const std::string escape_dir = other_->path();
  Steps steps;
  // In the service before the block; each step: 1 connect, 2 move out, 3 connect from a child
  // forked after the move, 4 connect (after the rollback).
  pid_t pid = spawn_stepped(*service_, steps, [&] {
    steps.wait_go();
    steps.answer(static_cast<uint8_t>(connect_to(remote, kPort)));
    steps.wait_go();
    steps.answer(move_self_to(escape_dir) ? 0 : 1);
    steps.wait_go();
    steps.answer(static_cast<uint8_t>(wait_for_exit([&] {
      pid_t child = fork();
      if (child == 0) _exit(connect_to(remote, kPort));
      return child;
    }())));
    steps.wait_go();
    steps.answer(static_cast<uint8_t>(connect_to(remote, kPort)));
    return 0;
  });
  auto handle = contain(ActionKind::block_egress, service_->relative());
  ASSERT_TRUE(handle) << handle.error().message;

  EXPECT_EQ(steps.step(), EPERM) << "blocked in its own cgroup";
  ASSERT_EQ(steps.step(), 0) << "the move out of the blocked cgroup";
  EXPECT_EQ(steps.step(), EPERM) << "a child forked after the move";
  // Another process of the cgroup it moved to is not blocked.
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(*other_, [&] { return connect_to(remote, kPort); })), 0);

  auto moves = moves_of(pid);
  ASSERT_EQ(moves.size(), 1u) << "the move is an event";
  EXPECT_TRUE(moves[0].contained);
  EXPECT_EQ(moves[0].to_cgroup_id, other_->id());
  EXPECT_EQ(moves[0].process.cgroup_id, other_->id());
  EXPECT_EQ(moves[0].followed_cgroup_ids, std::vector<uint64_t>{service_->id()});

  ASSERT_TRUE(executor_->rollback(handle->handle, "nhiguardctl"));
  EXPECT_EQ(steps.step(), 0) << "after the rollback the moved process connects";
  auto followed = sensor_->enforcement().followed();
  ASSERT_TRUE(followed) << followed.error().message;
  EXPECT_TRUE(followed->empty()) << "rollback removes every per-process entry";
  EXPECT_EQ(wait_for_exit(pid), 0);
}

TEST_F(FollowTest, DeniedProcessThatMovesToAnotherCgroupIsStillKilledOnRead) {
  const std::string escape_dir = other_->path();
  Steps steps;
  pid_t pid = spawn_stepped(*service_, steps, [&] {
    steps.wait_go();
    steps.answer(move_self_to(escape_dir) ? 0 : 1);
    steps.wait_go();
    char buffer[64];
    int fd = open(credential_.c_str(), O_RDONLY);
    steps.answer(fd >= 0 && read(fd, buffer, sizeof(buffer)) > 0 ? 0 : 1);  // never reached when denied
    return 0;
  });
  auto handle = contain(ActionKind::deny_credential, service_->relative());
  ASSERT_TRUE(handle) << handle.error().message;
  ASSERT_EQ(steps.step(), 0) << "the move out of the denied cgroup";
  EXPECT_EQ(steps.step(), 255) << "the read after the move got an answer: the deny did not follow";
  EXPECT_EQ(wait_for_exit(pid), 128 + SIGKILL);
  // A process that was never in the denied cgroup reads it fine.
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(*other_,
                                          [&] {
                                            char buffer[64];
                                            int fd = open(credential_.c_str(), O_RDONLY);
                                            return fd >= 0 && read(fd, buffer, sizeof(buffer)) > 0 ? 0 : 1;
                                          })),
            0);
}

TEST_F(FollowTest, TargetDeeperThanTheKernelWalksIsRefusedAndADeepProcessIsCounted) {
  // payments.service is at level 3 (/system.slice/nhiguard-test-N.slice/payments.service).
  std::string relative = "payments.service";
  for (int level = 4; level <= 20; ++level) {
    relative += "/l" + std::to_string(level);
    deep_.push_back(std::make_unique<TestCgroup>(relative));
  }
  const TestCgroup& deepest = *deep_.back();
  auto refused = contain(ActionKind::block_egress, deepest.relative());
  ASSERT_FALSE(refused) << "a block 20 levels deep was recorded " << containment::to_string(refused->state)
                        << " but the programs walk " << NHG_MAX_CGROUP_DEPTH << " levels: it can never match";
  EXPECT_EQ(refused.error().code, EINVAL);
  EXPECT_NE(refused.error().message.find("20 levels"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(contain(ActionKind::deny_credential, deepest.relative()));

  // A block at level 16 and above still matches a process 20 levels deep, and the process's
  // depth is counted: a block below level 16 could not see it.
  auto shallow = contain(ActionKind::block_egress, deep_[16 - 4]->relative());
  ASSERT_TRUE(shallow) << shallow.error().message;
  const uint64_t before = counter(NHG_CTR_CGROUP_DEPTH_EXCEEDED);
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(deepest, [&] { return connect_to(netns_->remote_v4(), kPort); })), EPERM);
  ASSERT_TRUE(executor_->rollback(shallow->handle, "nhiguardctl"));
  auto unrelated = contain(ActionKind::block_egress, other_->relative());
  ASSERT_TRUE(unrelated) << unrelated.error().message;
  EXPECT_EQ(wait_for_exit(spawn_in_cgroup(deepest, [&] { return connect_to(netns_->remote_v4(), kPort); })), 0);
  EXPECT_GT(counter(NHG_CTR_CGROUP_DEPTH_EXCEEDED), before);
}

// Ping sockets (SOCK_DGRAM, IPPROTO_ICMP) have no sendmsg hook: their unconnected sends were
// matched on the socket's destination, which is 0.
TEST_F(FollowTest, UnconnectedPingToABlockedDestinationIsDropped) {
  const std::string range_file = "/proc/sys/net/ipv4/ping_group_range";
  std::string saved_range;
  std::getline(std::ifstream(range_file), saved_range);
  std::ofstream(range_file) << "0 2147483647";
  const std::string remote = netns_->remote_v4();
  auto ping_from = [&](const TestCgroup& cgroup) {
    return wait_for_exit(spawn_in_cgroup(cgroup, [&] {
      int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
      if (fd < 0) return 2;
      const bool replied = ping_once(fd, remote);
      close(fd);
      return replied ? 0 : 1;
    }));
  };
  EXPECT_EQ(ping_from(*service_), 0) << "the namespace answers pings";
  auto handle = contain(ActionKind::block_egress, service_->relative(), {remote + "/32"});
  ASSERT_TRUE(handle) << handle.error().message;
  EXPECT_EQ(ping_from(*service_), 1) << "a ping to the blocked destination got its reply";
  EXPECT_EQ(ping_from(*other_), 0);
  ASSERT_TRUE(executor_->rollback(handle->handle, "nhiguardctl"));
  EXPECT_EQ(ping_from(*service_), 0);
  std::ofstream(range_file) << saved_range;
}

// A raw socket opened before the block sends a hand-built UDP datagram: no connect or sendmsg hook
// sees it, and the socket has no destination. After the block, no raw socket can be opened.
TEST_F(FollowTest, RawSocketUdpToABlockedDestinationIsDroppedAndNewRawSocketsRefused) {
  const std::string remote = netns_->remote_v4();
  Steps steps;
  pid_t pid = spawn_stepped(*service_, steps, [&] {
    int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
    steps.wait_go();
    steps.answer(raw >= 0 && raw_udp_send(raw, remote, kPort, "raw-1") ? 0 : 1);
    steps.wait_go();
    steps.answer(raw_udp_send(raw, remote, kPort, "raw-2") ? 0 : static_cast<uint8_t>(errno));
    steps.wait_go();
    int again = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    steps.answer(again >= 0 ? 0 : static_cast<uint8_t>(errno));
    steps.wait_go();
    // An unconnected UDP sendto: the sendmsg hook sees its address (closed before this change).
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const sockaddr_in to = v4_address(remote, kPort);
    steps.answer(sendto(udp, "udp", 3, 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) == 3
                     ? 0
                     : static_cast<uint8_t>(errno));
    return 0;
  });
  const uint64_t udp_before = listener_->udp_bytes();
  ASSERT_EQ(steps.step(), 0);
  ASSERT_TRUE(eventually([&] { return listener_->udp_bytes() == udp_before + 5; })) << "a raw UDP datagram arrives";
  auto handle = contain(ActionKind::block_egress, service_->relative(), {remote + ":" + std::to_string(kPort)});
  ASSERT_TRUE(handle) << handle.error().message;
  const uint8_t sent = steps.step();
  EXPECT_EQ(steps.step(), EPERM) << "a blocked service opened a raw socket";
  EXPECT_EQ(steps.step(), EPERM) << "an unconnected UDP sendto to the blocked destination";
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(listener_->udp_bytes(), udp_before + 5)
      << "the raw datagram to the blocked destination arrived (send " << static_cast<int>(sent) << ")";
  EXPECT_EQ(wait_for_exit(pid), 0);
  ASSERT_TRUE(executor_->rollback(handle->handle, "nhiguardctl"));
}

}  // namespace
