// The containment executor on the real kernel (root): the loaded sensor and egress programs, a real
// ledger, services in test cgroups, a listener in a network namespace of the test's own.
// - Two denies on one (credential, cgroup): rolling back either leaves the reader killed, and the
//   kernel entry carries the later expiry while both are active.
// - Two blocks on one cgroup (different destinations and TTLs): rolling back one leaves the other.
// - A simulated reboot (the pins removed, the recorded boot id changed, wall-clock time gone by):
//   an unexpired block is re-applied (a connect from the cgroup fails again) and an expired one is
//   marked lapsed_by_reboot.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "containment/containment_executor.h"
#include "identity/mountinfo.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"
#include "test_cgroup.h"
#include "test_netns.h"
#include "../unit/sqlite_side_connection.h"

namespace fs = std::filesystem;
using namespace nhiguard;
using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::TestListener;
using nhiguard::testing::TestNetns;
using nhiguard::testing::wait_for_exit;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kCredentialId = 21;
constexpr uint16_t kPort = 18451;

// 0 when a TCP connect to address:port succeeds, else its errno.
int connect_to(const std::string& address, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? 0 : errno;
  close(fd);
  return rc;
}

class ExecutorKernelTest : public ::testing::Test {
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
    pin_dir_ = "/sys/fs/bpf/nhiguard-test-executor-" + std::to_string(getpid());
    dir_ = fs::path("/tmp") / ("nhiguard-executor-" + std::to_string(getpid()));
    fs::create_directories(dir_ / ".aws");
    credential_ = (dir_ / ".aws/credentials").string();
    std::ofstream(credential_) << "[default]\naws_secret_access_key = NOT-A-REAL-SECRET\n";
    service_ = std::make_unique<TestCgroup>("payments.service");
    other_ = std::make_unique<TestCgroup>("billing.service");
    auto root = identity::find_cgroup2_mount();
    ASSERT_TRUE(root) << root.error().message;
    cgroup2_root_ = *root;
    auto protected_targets = containment::ProtectedTargets::from_host({});
    ASSERT_TRUE(protected_targets) << protected_targets.error().message;
    protected_ = std::make_unique<containment::ProtectedTargets>(std::move(*protected_targets));
    resolver_ = std::make_unique<containment::TargetResolver>(cgroup2_root_);
    start_agent();
  }

  void TearDown() override {
    executor_.reset();
    ledger_.reset();
    sensor_.reset();
    service_.reset();
    other_.reset();
    fs::remove_all(pin_dir_);
    fs::remove_all(dir_);
  }

  // What an agent start does: the sensor (adopting the pins), the ledger, the executor, reconcile.
  void start_agent() {
    executor_.reset();
    ledger_.reset();
    sensor_.reset();
    auto sensor = kernel::KernelSensor::start({.pin_dir = pin_dir_, .ringbuf_bytes = 1u << 20},
                                              [](std::span<const std::byte>) {});
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
    executor_->set_alert_sink([this](std::string_view kind, const std::string&) { alerts_.emplace_back(kind); });
    executor_->reconcile();
  }

  RollbackHandle contain(ActionKind kind, std::chrono::milliseconds ttl, const TestCgroup& cgroup,
                         std::vector<std::string> destinations = {}) {
    auto handle = executor_->contain({.action = kind,
                                      .target = {.cgroup = cgroup.relative()},
                                      .credential_path = kind == ActionKind::deny_credential ? credential_ : "",
                                      .destinations = std::move(destinations),
                                      .ttl = ttl,
                                      .reason = "bpf test"},
                                     "nhiguardctl");
    EXPECT_TRUE(handle) << handle.error().message;
    return handle ? *handle : RollbackHandle{};
  }

  // The exit status of a reader of the credential in `cgroup`: 0 read it, 128 + SIGKILL denied.
  int read_from(const TestCgroup& cgroup) {
    return wait_for_exit(spawn_in_cgroup(cgroup, [&] {
      char buffer[64];
      int fd = open(credential_.c_str(), O_RDONLY);
      if (fd < 0 || read(fd, buffer, sizeof(buffer)) <= 0) return 40;
      return 0;
    }));
  }
  int connect_from(const TestCgroup& cgroup, const std::string& remote) {
    return wait_for_exit(spawn_in_cgroup(cgroup, [&] { return connect_to(remote, kPort); }));
  }
  uint64_t deny_expiry() {
    auto denies = sensor_->enforcement().credential_denies();
    EXPECT_TRUE(denies);
    for (const auto& [key, value] : *denies) {
      if (key.credential_id == kCredentialId && key.cgroup_id == service_->id()) return value.expires_at_ns;
    }
    return 0;
  }
  ActionState state_of(const RollbackHandle& h) {
    auto stored = ledger_->get(h.handle);
    EXPECT_TRUE(stored) << stored.error().message;
    return stored ? stored->state : ActionState::held;
  }

  static inline std::unique_ptr<TestNetns> netns_;
  static inline std::unique_ptr<TestListener> listener_;
  std::string pin_dir_;
  fs::path dir_;
  std::string credential_;
  std::string cgroup2_root_;
  SystemClock clock_;
  std::unique_ptr<TestCgroup> service_;
  std::unique_ptr<TestCgroup> other_;
  std::unique_ptr<kernel::KernelSensor> sensor_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  std::unique_ptr<containment::ContainmentExecutor> executor_;
  std::vector<std::string> alerts_;
};

// Attack: a second (short) deny on the same key is rolled back, or expires, and deletes the first's.
TEST_F(ExecutorKernelTest, TwoDeniesOnOneKeyRollingBackEitherLeavesTheReaderKilled) {
  ASSERT_EQ(read_from(*service_), 0) << "before any deny the service reads its credential";
  const RollbackHandle short_deny = contain(ActionKind::deny_credential, 1min, *service_);
  const RollbackHandle long_deny = contain(ActionKind::deny_credential, 10min, *service_);
  EXPECT_EQ(deny_expiry(), long_deny.expires_at_boot_ns) << "the later expiry holds in the kernel";
  EXPECT_EQ(read_from(*service_), 128 + SIGKILL);

  ASSERT_TRUE(executor_->rollback(short_deny.handle, "nhiguardctl"));
  EXPECT_EQ(read_from(*service_), 128 + SIGKILL) << "rolling back one deny lifted the other";
  EXPECT_EQ(deny_expiry(), long_deny.expires_at_boot_ns);
  EXPECT_EQ(state_of(long_deny), ActionState::active);

  // The other order: a new short one, then the long one goes; the short one keeps its expiry.
  const RollbackHandle again = contain(ActionKind::deny_credential, 2min, *service_);
  EXPECT_EQ(deny_expiry(), long_deny.expires_at_boot_ns);
  ASSERT_TRUE(executor_->rollback(long_deny.handle, "nhiguardctl"));
  EXPECT_EQ(read_from(*service_), 128 + SIGKILL);
  EXPECT_EQ(deny_expiry(), again.expires_at_boot_ns);
  EXPECT_EQ(read_from(*other_), 0) << "another cgroup still reads";

  ASSERT_TRUE(executor_->rollback(again.handle, "nhiguardctl"));
  EXPECT_EQ(read_from(*service_), 0) << "the last rollback lifts the deny";
  EXPECT_EQ(deny_expiry(), 0u);
}

TEST_F(ExecutorKernelTest, TwoBlocksOnOneCgroupRollingBackOneLeavesTheOther) {
  const std::string remote = netns_->remote_v4();
  ASSERT_EQ(connect_from(*service_, remote), 0);
  const RollbackHandle listed = contain(ActionKind::block_egress, 10min, *service_, {remote + "/32"});
  const RollbackHandle all = contain(ActionKind::block_egress, 1min, *service_);
  EXPECT_EQ(connect_from(*service_, remote), EPERM);
  ASSERT_TRUE(executor_->rollback(all.handle, "nhiguardctl"));
  EXPECT_EQ(connect_from(*service_, remote), EPERM) << "rolling back the all-egress block lifted the listed one";
  auto blocks = sensor_->enforcement().egress_blocks();
  ASSERT_TRUE(blocks);
  ASSERT_EQ(blocks->size(), 1u);
  EXPECT_EQ(blocks->front().second.mode, uint32_t{NHG_BLOCK_LISTED});
  EXPECT_EQ(blocks->front().second.expires_at_ns, listed.expires_at_boot_ns);
  ASSERT_TRUE(executor_->rollback(listed.handle, "nhiguardctl"));
  EXPECT_EQ(connect_from(*service_, remote), 0);
}

// Attack: reboot the host (or remove the pins and forge a new boot) so containment ends silently.
TEST_F(ExecutorKernelTest, AfterASimulatedRebootAnUnexpiredBlockIsReappliedAndAnExpiredOneLapses) {
  const std::string remote = netns_->remote_v4();
  const RollbackHandle unexpired = contain(ActionKind::block_egress, 30min, *service_);
  const RollbackHandle expired = contain(ActionKind::block_egress, 30min, *other_);
  ASSERT_EQ(connect_from(*service_, remote), EPERM);

  // The reboot: the pins are gone with the kernel, the ledger's actions name the boot before, and
  // the second one's wall-clock expiry passed while the host was down.
  executor_.reset();
  sensor_.reset();
  fs::remove_all(pin_dir_);
  ASSERT_EQ(test_support::execute_sql(
                (dir_ / "ledger.db").string(),
                "UPDATE actions SET boot_id = '00000000-0000-4000-8000-000000000000', expires_at_boot_ns = 1; "
                "UPDATE actions SET expires_at_ns = expires_at_ns - 3600000000000 WHERE handle = '" +
                    expired.handle + "'"),
            "");
  start_agent();

  EXPECT_EQ(connect_from(*service_, remote), EPERM) << "the unexpired block was not re-applied after the reboot";
  EXPECT_EQ(connect_from(*other_, remote), 0) << "the expired block must not come back";
  auto again = ledger_->get(unexpired.handle);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, ActionState::active);
  EXPECT_EQ(again->boot_id, clock_.boot_id());
  const uint64_t left = again->expires_at_boot_ns - clock_.boot_ns();
  EXPECT_GT(left, 29 * 60 * 1'000'000'000ull);
  EXPECT_LE(left, 30 * 60 * 1'000'000'000ull) << "re-applied for what was left of its TTL, not anew";
  EXPECT_EQ(state_of(expired), ActionState::lapsed_by_reboot);
  EXPECT_EQ(std::count(alerts_.begin(), alerts_.end(), "action_reapplied_after_reboot"), 1);
  EXPECT_EQ(std::count(alerts_.begin(), alerts_.end(), "action_lapsed_by_reboot"), 1);

  ASSERT_TRUE(executor_->rollback(unexpired.handle, "nhiguardctl"));
  EXPECT_EQ(connect_from(*service_, remote), 0);
}

}  // namespace
