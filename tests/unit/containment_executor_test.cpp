// ContainmentExecutor without root: enforcement maps in memory (the EnforcementMaps seam), a clock
// the test steps, a real ledger in a temporary directory, a temporary directory as the cgroup2 root.
// Shows: the sweeper follows CLOCK_BOOTTIME, not the wall clock; actions sharing a kernel key keep
// each other's containment (the latest expiry holds, rollback of one leaves the other); an action
// the ledger refuses stays in force, is visible, can be rolled back, and is recorded later; after a
// reboot an unexpired block is re-applied for what is left of it and an expired one lapses.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "containment/containment_executor.h"
#include "fake_kernel.h"
#include "common/ulid.h"
#include "sqlite_side_connection.h"
#include "temp_dir.h"

namespace nhiguard::containment {
namespace {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;
using namespace std::chrono_literals;

constexpr uint64_t kSecond = 1'000'000'000;

class SteppedClock final : public Clock {
 public:
  uint64_t wall_ns() const override { return wall; }
  uint64_t boot_ns() const override { return boot; }
  std::string boot_id() const override { return boot_id_value; }
  void advance(std::chrono::seconds by) {
    wall += static_cast<uint64_t>(by.count()) * kSecond;
    boot += static_cast<uint64_t>(by.count()) * kSecond;
  }

  uint64_t wall = 1'800'000'000 * kSecond;
  uint64_t boot = 5'000 * kSecond;
  std::string boot_id_value = "8d1e4f5a-1111-4c2b-9f00-0123456789ab";
};

using MemoryMaps = testing::FakeEnforcement;

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(root() / "apps" / "payments.service");
    std::filesystem::create_directories(root() / "apps" / "billing.service");
    std::ofstream(root() / "apps" / "payments.service" / "cgroup.procs");
    std::ofstream(root() / "apps" / "billing.service" / "cgroup.procs");
    std::filesystem::create_directories(dir_.path() / "state");
    open_ledger();
    protected_ = std::make_unique<containment::ProtectedTargets>(containment::ProtectedTargets::Snapshot{
        .agent = {.pid = 1000, .start_ns = 1, .cgroup_path = "/agent.slice/nhiguard-agent.service", .comm = "agent"},
        .init = {.pid = 1, .start_ns = 1, .cgroup_path = "/init.scope", .comm = "systemd"},
    });
    resolver_ = std::make_unique<containment::TargetResolver>(root().string());
    make_executor();
  }

  std::filesystem::path root() const { return dir_.path() / "cgroup"; }
  std::string ledger_path() const { return (dir_.path() / "state" / "ledger.db").string(); }
  uint64_t cgroup_id(const std::string& relative) const {
    return std::filesystem::status(root() / relative.substr(1)).type() == std::filesystem::file_type::directory
               ? resolver_->resolve_cgroup(relative)->cgroup_id
               : 0;
  }

  void open_ledger() {
    executor_.reset();
    ledger_.reset();
    auto ledger = ledger::RollbackLedger::open(ledger_path());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
  }
  void make_executor() {
    executor_ = std::make_unique<ContainmentExecutor>(
        maps_, *ledger_, *protected_, *resolver_, root().string(),
        [](std::string_view path) -> std::optional<catalogue::ResolvedCredential> {
          if (path != "/etc/payments/token") return std::nullopt;
          catalogue::ResolvedCredential c;
          c.path = std::string(path);
          c.credential_id = 17;
          return c;
        },
        clock_);
    executor_->set_alert_sink([this](std::string_view kind, const std::string& message) {
      alerts_.push_back(std::string(kind) + ": " + message);
    });
  }

  RollbackHandle contain(ActionKind kind, std::chrono::milliseconds ttl, std::vector<std::string> destinations = {},
                         std::string cgroup = "/apps/payments.service") {
    ContainRequestSpec spec{.action = kind,
                            .target = {.cgroup = cgroup},
                            .credential_path = kind == ActionKind::deny_credential ? "/etc/payments/token" : "",
                            .destinations = std::move(destinations),
                            .ttl = ttl,
                            .reason = "unit test"};
    auto handle = executor_->contain(spec, "nhiguardctl");
    EXPECT_TRUE(handle) << handle.error().message;
    return handle ? *handle : RollbackHandle{};
  }

  ActionState state_of(const RollbackHandle& h) {
    auto stored = ledger_->get(h.handle);
    EXPECT_TRUE(stored) << stored.error().message;
    return stored ? stored->state : ActionState::held;
  }

  size_t alerts_of(std::string_view kind) const {
    size_t n = 0;
    for (const auto& a : alerts_) n += a.starts_with(std::string(kind) + ": ");
    return n;
  }

  testing::TempDir dir_{"nhiguard-executor"};
  SteppedClock clock_;
  MemoryMaps maps_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  std::unique_ptr<ContainmentExecutor> executor_;
  std::vector<std::string> alerts_;
};

// Attack: step the wall clock (settimeofday, NTP) forward to lift a block early, or back to keep a
// freeze late. The sweeper must not care.
TEST_F(ExecutorTest, SweeperFollowsTheBootClockNotTheWallClock) {
  const RollbackHandle block = contain(ActionKind::block_egress, 10min);
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  ASSERT_TRUE(maps_.blocks.contains(cgroup));
  EXPECT_EQ(maps_.blocks[cgroup].expires_at_boot_ns, clock_.boot + 600 * kSecond);
  EXPECT_EQ(ledger_->get(block.handle)->boot_id, clock_.boot_id_value);

  clock_.wall += 2 * 86'400 * kSecond;  // two days ahead: far past the wall-clock expiry
  executor_->sweep();
  EXPECT_EQ(state_of(block), ActionState::active) << "a forward wall-clock step lifted the block";
  EXPECT_TRUE(maps_.blocks.contains(cgroup));

  clock_.wall -= 4 * 86'400 * kSecond;  // and two days behind
  clock_.boot += 600 * kSecond;         // while the boot clock reaches the TTL
  executor_->sweep();
  EXPECT_EQ(state_of(block), ActionState::expired) << "a backward wall-clock step kept the block";
  EXPECT_FALSE(maps_.blocks.contains(cgroup));
}

// Attack: two denies on one (credential, cgroup), a short one and a long one; the short one ends
// (or is rolled back) and takes the long one's kernel entry with it.
TEST_F(ExecutorTest, DeniesOnOneKeyAreSharedAndTheLatestExpiryHolds) {
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  const RollbackHandle short_deny = contain(ActionKind::deny_credential, 5min);
  const RollbackHandle long_deny = contain(ActionKind::deny_credential, 20min);
  ASSERT_EQ(maps_.denies.size(), 1u);
  EXPECT_EQ(maps_.denies.begin()->second.expires_at_ns, clock_.boot + 1200 * kSecond) << "the latest expiry holds";
  EXPECT_EQ(maps_.denies.begin()->second.rule_id, ContainmentExecutor::kernel_rule_id(long_deny.handle));

  // A third, shorter one does not shorten the entry.
  const RollbackHandle shorter = contain(ActionKind::deny_credential, 1min);
  EXPECT_EQ(maps_.denies.begin()->second.expires_at_ns, clock_.boot + 1200 * kSecond);

  // Rolling back the long one leaves the others in force with their expiry.
  ASSERT_TRUE(executor_->rollback(long_deny.handle, "nhiguardctl"));
  EXPECT_TRUE(maps_.denies_now(17, cgroup, clock_.boot + 299 * kSecond));
  EXPECT_EQ(maps_.denies.begin()->second.expires_at_ns, clock_.boot + 300 * kSecond);

  // The first to expire leaves the last.
  clock_.advance(61s);
  executor_->sweep();
  EXPECT_EQ(state_of(shorter), ActionState::expired);
  EXPECT_EQ(state_of(short_deny), ActionState::active);
  EXPECT_TRUE(maps_.denies_now(17, cgroup, clock_.boot));
  clock_.advance(240s);
  executor_->sweep();
  EXPECT_EQ(state_of(short_deny), ActionState::expired);
  EXPECT_TRUE(maps_.denies.empty()) << "the last one out removes the entry";
}

TEST_F(ExecutorTest, DeniesOnOneKeyRollingBackTheShortOneKeepsTheLongOne) {
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  const RollbackHandle short_deny = contain(ActionKind::deny_credential, 5min);
  const RollbackHandle long_deny = contain(ActionKind::deny_credential, 20min);
  ASSERT_TRUE(executor_->rollback(short_deny.handle, "nhiguardctl"));
  ASSERT_TRUE(maps_.denies_now(17, cgroup, clock_.boot + 1199 * kSecond));
  clock_.advance(301s);
  executor_->sweep();
  EXPECT_EQ(state_of(long_deny), ActionState::active);
  EXPECT_TRUE(maps_.denies_now(17, cgroup, clock_.boot));
}

// Same for egress: a listed block and an all-egress block on one cgroup, different TTLs.
TEST_F(ExecutorTest, EgressBlocksOnOneCgroupCombineAndEachRollsBackAlone) {
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  const RollbackHandle listed = contain(ActionKind::block_egress, 30min, {"203.0.113.0/24:443"});
  ASSERT_EQ(maps_.blocks.at(cgroup).destinations.size(), 1u);
  const RollbackHandle other_list = contain(ActionKind::block_egress, 5min, {"198.51.100.7/32"});
  EXPECT_EQ(maps_.blocks.at(cgroup).destinations.size(), 2u) << "the union of both lists";
  EXPECT_EQ(maps_.blocks.at(cgroup).expires_at_boot_ns, clock_.boot + 1800 * kSecond);
  const RollbackHandle all = contain(ActionKind::block_egress, 10min);
  EXPECT_TRUE(maps_.blocks.at(cgroup).destinations.empty()) << "one all-egress block makes the entry all-egress";
  EXPECT_EQ(maps_.blocks.at(cgroup).expires_at_boot_ns, clock_.boot + 1800 * kSecond);

  ASSERT_TRUE(executor_->rollback(all.handle, "nhiguardctl"));
  ASSERT_TRUE(maps_.blocks.contains(cgroup)) << "rolling back one block lifted the others";
  EXPECT_EQ(maps_.blocks.at(cgroup).destinations.size(), 2u);

  clock_.advance(301s);
  executor_->sweep();
  EXPECT_EQ(state_of(other_list), ActionState::expired);
  ASSERT_TRUE(maps_.blocks.contains(cgroup));
  ASSERT_EQ(maps_.blocks.at(cgroup).destinations.size(), 1u);
  EXPECT_EQ(maps_.blocks.at(cgroup).destinations[0].to_string(), "203.0.113.0/24:443");
  EXPECT_EQ(maps_.blocks.at(cgroup).rule_id, ContainmentExecutor::kernel_rule_id(listed.handle));

  ASSERT_TRUE(executor_->rollback(listed.handle, "nhiguardctl"));
  EXPECT_FALSE(maps_.blocks.contains(cgroup));
}

// A ledger that refuses writes (here a trigger; ENOSPC in the e2e fault test): the block is in
// force first and stays, the alert says so, status sees it, and the row lands once writes work.
TEST_F(ExecutorTest, ALedgerThatRefusesWritesNeverMeansNoContainment) {
  ASSERT_EQ(test_support::execute_sql(ledger_path(),
                                      "CREATE TRIGGER full BEFORE INSERT ON actions BEGIN "
                                      "SELECT RAISE(ABORT, 'database or disk is full'); END"),
            "");
  const RollbackHandle block = contain(ActionKind::block_egress, 10min);
  ASSERT_FALSE(block.handle.empty());
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  EXPECT_TRUE(maps_.blocks.contains(cgroup)) << "the enforcement must not depend on the ledger";
  EXPECT_EQ(ledger_->get(block.handle).error().code, ENOENT);
  EXPECT_EQ(alerts_of("unrecorded_action"), 1u);
  auto owed = executor_->unrecorded();
  ASSERT_EQ(owed.size(), 1u);
  EXPECT_EQ(owed[0].handle.handle, block.handle);
  EXPECT_NE(owed[0].ledger_error.find("database or disk is full"), std::string::npos) << owed[0].ledger_error;
  auto listed = executor_->list({.states = {ActionState::active}});
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u) << "nhiguardctl actions shows it meanwhile";

  // Still refused: the sweep keeps it, and the block.
  executor_->sweep();
  EXPECT_TRUE(maps_.blocks.contains(cgroup));
  EXPECT_EQ(executor_->unrecorded().size(), 1u);

  // Space returns: the row appears, once, and the alert says it was recorded.
  ASSERT_EQ(test_support::execute_sql(ledger_path(), "DROP TRIGGER full"), "");
  executor_->sweep();
  auto stored = ledger_->get(block.handle);
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_EQ(stored->state, ActionState::active);
  EXPECT_EQ(stored->expires_at_boot_ns, block.expires_at_boot_ns);
  EXPECT_TRUE(executor_->unrecorded().empty());
  EXPECT_EQ(alerts_of("unrecorded_action_recorded"), 1u);
  executor_->sweep();
  EXPECT_EQ(ledger_->history(block.handle)->size(), 1u);
}

// A contain from nhiguardctl whose row the ledger refused is written later by the sweeper, on its
// own thread: the row must still name the control-socket peer that asked, or the audit of who
// contained what would have a hole exactly where the disk was full.
TEST_F(ExecutorTest, AnOwedWriteKeepsTheControlPeerThatAskedForIt) {
  ASSERT_EQ(test_support::execute_sql(ledger_path(),
                                      "CREATE TRIGGER full BEFORE INSERT ON actions BEGIN "
                                      "SELECT RAISE(ABORT, 'database or disk is full'); END"),
            "");
  const ledger::ControlPeer operator_peer{.pid = 4242,
                                          .uid = 0,
                                          .gid = 0,
                                          .start_time_ticks = 77,
                                          .exe = "/usr/bin/nhiguardctl",
                                          .comm = "nhiguardctl",
                                          .cgroup = "/user.slice/user-0.slice/session-1.scope"};
  RollbackHandle block;
  {
    const ledger::ScopedControlPeer scope(operator_peer);
    block = contain(ActionKind::block_egress, 10min);
  }
  ASSERT_FALSE(block.handle.empty());
  EXPECT_EQ(ledger_->get(block.handle).error().code, ENOENT);

  ASSERT_EQ(test_support::execute_sql(ledger_path(), "DROP TRIGGER full"), "");
  executor_->sweep();  // outside any control command
  auto history = ledger_->history(block.handle);
  ASSERT_TRUE(history) << history.error().message;
  ASSERT_EQ(history->size(), 1u);
  ASSERT_TRUE(history->front().peer.has_value()) << "the owed row lost its peer";
  EXPECT_EQ(history->front().peer->pid, 4242);
  EXPECT_EQ(history->front().peer->exe, "/usr/bin/nhiguardctl");
  EXPECT_EQ(history->front().peer->cgroup, operator_peer.cgroup);
}

TEST_F(ExecutorTest, AnUnrecordedActionRollsBackAndExpiresAndItsHistoryLandsInOrder) {
  ASSERT_EQ(test_support::execute_sql(ledger_path(),
                                      "CREATE TRIGGER full BEFORE INSERT ON actions BEGIN "
                                      "SELECT RAISE(ABORT, 'database or disk is full'); END"),
            "");
  const uint64_t cgroup = cgroup_id("/apps/payments.service");
  const RollbackHandle rolled = contain(ActionKind::deny_credential, 10min);
  const RollbackHandle expiring = contain(ActionKind::block_egress, 1min);
  ASSERT_TRUE(maps_.denies_now(17, cgroup, clock_.boot));

  auto undone = executor_->rollback(rolled.handle, "nhiguardctl");
  ASSERT_TRUE(undone) << undone.error().message;
  EXPECT_EQ(undone->state, ActionState::rolled_back);
  EXPECT_TRUE(maps_.denies.empty()) << "rollback of a not-yet-recorded action must work";
  EXPECT_EQ(executor_->get(rolled.handle)->state, ActionState::rolled_back);

  clock_.advance(61s);
  executor_->sweep();  // still refused: the expiry happens from memory
  EXPECT_FALSE(maps_.blocks.contains(cgroup));
  EXPECT_EQ(executor_->get(expiring.handle)->state, ActionState::expired);

  ASSERT_EQ(test_support::execute_sql(ledger_path(), "DROP TRIGGER full"), "");
  executor_->sweep();
  EXPECT_TRUE(executor_->unrecorded().empty());
  EXPECT_EQ(state_of(rolled), ActionState::rolled_back);
  EXPECT_EQ(state_of(expiring), ActionState::expired);
  auto history = ledger_->history(rolled.handle);
  ASSERT_TRUE(history);
  ASSERT_EQ(history->size(), 2u);
  EXPECT_EQ(history->front().to_state, ActionState::active);
  EXPECT_EQ(history->back().to_state, ActionState::rolled_back);
  EXPECT_EQ(history->back().actor, "nhiguardctl");
}

// After a reboot the pins are gone and every cgroup has a new id: an unexpired block is re-applied
// with what is left of its TTL (on the new boot's clock), an expired one and a freeze lapse.
TEST_F(ExecutorTest, AfterARebootUnexpiredBlocksAreReappliedAndTheRestLapse) {
  const RollbackHandle unexpired = contain(ActionKind::block_egress, 30min, {"203.0.113.0/24"});
  const RollbackHandle deny = contain(ActionKind::deny_credential, 30min);
  const RollbackHandle expiring = contain(ActionKind::block_egress, 2min, {}, "/apps/billing.service");
  ASSERT_TRUE(ledger_->record([&] {
    RollbackHandle freeze = unexpired;  // a freeze as a previous agent recorded it (no cgroupfs here)
    freeze.handle = new_handle_id();
    freeze.action = ActionKind::freeze;
    freeze.target.destinations.clear();
    return freeze;
  }()));

  // The reboot: pins gone, cgroups made anew (new ids), a new boot id and a boot clock from zero;
  // 10 minutes of wall-clock time passed.
  maps_.blocks.clear();
  maps_.denies.clear();
  const uint64_t old_cgroup = cgroup_id("/apps/payments.service");
  std::filesystem::remove_all(root() / "apps");
  std::filesystem::create_directories(root() / "apps" / "placeholder");  // so the new inodes differ
  std::filesystem::create_directories(root() / "apps" / "payments.service");
  std::filesystem::create_directories(root() / "apps" / "billing.service");
  std::ofstream(root() / "apps" / "payments.service" / "cgroup.procs");
  const uint64_t new_cgroup = cgroup_id("/apps/payments.service");
  clock_.wall += 600 * kSecond;
  clock_.boot = 30 * kSecond;
  clock_.boot_id_value = "0b2c3d4e-2222-4c2b-9f00-0123456789ab";
  open_ledger();
  make_executor();
  executor_->reconcile();

  auto again = ledger_->get(unexpired.handle);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->state, ActionState::active);
  EXPECT_EQ(again->boot_id, clock_.boot_id_value);
  EXPECT_EQ(again->target.cgroup_id, new_cgroup);
  ASSERT_TRUE(maps_.blocks.contains(new_cgroup)) << "the unexpired block was not re-applied";
  EXPECT_FALSE(old_cgroup != new_cgroup && maps_.blocks.contains(old_cgroup));
  EXPECT_EQ(maps_.blocks.at(new_cgroup).expires_at_boot_ns, clock_.boot + 1200 * kSecond) << "what was left of it";
  EXPECT_TRUE(maps_.denies_now(17, new_cgroup, clock_.boot + 1199 * kSecond)) << "the deny was not re-applied";
  EXPECT_EQ(ledger_->history(unexpired.handle)->back().note.find("re-applied after reboot"), 0u);

  EXPECT_EQ(state_of(expiring), ActionState::lapsed_by_reboot);
  EXPECT_EQ(ledger_->list({.states = {ActionState::lapsed_by_reboot}})->size(), 2u) << "the freeze lapses too";
  EXPECT_EQ(alerts_of("action_reapplied_after_reboot"), 2u);
  EXPECT_EQ(alerts_of("action_lapsed_by_reboot"), 2u);

  // The re-applied block expires on the new boot's clock.
  clock_.advance(1201s);
  executor_->sweep();
  EXPECT_EQ(state_of(unexpired), ActionState::expired);
  EXPECT_TRUE(maps_.blocks.empty());
}

}  // namespace
}  // namespace nhiguard::containment
