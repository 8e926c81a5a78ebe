// The wire enums promise to carry the agent's own enum values (types.proto says so): a renumbering on
// either side would silently turn a rollback into something else at the collector. This pins them.
#include <gtest/gtest.h>

#include "catalogue/credential_class.h"
#include "containment/action.h"
#include "identity/cgroup_classifier.h"
#include "nhiguard/v1/agent.pb.h"
#include "nhiguard/v1/types.pb.h"

namespace {

using nhiguard::catalogue::CredentialClass;
using nhiguard::containment::ActionKind;
using nhiguard::containment::ActionState;
using nhiguard::identity::WorkloadKind;

TEST(ProtoEnumValues, ActionKindMatchesTheLedger) {
  EXPECT_EQ(nhiguard::v1::ACTION_KIND_BLOCK_EGRESS, static_cast<int>(ActionKind::block_egress));
  EXPECT_EQ(nhiguard::v1::ACTION_KIND_DENY_CREDENTIAL, static_cast<int>(ActionKind::deny_credential));
  EXPECT_EQ(nhiguard::v1::ACTION_KIND_FREEZE, static_cast<int>(ActionKind::freeze));
  EXPECT_EQ(nhiguard::v1::ACTION_KIND_KILL_PROCESS, static_cast<int>(ActionKind::kill_process));
  EXPECT_EQ(nhiguard::v1::ACTION_KIND_KILL_SESSION, static_cast<int>(ActionKind::kill_session));
  EXPECT_EQ(nhiguard::v1::ActionKind_MAX, static_cast<int>(ActionKind::kill_session));
}

TEST(ProtoEnumValues, ActionStateMatchesTheLedger) {
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_HELD, static_cast<int>(ActionState::held));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_ACTIVE, static_cast<int>(ActionState::active));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_EXPIRED, static_cast<int>(ActionState::expired));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_ROLLED_BACK, static_cast<int>(ActionState::rolled_back));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_FAILED, static_cast<int>(ActionState::failed));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_IRREVERSIBLE, static_cast<int>(ActionState::irreversible));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_REJECTED, static_cast<int>(ActionState::rejected));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_DRY_RUN, static_cast<int>(ActionState::dry_run));
  EXPECT_EQ(nhiguard::v1::ACTION_STATE_LAPSED_BY_REBOOT, static_cast<int>(ActionState::lapsed_by_reboot));
  EXPECT_EQ(nhiguard::v1::ActionState_MAX, static_cast<int>(ActionState::lapsed_by_reboot));
}

TEST(ProtoEnumValues, CredentialClassMatchesTheCatalogue) {
  for (int value = 1; value <= nhiguard::v1::CredentialClass_MAX; ++value) {
    auto wire = static_cast<nhiguard::v1::CredentialClass>(value);
    ASSERT_TRUE(nhiguard::v1::CredentialClass_IsValid(value));
    // CREDENTIAL_CLASS_KUBE_SA_TOKEN <-> "kube-sa-token": the wire name is the text form upper-cased.
    std::string text(nhiguard::catalogue::to_string(static_cast<CredentialClass>(value)));
    for (auto& c : text) c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(nhiguard::v1::CredentialClass_Name(wire), "CREDENTIAL_CLASS_" + text);
  }
  EXPECT_EQ(nhiguard::v1::CredentialClass_MAX, static_cast<int>(CredentialClass::custom));
}

TEST(ProtoEnumValues, WorkloadKindIsTheAgentsPlusOne) {
  EXPECT_EQ(nhiguard::v1::WORKLOAD_KIND_PROCESS, static_cast<int>(WorkloadKind::bare_process) + 1);
  EXPECT_EQ(nhiguard::v1::WORKLOAD_KIND_SYSTEMD, static_cast<int>(WorkloadKind::systemd_service) + 1);
  EXPECT_EQ(nhiguard::v1::WORKLOAD_KIND_CONTAINER, static_cast<int>(WorkloadKind::container) + 1);
  EXPECT_EQ(nhiguard::v1::WORKLOAD_KIND_K8S_POD, static_cast<int>(WorkloadKind::kubernetes_pod) + 1);
  EXPECT_EQ(nhiguard::v1::WORKLOAD_KIND_USER_SESSION, static_cast<int>(WorkloadKind::user_session) + 1);
}

TEST(ProtoEnumValues, AReportRoundTripsWithItsBody) {
  nhiguard::v1::Report report;
  report.set_sequence(42);
  report.set_created_at_unix_ns(1'700'000'000'000'000'000);
  auto* update = report.mutable_action_update();
  update->mutable_action()->set_handle("rb_01M817TFR2MH3X8ZQCFFZ5NYEY");
  update->mutable_action()->set_state(nhiguard::v1::ACTION_STATE_ROLLED_BACK);
  update->mutable_change()->set_from_state(nhiguard::v1::ACTION_STATE_ACTIVE);
  std::string bytes;
  ASSERT_TRUE(report.SerializeToString(&bytes));
  nhiguard::v1::Report parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.sequence(), 42u);
  ASSERT_EQ(parsed.body_case(), nhiguard::v1::Report::kActionUpdate);
  EXPECT_EQ(parsed.action_update().action().handle(), "rb_01M817TFR2MH3X8ZQCFFZ5NYEY");
  EXPECT_TRUE(parsed.action_update().change().has_from_state());
  EXPECT_EQ(parsed.action_update().change().from_state(), nhiguard::v1::ACTION_STATE_ACTIVE);
}

}  // namespace
