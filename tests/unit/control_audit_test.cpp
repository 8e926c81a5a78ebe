// Local commands are audited, and a contained workload cannot lift its own containment through the
// control socket. The pure guard (control_peer.h) with a table of cgroup paths, and the whole path
// over a real socket: ControlServer -> AuditTrail over a real RollbackLedger, the test process
// itself being the peer (its cgroup read from /proc/self/cgroup, as the server reads it). An action
// that targets the test's own cgroup (or one above it) cannot be rolled back or rejected, nor the
// agent set to observe while it is in force: refused with the reason, the action untouched, an
// audit row naming the peer. An action elsewhere is rolled back, and its history row names the peer.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "control/control_audit.h"
#include "control/control_client.h"
#include "control/control_peer.h"
#include "control/control_server.h"
#include "identity/process_info.h"
#include "ledger/rollback_ledger.h"
#include "temp_dir.h"

using namespace nhiguard;
using namespace nhiguard::control;
using containment::ActionKind;
using containment::ActionState;
using nlohmann::json;

namespace {

TEST(ControlPeerGuard, CgroupContainment) {
  struct Row {
    const char* cgroup;
    const char* ancestor;
    bool within;
  };
  for (const Row& r : {Row{"/a/b", "/a/b", true}, Row{"/a/b/c", "/a/b", true}, Row{"/a/b/c/d", "/a/b/", true},
                       Row{"/a/bc", "/a/b", false}, Row{"/a", "/a/b", false}, Row{"/x/a/b", "/a/b", false},
                       Row{"/anything", "/", true}, Row{"/", "/", true}, Row{"", "/a", false}, Row{"/a", "", false}}) {
    EXPECT_EQ(cgroup_is_within(r.cgroup, r.ancestor), r.within) << r.cgroup << " in " << r.ancestor;
  }
}

containment::RollbackHandle action_on(std::string id, std::string cgroup, ActionState state = ActionState::active) {
  containment::RollbackHandle h;
  h.handle = std::move(id);
  h.action = ActionKind::block_egress;
  h.state = state;
  h.target.cgroup_path = std::move(cgroup);
  h.rule = "manual";
  h.reason = "test";
  h.created_at_ns = 1'700'000'000'000'000'000;
  h.expires_at_ns = h.created_at_ns + 900'000'000'000;
  h.expires_at_boot_ns = 1;
  h.updated_at_ns = h.created_at_ns;
  return h;
}

TEST(ControlPeerGuard, RefusesPeersInsideTheTargetAndFailsClosedOnAnUnknownCgroup) {
  const auto action = action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/test/blocked.service");
  ledger::ControlPeer inside{.pid = 10, .exe = "/usr/bin/nhiguardctl", .cgroup = "/test/blocked.service/sub"};
  ledger::ControlPeer outside{.pid = 11, .exe = "/usr/bin/nhiguardctl", .cgroup = "/user.slice/session-1.scope"};
  ledger::ControlPeer unknown{.pid = 12};
  auto refused = refuse_weakening(action, inside);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->find("inside cgroup /test/blocked.service"), std::string::npos) << *refused;
  EXPECT_NE(refused->find("pid 10"), std::string::npos) << *refused;
  EXPECT_FALSE(refuse_weakening(action, outside));
  EXPECT_TRUE(refuse_weakening(action, unknown));
  EXPECT_TRUE(refuse_observe({action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAW", "/other"), action}, inside));
  EXPECT_FALSE(refuse_observe({action}, outside));
  EXPECT_FALSE(refuse_observe({}, inside));
  auto pid_only = action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAX", "");
  EXPECT_FALSE(refuse_weakening(pid_only, inside));
}

// Rollback and reject through the ledger, as the agent's operations do.
class LedgerHandler : public ControlHandler {
 public:
  explicit LedgerHandler(ledger::RollbackLedger& ledger) : ledger_(ledger), trail_(ledger) {}
  Result<json> status() override { return json::object(); }
  Result<std::vector<containment::RollbackHandle>> actions(const ActionsRequest&) override { return ledger_.list(); }
  Result<containment::RollbackHandle> contain(const ContainRequest&) override {
    return fail(Error{ENOSYS, "not here"});
  }
  Result<containment::RollbackHandle> rollback(std::string_view handle) override {
    return ledger_.transition(handle, ActionState::rolled_back, "nhiguardctl", "rolled back");
  }
  Result<containment::RollbackHandle> reject(std::string_view handle) override {
    return ledger_.transition(handle, ActionState::rejected, "nhiguardctl", "rejected");
  }
  Result<json> set_mode(std::string_view mode) override { return json{{"mode", mode}}; }
  Result<json> audit_trail() override { return trail_.list(); }
  Result<void> authorize(const Request& request, const ledger::ControlPeer& peer) override {
    return trail_.authorize(request, peer);
  }
  void audit(const Request& request, const ledger::ControlPeer& peer, const json& response) override {
    trail_.record(request, peer, response);
  }

 private:
  ledger::RollbackLedger& ledger_;
  AuditTrail trail_;
};

class ControlAuditTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = ledger::RollbackLedger::open((dir_.path() / "ledger.db").string());
    ASSERT_TRUE(opened) << opened.error().message;
    ledger_ = std::move(*opened);
    handler_ = std::make_unique<LedgerHandler>(*ledger_);
    ControlServerOptions options;
    options.socket_path = (dir_.path() / "agent.sock").string();
    options.allowed_uids = {getuid()};
    server_ = std::make_unique<ControlServer>(options, *handler_);
    ASSERT_TRUE(server_->start());
    std::ifstream cgroup_file("/proc/self/cgroup");
    std::string text((std::istreambuf_iterator<char>(cgroup_file)), std::istreambuf_iterator<char>());
    auto parsed = identity::parse_proc_cgroup(text);
    ASSERT_TRUE(parsed && !parsed->path.empty()) << "no cgroup v2 line in /proc/self/cgroup";
    own_cgroup_ = parsed->path;
    own_exe_ = std::filesystem::read_symlink("/proc/self/exe").string();
  }
  void TearDown() override { server_->stop(); }

  Response call(Method method, json params = nullptr) {
    ControlClient client(server_->socket_path(), std::chrono::seconds(5));
    auto response = client.call(method, params);
    EXPECT_TRUE(response) << response.error().message;
    return response ? *response : Response{};
  }
  std::vector<ledger::AuditEntry> audit() { return ledger_->audit_after(0, 0).value(); }

  nhiguard::testing::TempDir dir_{"nhiguard-control-audit"};
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<LedgerHandler> handler_;
  std::unique_ptr<ControlServer> server_;
  std::string own_cgroup_;
  std::string own_exe_;
};

TEST_F(ControlAuditTest, APeerInsideTheTargetCgroupCannotRollBackRejectOrSwitchToObserve) {
  // The action targets the cgroup this test runs in (the parent of it, to cover "or below").
  const std::string target = own_cgroup_ == "/" ? "/" : std::filesystem::path(own_cgroup_).parent_path().string();
  const auto active = action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAV", target);
  const auto held = action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAW", own_cgroup_, ActionState::held);
  ASSERT_TRUE(ledger_->record(active));
  ASSERT_TRUE(ledger_->record(held));

  auto rolled = call(Method::rollback, to_params(HandleRequest{active.handle}));
  EXPECT_FALSE(rolled.ok);
  EXPECT_EQ(rolled.error.code, ErrorCode::refused);
  EXPECT_NE(rolled.error.message.find("inside cgroup " + target), std::string::npos) << rolled.error.message;
  auto rejected = call(Method::reject, to_params(HandleRequest{held.handle}));
  EXPECT_EQ(rejected.error.code, ErrorCode::refused) << rejected.error.message;
  auto observe = call(Method::set_mode, to_params(ModeRequest{"observe"}));
  EXPECT_EQ(observe.error.code, ErrorCode::refused) << observe.error.message;
  auto policy = call(Method::set_mode, to_params(ModeRequest{"policy"}));
  EXPECT_TRUE(policy.ok) << policy.error.message;  // strengthening stays allowed

  EXPECT_EQ(ledger_->get(active.handle)->state, ActionState::active);
  EXPECT_EQ(ledger_->get(held.handle)->state, ActionState::held);
  const auto rows = audit();
  ASSERT_EQ(rows.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rows[i].outcome, "refused") << rows[i].method;
    EXPECT_EQ(rows[i].peer.pid, getpid());
    EXPECT_EQ(rows[i].peer.uid, getuid());
    EXPECT_EQ(rows[i].peer.exe, own_exe_);
    EXPECT_EQ(rows[i].peer.cgroup, own_cgroup_);
    EXPECT_NE(rows[i].peer.start_time_ticks, 0u);
    EXPECT_FALSE(rows[i].message.empty());
  }
  EXPECT_EQ(rows[0].method, "rollback");
  EXPECT_EQ(rows[0].handle, active.handle);
  EXPECT_EQ(rows[1].method, "reject");
  EXPECT_EQ(rows[2].method, "set_mode");
  EXPECT_EQ(rows[2].detail, "observe");
  EXPECT_EQ(rows[3].outcome, "ok");
  // Nothing changed, so no history row beyond the recording ones.
  EXPECT_EQ(ledger_->history(active.handle)->size(), 1u);
}

TEST_F(ControlAuditTest, APeerOutsideRollsBackAndTheHistoryAndAuditNameIt) {
  const auto elsewhere = action_on("rb_01ARZ3NDEKTSV4RRFFQ69G5FAV", "/nhiguard-elsewhere/blocked.service");
  ASSERT_TRUE(ledger_->record(elsewhere));
  auto rolled = call(Method::rollback, to_params(HandleRequest{elsewhere.handle}));
  ASSERT_TRUE(rolled.ok) << rolled.error.message;
  EXPECT_EQ(ledger_->get(elsewhere.handle)->state, ActionState::rolled_back);
  auto history = ledger_->history(elsewhere.handle).value();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_FALSE(history[0].peer);  // recorded directly, not through the socket
  ASSERT_TRUE(history[1].peer);
  EXPECT_EQ(history[1].peer->pid, getpid());
  EXPECT_EQ(history[1].peer->exe, own_exe_);
  EXPECT_EQ(history[1].peer->cgroup, own_cgroup_);
  auto rows = audit();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, "ok");
  EXPECT_EQ(rows[0].handle, elsewhere.handle);

  // Reads are not audited; an unknown handle is, as an error.
  call(Method::status);
  call(Method::actions, to_params(ActionsRequest{}));
  auto unknown = call(Method::rollback, to_params(HandleRequest{"rb_01ARZ3NDEKTSV4RRFFQ69G5FAZ"}));
  EXPECT_EQ(unknown.error.code, ErrorCode::not_found);
  rows = audit();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].outcome, "error");

  // The trail as nhiguardctl audit shows it.
  auto listed = call(Method::audit);
  ASSERT_TRUE(listed.ok) << listed.error.message;
  ASSERT_EQ(listed.result["audit"].size(), 2u);
  EXPECT_EQ(listed.result["audit"][0]["peer"]["pid"], getpid());
  EXPECT_EQ(listed.result["audit"][0]["peer"]["exe"], own_exe_);
}

}  // namespace
