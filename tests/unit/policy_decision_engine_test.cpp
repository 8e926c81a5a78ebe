// The decision engine, table-driven: one row per identity class (impact) and per gate, plus the
// triggers. Every row builds its policy from YAML, so the rows read like the files operators write.
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/decision_engine.h"
#include "policy/rate_limiter.h"

namespace nhiguard::policy {
namespace {

using containment::ActionKind;

// Classes of every impact, a protected one, a shared one; payments may read the aws file; the
// identity "app.service" of each row is placed in a class by the row's `identity` entry.
constexpr const char* kBase = R"(
version: 1
defaults: {ttl: 15m, impact: medium, egress: ["127.0.0.0/8"]}
rate_limit: {max_actions: 2, window: 10m}
identity_classes:
  - {name: batch, impact: low}
  - {name: internal, impact: medium}
  - {name: customer-facing, impact: high}
  - {name: payments-core, impact: critical}
  - {name: break-glass, impact: critical, protected: true}
  - {name: platform, impact: low, shared: true}
protected:
  - unit: sshd.service
credentials:
  - path: /etc/app/aws
    class: aws
    readers: [{unit: payments.service}]
  - path: /etc/app/shared-token
    readers: [{unit: payments.service}, {unit: billing.service}]
canaries:
  - path: /root/.aws/credentials.old
    class: aws
)";

struct Row {
  std::string name;
  std::string extra;  // appended policy YAML (identities, rules)
  std::string unit = "app.service";
  std::string credential = "/etc/app/aws";
  std::string cgroup = "/system.slice/app.service";
  bool egress = false;  // a tainted connect to 203.0.113.9:443 instead of a read
  GateFacts facts;
  std::optional<Outcome> outcome;  // nullopt: no decision
  std::optional<ActionKind> action = std::nullopt;
  bool dry_run = false;
  std::set<std::string> tripped = {};
  std::optional<TriggerKind> trigger = std::nullopt;
};

std::string rule(const std::string& trigger, const std::string& confidence, const std::string& mode,
                 const std::string& more = "") {
  return "rules:\n  - {name: r, trigger: " + trigger + ", confidence: " + confidence + ", mode: " + mode + more + "}\n";
}
std::string in_class(const std::string& unit, const std::string& cls) {
  return "identities:\n  - {match: {unit: " + unit + "}, class: " + cls + "}\n";
}

TriggerInput input_for(const Row& row) {
  TriggerInput input;
  input.event_ids = {"ev_1"};
  input.identity = IdentityFacts{.uri = "spiffe://td/host/h/systemd/" + row.unit,
                                 .kind = "systemd",
                                 .unit = row.unit,
                                 .exe = "/usr/bin/curl",
                                 .uid = 1000,
                                 .cgroup_path = row.cgroup,
                                 .cgroup_id = 42,
                                 .pid = 4242,
                                 .pid_start_ns = 7,
                                 .comm = "curl"};
  input.credential =
      CredentialFacts{.id = 3, .path = row.credential, .credential_class = catalogue::CredentialClass::aws};
  if (row.egress) {
    input.event = TriggerInput::Event::tainted_egress;
    DestinationFacts d;
    d.address[10] = d.address[11] = 0xff;
    d.address[12] = 203, d.address[13] = 0, d.address[14] = 113, d.address[15] = 9;
    d.port = 443;
    d.text = "203.0.113.9:443";
    input.destination = d;
  }
  return input;
}

class DecisionTable : public ::testing::TestWithParam<Row> {};

TEST_P(DecisionTable, Decides) {
  const Row& row = GetParam();
  const std::string yaml = std::string(kBase) + row.extra;
  std::vector<PolicySource> sources{{"row.yaml", yaml}};
  auto parsed = parse_policy_documents(sources);
  ASSERT_TRUE(parsed.ok()) << parsed.errors.front().to_string();
  DecisionEngine engine(std::make_shared<const Policy>(std::move(parsed.policy)));

  auto decision = engine.decide(input_for(row), row.facts);
  if (!row.outcome) {
    EXPECT_FALSE(decision.has_value()) << decision->reason;
    return;
  }
  ASSERT_TRUE(decision.has_value());
  EXPECT_EQ(to_string(decision->outcome), to_string(*row.outcome)) << decision->reason;
  if (row.action) {
    ASSERT_TRUE(decision->action.has_value()) << decision->reason;
    EXPECT_EQ(containment::to_string(*decision->action), containment::to_string(*row.action));
  } else {
    EXPECT_FALSE(decision->action.has_value()) << decision->reason;
  }
  EXPECT_EQ(decision->dry_run, row.dry_run);
  std::set<std::string> tripped;
  for (const auto& gate : decision->gates) {
    if (gate.tripped) tripped.insert(gate.gate);
  }
  EXPECT_EQ(tripped, row.tripped) << decision->reason;
  if (row.trigger) {
    EXPECT_EQ(decision->trigger, *row.trigger);
  }
  if (decision->action && containment::is_reversible(*decision->action)) {
    EXPECT_GT(decision->ttl.count(), 0);
  }
  EXPECT_FALSE(decision->reason.empty());
}

const GateFacts kNoFacts{};
GateFacts facts_with(void (*edit)(GateFacts&)) {
  GateFacts f;
  edit(f);
  return f;
}

INSTANTIATE_TEST_SUITE_P(
    Rows, DecisionTable,
    ::testing::Values(
        // --- triggers
        Row{.name = "allowed_reader_no_decision",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .unit = "payments.service",
            .outcome = std::nullopt},
        Row{.name = "uncovered_credential_no_decision",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .credential = "/etc/other",
            .outcome = std::nullopt},
        Row{.name = "no_rule_for_trigger_no_decision",
            .extra = rule("canary_read", "certain", "enforce"),
            .outcome = std::nullopt},
        Row{.name = "canary_read_is_certain",
            .extra = rule("canary_read", "certain", "enforce"),
            .credential = "/root/.aws/credentials.old",
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress,
            .trigger = TriggerKind::canary_read},
        Row{.name = "egress_outside_allowed",
            .extra = rule("unexpected_egress", "high", "enforce"),
            .egress = true,
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress,
            .trigger = TriggerKind::unexpected_egress},
        Row{.name = "egress_allowed_for_identity_no_decision",
            .extra = "identities:\n  - {match: {unit: app.service}, egress: [\"203.0.113.0/24:443\"]}\n" +
                     rule("unexpected_egress", "high", "enforce"),
            .egress = true,
            .outcome = std::nullopt},
        Row{.name = "when_filter_skips_rule",
            .extra = rule("unexpected_reader", "high", "enforce", ", when: {credential_class: gcp}"),
            .outcome = std::nullopt},
        // --- one row per identity class (matrix x impact), confidence high, enforce
        Row{.name = "class_batch_low_impact_contains",
            .extra = in_class("app.service", "batch") + rule("unexpected_reader", "medium", "enforce"),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "class_internal_medium_impact_holds",
            .extra = in_class("app.service", "internal") + rule("unexpected_reader", "medium", "enforce"),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"matrix"}},
        Row{.name = "class_customer_facing_high_impact_holds_at_high",
            .extra = in_class("app.service", "customer-facing") + rule("unexpected_reader", "high", "enforce"),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"matrix"}},
        Row{.name = "class_customer_facing_contains_at_certain",
            .extra = in_class("app.service", "customer-facing") + rule("unexpected_reader", "certain", "enforce"),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "class_critical_holds_even_at_certain",
            .extra = in_class("app.service", "payments-core") + rule("unexpected_reader", "certain", "enforce"),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"matrix"}},
        Row{.name = "no_class_default_impact_medium",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "low_confidence_low_impact_observes",
            .extra = in_class("app.service", "batch") + rule("unexpected_reader", "low", "enforce"),
            .outcome = Outcome::observe,
            .tripped = {"matrix"}},
        Row{.name = "low_confidence_alerts",
            .extra = rule("unexpected_reader", "low", "enforce"),
            .outcome = Outcome::alert,
            .tripped = {"matrix"}},
        Row{.name = "class_break_glass_protected",
            .extra = in_class("app.service", "break-glass") + rule("unexpected_reader", "certain", "enforce"),
            .outcome = Outcome::alert,
            .tripped = {"matrix", "protected_identity"}},
        Row{.name = "class_platform_shared_never_killed",
            .extra = in_class("app.service", "platform") +
                     rule("unexpected_reader", "certain", "enforce", ", response: kill_process"),
            .outcome = Outcome::hold,
            .action = ActionKind::kill_process,
            .tripped = {"irreversible"}},
        // --- rule mode caps
        Row{.name = "mode_observe",
            .extra = rule("unexpected_reader", "high", "observe"),
            .outcome = Outcome::observe,
            .tripped = {"rule_mode"}},
        Row{.name = "mode_alert",
            .extra = rule("unexpected_reader", "high", "alert"),
            .outcome = Outcome::alert,
            .tripped = {"rule_mode"}},
        Row{.name = "mode_hold",
            .extra = rule("unexpected_reader", "high", "hold"),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"rule_mode"}},
        // --- gates
        Row{.name = "gate_protected_by_policy_selector",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .unit = "sshd.service",
            .cgroup = "/system.slice/sshd.service",
            .outcome = Outcome::alert,
            .tripped = {"protected_identity"}},
        Row{.name = "gate_protected_host_target",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) {
              f.target_protected = true;
              f.target_protected_reason = "the agent's own cgroup";
            }),
            .outcome = Outcome::alert,
            .tripped = {"protected_identity"}},
        Row{.name = "gate_blast_radius_declared_shared_credential",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .credential = "/etc/app/shared-token",
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"blast_radius"}},
        Row{.name = "gate_blast_radius_learned_readers",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) {
              f.learned_readers = {"unit=payments.service", "unit=batch.service"};
            }),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"blast_radius"}},
        Row{.name = "gate_blast_radius_cgroup_hosts_protected",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) {
              f.cgroup_hosts_protected = true;
              f.cgroup_hosts_protected_reason = "pid 1 lives there";
            }),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"blast_radius"}},
        Row{.name = "gate_blast_radius_learned_same_as_declared_passes",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) { f.learned_readers = {"unit=payments.service"}; }),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "gate_rate_limit_turns_contain_into_hold",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) { f.recent_automated_actions = 2; }),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .tripped = {"rate_limit"}},
        Row{.name = "gate_rate_limit_below_limit_contains",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) { f.recent_automated_actions = 1; }),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "gate_dry_run_rule",
            .extra = rule("unexpected_reader", "high", "enforce", ", dry_run: true"),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress,
            .dry_run = true,
            .tripped = {"dry_run"}},
        Row{.name = "gate_dry_run_agent_observe_mode",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .facts = facts_with([](GateFacts& f) { f.agent_observe_mode = true; }),
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress,
            .dry_run = true,
            .tripped = {"dry_run"}},
        Row{.name = "gate_dry_run_hold_is_dry_too",
            .extra = rule("unexpected_reader", "high", "hold", ", dry_run: true"),
            .outcome = Outcome::hold,
            .action = ActionKind::block_egress,
            .dry_run = true,
            .tripped = {"rule_mode", "dry_run"}},
        Row{.name = "gate_irreversible_allowed_certain_unshared",
            .extra = rule("canary_read", "certain", "enforce", ", response: kill_process"),
            .credential = "/root/.aws/credentials.old",
            .outcome = Outcome::contain,
            .action = ActionKind::kill_process},
        Row{.name = "gate_irreversible_refused_below_certain",
            .extra = rule("unexpected_reader", "high", "enforce", ", response: kill_process"),
            .outcome = Outcome::hold,
            .action = ActionKind::kill_process,
            .tripped = {"irreversible"}},
        Row{.name = "gate_irreversible_refused_shared_credential",
            .extra = rule("unexpected_reader", "certain", "enforce", ", response: kill_process"),
            .credential = "/etc/app/shared-token",
            .outcome = Outcome::hold,
            .action = ActionKind::kill_process,
            .tripped = {"irreversible", "blast_radius"}},
        Row{.name = "narrowest_action_of_the_response",
            .extra = rule("canary_read", "certain", "enforce", ", response: [kill_session, freeze, block_egress]"),
            .credential = "/root/.aws/credentials.old",
            .outcome = Outcome::contain,
            .action = ActionKind::block_egress},
        Row{.name = "gate_narrow_target_cgroup_root",
            .extra = rule("unexpected_reader", "high", "enforce"),
            .cgroup = "/",
            .outcome = Outcome::alert,
            .tripped = {"narrow_target"}}),
    [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(DecisionEngine, TtlFromRuleOrPolicyDefault) {
  std::vector<PolicySource> sources{
      {"p.yaml", std::string(kBase) + rule("unexpected_reader", "high", "enforce", ", ttl: 2h")}};
  auto parsed = parse_policy_documents(sources);
  ASSERT_TRUE(parsed.ok());
  DecisionEngine engine(std::make_shared<const Policy>(std::move(parsed.policy)));
  auto decision = engine.decide(input_for(Row{.name = "ttl"}), kNoFacts);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->ttl, std::chrono::hours(2));

  std::vector<PolicySource> defaults{{"p.yaml", std::string(kBase) + rule("unexpected_reader", "high", "enforce")}};
  auto parsed_default = parse_policy_documents(defaults);
  DecisionEngine default_engine(std::make_shared<const Policy>(std::move(parsed_default.policy)));
  auto default_decision = default_engine.decide(input_for(Row{.name = "ttl"}), kNoFacts);
  ASSERT_TRUE(default_decision);
  EXPECT_EQ(default_decision->ttl, std::chrono::minutes(15));
}

TEST(DecisionEngine, MatrixIsMonotonic) {
  // More confidence never yields a weaker outcome; more impact never makes a person's approval
  // unnecessary (what holds at one impact holds, or less, above it).
  for (int c = 1; c <= 4; ++c) {
    for (int i = 1; i <= 4; ++i) {
      const auto here = matrix_outcome(static_cast<Confidence>(c), static_cast<Impact>(i));
      if (c < 4) {
        EXPECT_LE(here, matrix_outcome(static_cast<Confidence>(c + 1), static_cast<Impact>(i)));
      }
      if (i < 4 && here != Outcome::contain) {
        EXPECT_NE(matrix_outcome(static_cast<Confidence>(c), static_cast<Impact>(i + 1)), Outcome::contain);
      }
    }
  }
  EXPECT_EQ(matrix_outcome(Confidence::certain, Impact::critical), Outcome::hold);
}

TEST(ActionRateLimiter, CountsWithinTheWindowOnly) {
  ActionRateLimiter limiter;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  limiter.record(t0);
  limiter.record(t0 + std::chrono::minutes(1));
  EXPECT_EQ(limiter.recent(t0 + std::chrono::minutes(2), std::chrono::minutes(10)), 2u);
  EXPECT_EQ(limiter.recent(t0 + std::chrono::seconds(10 * 60 + 30), std::chrono::minutes(10)), 1u);
  EXPECT_EQ(limiter.recent(t0 + std::chrono::minutes(30), std::chrono::minutes(10)), 0u);
}

}  // namespace
}  // namespace nhiguard::policy

namespace nhiguard::policy {
namespace {

DecisionEngine engine_of(const std::string& yaml) {
  std::vector<PolicySource> sources{{"p.yaml", std::string(kBase) + yaml}};
  auto parsed = parse_policy_documents(sources);
  EXPECT_TRUE(parsed.ok()) << config::format_errors(parsed.errors, "p.yaml");
  return DecisionEngine(std::make_shared<const Policy>(std::move(parsed.policy)));
}

TEST(DecisionEngine, MemoryAccessOfACredentialHolderFiresAndCanKillTheAccessor) {
  auto engine = engine_of(
      "rules:\n  - {name: mem, trigger: credential_memory_access, confidence: certain, mode: enforce, "
      "response: [kill_process]}\n");
  Row row{.name = "mem"};
  auto input = input_for(row);
  input.event = TriggerInput::Event::memory_access;
  EXPECT_EQ(engine.trigger_of(input), TriggerKind::credential_memory_access);
  auto decision = engine.decide(input, {});
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->trigger, TriggerKind::credential_memory_access);
  EXPECT_EQ(decision->outcome, Outcome::contain);
  EXPECT_EQ(decision->action, ActionKind::kill_process);
  EXPECT_NE(decision->reason.find("reached into the memory of a process holding /etc/app/aws"), std::string::npos)
      << decision->reason;
  // The parser's default confidence for it is high.
  auto defaulted = engine_of("rules:\n  - {name: mem, trigger: credential_memory_access, mode: enforce}\n");
  EXPECT_EQ(defaulted.policy().rules.at(0).confidence, Confidence::high);
}

TEST(DecisionEngine, BlockDeviceReadFiresForReadersOutsideTheAllowList) {
  Row row{.name = "blk"};
  auto input = input_for(row);
  input.event = TriggerInput::Event::block_device_open;
  input.credential.reset();
  input.device = "/dev/sda";
  const std::string rules = "rules:\n  - {name: raw, trigger: block_device_read, mode: hold, response: [freeze]}\n";

  // Built-in list: udev is allowed, curl is not.
  auto builtin = engine_of(rules);
  EXPECT_EQ(builtin.trigger_of(input), TriggerKind::block_device_read);
  auto udev = input;
  udev.identity.exe = "/usr/lib/systemd/systemd-udevd";
  EXPECT_FALSE(builtin.trigger_of(udev));
  auto decision = builtin.decide(input, {});
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->outcome, Outcome::hold);
  EXPECT_EQ(decision->action, ActionKind::freeze);
  EXPECT_NE(decision->reason.find("opened block device /dev/sda"), std::string::npos) << decision->reason;

  // A policy's list replaces the built-in one; [] allows nobody.
  auto own = engine_of("block_device_readers: [{exe: /usr/bin/curl}]\n" + rules);
  EXPECT_FALSE(own.trigger_of(input));
  EXPECT_TRUE(own.trigger_of(udev));
  auto none = engine_of("block_device_readers: []\n" + rules);
  EXPECT_TRUE(none.trigger_of(udev));
}

// `cat creds | curl`: the sender's egress is attributed by its cgroup's window, one confidence
// step below the rule's: a high rule that would contain holds, and a low one only observes.
TEST(DecisionEngine, EgressAttributedByTheCgroupWindowIsDecidedAtALowerConfidence) {
  auto engine = engine_of(rule("unexpected_egress", "high", "enforce"));
  Row row{.name = "pipe", .egress = true};
  auto input = input_for(row);
  auto direct = engine.decide(input, {});
  ASSERT_TRUE(direct);
  EXPECT_EQ(direct->confidence, Confidence::high);
  EXPECT_EQ(direct->outcome, Outcome::contain);

  input.taint_inferred = true;
  auto inferred = engine.decide(input, {});
  ASSERT_TRUE(inferred);
  EXPECT_EQ(inferred->confidence, Confidence::medium);
  EXPECT_EQ(inferred->outcome, Outcome::hold) << "medium x medium impact";
  bool gate = false;
  for (const auto& g : inferred->gates) gate |= g.gate == "inferred_taint" && g.tripped;
  EXPECT_TRUE(gate);

  auto low = engine_of(rule("unexpected_egress", "low", "enforce"));
  auto floor = low.decide(input, {});
  ASSERT_TRUE(floor);
  EXPECT_EQ(floor->confidence, Confidence::low) << "never below low";
  EXPECT_EQ(floor->outcome, Outcome::alert);
}

TEST(PolicyParser, BlockDeviceRulesNameNoCredential) {
  std::vector<PolicySource> sources{
      {"p.yaml", std::string(kBase) + "rules:\n  - {name: a, trigger: block_device_read, response: [deny_credential]}\n"
                                      "  - {name: b, trigger: block_device_read, when: {credential_class: [aws]}}\n"},
      {"q.yaml", "version: 1\nblock_device_readers: []\n"},
      {"r.yaml", "version: 1\nblock_device_readers: []\n"}};
  auto parsed = parse_policy_documents(sources);
  const std::string errors = config::format_errors(parsed.errors, "p.yaml");
  EXPECT_EQ(parsed.errors.size(), 3u) << errors;
  EXPECT_NE(errors.find("deny_credential cannot answer block_device_read"), std::string::npos) << errors;
  EXPECT_NE(errors.find("when.credential_class cannot match it"), std::string::npos) << errors;
  EXPECT_NE(errors.find("block_device_readers is already set"), std::string::npos) << errors;
}

}  // namespace
}  // namespace nhiguard::policy
