// Collector commands on a real ledger: idempotent approve / reject / rollback with the statuses the
// protocol names, the command id in the ledger note, set_mode persisted before it is reported, and
// the mode a connecting collector requires (or no longer requires).
#include <stdlib.h>

#include <cerrno>
#include <filesystem>

#include <gtest/gtest.h>

#include "reporter/collector_commands.h"
#include "config/persisted_mode.h"
#include "common/ulid.h"
#include "temp_dir.h"

namespace nhiguard::reporter {
namespace {

using containment::ActionKind;
using containment::ActionState;
using containment::RollbackHandle;

class CollectorCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ledger = ledger::RollbackLedger::open((root_ / "ledger.db").string());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    mode_file_ = (root_ / "mode.json").string();
    // The operations do what the daemon does, on the ledger only: the kernel side is tested elsewhere.
    AgentOperations ops;
    ops.approve = [this](std::string_view h, std::string_view actor, std::string_view note) {
      ++operations_run_;
      return ledger_->transition(h, ActionState::active, actor, note);
    };
    ops.reject = [this](std::string_view h, std::string_view actor, std::string_view note) {
      ++operations_run_;
      return ledger_->transition(h, ActionState::rejected, actor, note);
    };
    ops.rollback = [this](std::string_view h, std::string_view actor, std::string_view note) -> Result<RollbackHandle> {
      ++operations_run_;
      if (fail_rollback_) return fail(Error{EIO, "cgroup.freeze: Input/output error"});
      return ledger_->transition(h, ActionState::rolled_back, actor, note);
    };
    ops.mode = [this] { return mode_; };
    ops.set_mode = [this](config::AgentMode m) { mode_ = m; };
    commands_ = std::make_unique<CollectorCommands>(ops, *ledger_, mode_file_, config::AgentMode::policy);
  }
  void TearDown() override {
    commands_.reset();
    ledger_.reset();
  }

  std::string record(ActionState state, ActionKind kind = ActionKind::block_egress) {
    RollbackHandle h;
    h.handle = new_handle_id();
    h.action = kind;
    h.state = state;
    h.target.cgroup_path = "/system.slice/payments.service";
    h.target.cgroup_id = 8123;
    h.rule = "exfil";
    h.reason = "test";
    h.created_at_ns = 1;
    h.updated_at_ns = 1;
    EXPECT_TRUE(ledger_->record(h));
    return h.handle;
  }

  static v1::Command action_command(std::string id, std::string_view kind, std::string handle) {
    v1::Command c;
    c.set_command_id(std::move(id));
    c.set_issued_by("alice");
    v1::ActionCommand* body = kind == "approve"  ? c.mutable_approve()
                              : kind == "reject" ? c.mutable_reject()
                                                 : c.mutable_rollback();
    body->set_handle(std::move(handle));
    body->set_reason("looked at it");
    return c;
  }
  static v1::Command mode_command(std::string id, v1::Mode mode) {
    v1::Command c;
    c.set_command_id(std::move(id));
    c.mutable_set_mode()->set_mode(mode);
    c.mutable_set_mode()->set_fleet_wide(true);
    return c;
  }

  testing::TempDir tmp_{"nhiguard-commands"};
  const std::filesystem::path root_ = tmp_.path();
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::string mode_file_;
  std::unique_ptr<CollectorCommands> commands_;
  config::AgentMode mode_ = config::AgentMode::policy;
  int operations_run_ = 0;
  bool fail_rollback_ = false;
};

TEST_F(CollectorCommandsTest, RollbackIsIdempotentAndNamesTheCommandInTheLedger) {
  const auto handle = record(ActionState::active);
  auto first = commands_->execute(action_command("CMD1", "rollback", handle));
  EXPECT_EQ(first.status(), v1::CommandResult::STATUS_OK) << first.message();
  EXPECT_EQ(first.command_id(), "CMD1");
  EXPECT_EQ(first.action().state(), v1::ACTION_STATE_ROLLED_BACK);
  EXPECT_EQ(first.mode(), v1::MODE_POLICY);
  EXPECT_GT(first.completed_at_unix_ns(), 0);
  auto history = ledger_->history(handle);
  ASSERT_TRUE(history);
  EXPECT_EQ(history->back().actor, "collector");
  EXPECT_EQ(history->back().note, "collector command CMD1: looked at it");

  // Redelivered: answered OK from the state, nothing run again.
  auto again = commands_->execute(action_command("CMD1", "rollback", handle));
  EXPECT_EQ(again.status(), v1::CommandResult::STATUS_OK);
  EXPECT_EQ(again.action().state(), v1::ACTION_STATE_ROLLED_BACK);
  EXPECT_EQ(operations_run_, 1);
}

TEST_F(CollectorCommandsTest, StatusesForUnknownInvalidAndFailed) {
  auto unknown = commands_->execute(action_command("C2", "rollback", "rb_01ARYZ6S41TSV4RRFFQ69G5FAV"));
  EXPECT_EQ(unknown.status(), v1::CommandResult::STATUS_UNKNOWN_HANDLE) << unknown.message();
  auto malformed = commands_->execute(action_command("C3", "rollback", "not-a-handle"));
  EXPECT_EQ(malformed.status(), v1::CommandResult::STATUS_INVALID) << malformed.message();

  const auto kill = record(ActionState::irreversible, ActionKind::kill_process);
  auto irreversible = commands_->execute(action_command("C4", "rollback", kill));
  EXPECT_EQ(irreversible.status(), v1::CommandResult::STATUS_INVALID);
  EXPECT_NE(irreversible.message().find("it is irreversible"), std::string::npos) << irreversible.message();

  const auto active = record(ActionState::active);
  auto approve_active = commands_->execute(action_command("C5", "reject", active));
  EXPECT_EQ(approve_active.status(), v1::CommandResult::STATUS_INVALID) << approve_active.message();

  fail_rollback_ = true;
  auto failed = commands_->execute(action_command("C6", "rollback", active));
  EXPECT_EQ(failed.status(), v1::CommandResult::STATUS_FAILED);
  EXPECT_NE(failed.message().find("Input/output error"), std::string::npos) << failed.message();
  EXPECT_EQ(failed.action().state(), v1::ACTION_STATE_ACTIVE);
}

TEST_F(CollectorCommandsTest, ApproveAndRejectHeldActionsOnce) {
  const auto to_approve = record(ActionState::held);
  const auto to_reject = record(ActionState::held);
  EXPECT_EQ(commands_->execute(action_command("A1", "approve", to_approve)).action().state(), v1::ACTION_STATE_ACTIVE);
  EXPECT_EQ(commands_->execute(action_command("A1", "approve", to_approve)).status(), v1::CommandResult::STATUS_OK);
  EXPECT_EQ(commands_->execute(action_command("R1", "reject", to_reject)).action().state(), v1::ACTION_STATE_REJECTED);
  EXPECT_EQ(commands_->execute(action_command("R1", "reject", to_reject)).status(), v1::CommandResult::STATUS_OK);
  EXPECT_EQ(operations_run_, 2);
  // Approving what a person rejected is refused, not silently done.
  auto late = commands_->execute(action_command("A2", "approve", to_reject));
  EXPECT_EQ(late.status(), v1::CommandResult::STATUS_INVALID) << late.message();
}

TEST_F(CollectorCommandsTest, SetModeIsPersistedAndReported) {
  auto result = commands_->execute(mode_command("M1", v1::MODE_OBSERVE));
  EXPECT_EQ(result.status(), v1::CommandResult::STATUS_OK) << result.message();
  EXPECT_EQ(result.mode(), v1::MODE_OBSERVE);
  EXPECT_EQ(mode_, config::AgentMode::observe);
  auto persisted = config::load_mode_override(mode_file_);
  ASSERT_TRUE(persisted && persisted->has_value());
  EXPECT_EQ((*persisted)->mode, config::AgentMode::observe);
  EXPECT_EQ((*persisted)->command_id, "M1");

  auto bad = commands_->execute(mode_command("M2", v1::MODE_UNSPECIFIED));
  EXPECT_EQ(bad.status(), v1::CommandResult::STATUS_INVALID);
  EXPECT_EQ(mode_, config::AgentMode::observe);
}

TEST_F(CollectorCommandsTest, RequiredModeAtConnectionAndItsRelease) {
  commands_->apply_required_mode(config::AgentMode::observe);
  EXPECT_EQ(mode_, config::AgentMode::observe);
  auto persisted = config::load_mode_override(mode_file_);
  ASSERT_TRUE(persisted && persisted->has_value());

  // The collector no longer requires a mode: agent.yaml's (policy) applies, the file is gone.
  commands_->apply_required_mode(std::nullopt);
  EXPECT_EQ(mode_, config::AgentMode::policy);
  EXPECT_FALSE(std::filesystem::exists(mode_file_));

  // With nothing imposed, a Welcome without a mode changes nothing (an operator's local choice stays).
  mode_ = config::AgentMode::observe;
  commands_->apply_required_mode(std::nullopt);
  EXPECT_EQ(mode_, config::AgentMode::observe);
}

}  // namespace
}  // namespace nhiguard::reporter
