// The policy parser: a valid file with every key, and a corpus of malformed files whose every
// error is asserted by file, line and field.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "identity/workload_identity.h"
#include "policy/policy.h"

namespace nhiguard::policy {
namespace {

using containment::ActionKind;

std::string fixture(const std::string& name) {
  return std::string(NHIGUARD_TEST_FIXTURES) + "/policy/" + name;
}

TEST(PolicyParser, ValidFileWithEveryKey) {
  auto parsed = load_policy_files({fixture("valid_full.yaml")});
  ASSERT_TRUE(parsed.ok()) << (parsed.errors.empty() ? "" : parsed.errors.front().to_string());
  const Policy& p = parsed.policy;
  EXPECT_EQ(p.default_ttl, std::chrono::minutes(10));
  EXPECT_EQ(p.default_impact, Impact::medium);
  EXPECT_EQ(p.default_egress.size(), 2u);
  EXPECT_EQ(p.rate_limit.max_actions, 3u);
  EXPECT_EQ(p.rate_limit.window, std::chrono::minutes(5));
  ASSERT_EQ(p.identity_classes.size(), 4u);
  EXPECT_TRUE(p.find_class("break-glass")->is_protected);
  EXPECT_TRUE(p.find_class("platform")->shared);
  EXPECT_EQ(p.find_class("batch")->impact, Impact::low);
  ASSERT_EQ(p.identities.size(), 3u);
  EXPECT_EQ(p.identities[0].egress.size(), 2u);
  EXPECT_EQ(p.identities[0].class_name, "customer-facing");
  ASSERT_EQ(p.protected_identities.size(), 2u);
  EXPECT_EQ(p.protected_identities[1].describe(), "exe=/usr/local/bin/break-glass,uid=0");
  ASSERT_EQ(p.credentials.size(), 5u);
  EXPECT_EQ(p.credentials[0].selector.kind, CredentialSelector::Kind::path);
  EXPECT_EQ(p.credentials[0].credential_class, catalogue::CredentialClass::aws);
  EXPECT_EQ(p.credentials[0].owner, "payments.service");
  EXPECT_EQ(p.credentials[0].readers.size(), 2u);
  EXPECT_EQ(p.credentials[1].selector.kind, CredentialSelector::Kind::glob);
  EXPECT_EQ(p.credentials[2].selector.catalogue_class, catalogue::CredentialClass::kube_sa_token);
  EXPECT_FALSE(p.credentials[3].selector.catalogue_class.has_value());  // any
  ASSERT_EQ(p.canaries.size(), 2u);
  EXPECT_TRUE(p.canaries[0].plant);
  EXPECT_FALSE(p.canaries[1].plant);
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.rules[0].confidence, Confidence::certain);  // canary default
  EXPECT_EQ(p.rules[0].mode, RuleMode::enforce);
  EXPECT_EQ(p.rules[0].response, (std::vector{ActionKind::block_egress, ActionKind::kill_process}));
  EXPECT_TRUE(p.rules[1].dry_run);
  EXPECT_EQ(p.rules[1].ttl, std::chrono::minutes(30));
  EXPECT_EQ(p.rules[1].credential_classes.size(), 2u);
  EXPECT_EQ(p.rules[1].identity_classes, std::vector<std::string>{"batch"});
  EXPECT_EQ(p.rules[2].mode, RuleMode::alert);
  EXPECT_EQ(p.rules[2].confidence, Confidence::medium);
  EXPECT_EQ(p.rules[2].origin.line, 68);
}

struct ExpectedError {
  int line;
  std::string field;
  std::string message_part;
};

struct MalformedCase {
  std::vector<std::string> files;
  std::vector<ExpectedError> errors;  // every error, in any order
};

class MalformedPolicy : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedPolicy, ReportsEveryErrorWithFileLineAndField) {
  const auto& c = GetParam();
  std::vector<std::string> paths;
  for (const auto& f : c.files) paths.push_back(fixture(f));
  auto parsed = load_policy_files(paths);
  std::string all;
  for (const auto& e : parsed.errors) all += "\n  " + e.to_string();
  EXPECT_EQ(parsed.errors.size(), c.errors.size()) << all;
  for (const auto& expected : c.errors) {
    bool found = false;
    for (const auto& e : parsed.errors) {
      found |= e.line == expected.line && e.field == expected.field &&
               e.message.find(expected.message_part) != std::string::npos && e.source.ends_with(".yaml") &&
               e.column > 0;
    }
    EXPECT_TRUE(found) << "missing line " << expected.line << " field '" << expected.field << "' with '"
                       << expected.message_part << "' in:" << all;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, MalformedPolicy,
    ::testing::Values(MalformedCase{{"unknown_keys.yaml"},
                                    {{2, "rulez", "did you mean 'rules'"},
                                     {5, "rules[0].triger", "did you mean 'trigger'"},
                                     {9, "credentials[0].reader", "did you mean 'readers'"}}},
                      MalformedCase{{"wrong_types.yaml"},
                                    {{1, "version", "whole number"},
                                     {3, "defaults.ttl", "unit"},
                                     {5, "rules", "expected a list of rules"},
                                     {9, "identity_classes[0].protected", "true or false"},
                                     {11, "rate_limit.max_actions", "whole number"}}},
                      MalformedCase{{"bad_patterns.yaml"},
                                    {{3, "credentials[0].glob", "never closed"},
                                     {4, "credentials[1].path", "absolute path or one starting with ~/"},
                                     {5, "credentials[2].path", "'..'"},
                                     {7, "credentials[2].readers[0].unit", "invalid pattern"},
                                     {8, "credentials[2].readers[1].exe", "absolute path"},
                                     {10, "identities[0].match.uri", "spiffe://"}}},
                      MalformedCase{{"bad_cidr.yaml"},
                                    {{5, "identities[0].egress[0]", ""},
                                     {6, "identities[0].egress[1]", ""},
                                     {7, "identities[0].egress[2]", ""},
                                     {9, "defaults.egress[0]", ""}}},
                      MalformedCase{{"unknown_action.yaml"},
                                    {{4, "rules[0].trigger", "unknown trigger 'unexpected_thing'"},
                                     {5, "rules[0].response", "unknown action 'block_egres'"},
                                     {8, "rules[1].mode", "unknown mode 'enforced'"},
                                     {9, "rules[1].confidence", "unknown confidence 'sure'"},
                                     {10, "rules[2]", "deny_credential cannot answer unexpected_egress"}}},
                      MalformedCase{
                          {"unknown_class.yaml"},
                          {{7, "identities[0].class", "unknown identity class 'nonexistent' (defined: batch)"},
                           {12, "rules[0].when.identity_class", "unknown identity class 'missing'"},
                           {13, "rules[0].when.credential_class", "unknown credential class 'nope'"}}},
                      MalformedCase{{"duplicates.yaml"},
                                    {{5, "rules[1].name", "rule 'same' is already defined at"},
                                     {10, "identity_classes[1].name", "identity class 'c' is already defined at"},
                                     {12, "version", "duplicate key"}}},
                      MalformedCase{{"syntax_error.yaml"}, {{4, "", "invalid YAML"}}},
                      MalformedCase{{"missing_version.yaml"}, {{1, "version", "missing"}}},
                      MalformedCase{{"valid_full.yaml", "second_defaults.yaml"},
                                    {{3, "defaults", "already set at"}, {5, "rate_limit", "already set at"}}},
                      MalformedCase{{"incomplete_items.yaml"},
                                    {{3, "rules[0]", "needs a name"},
                                     {4, "rules[1]", "needs a trigger"},
                                     {6, "credentials[0]", "needs one of path:, glob: or catalogue:"},
                                     {7, "credentials[1]", "more than one of"},
                                     {10, "identity_classes[0]", "needs an impact"},
                                     {12, "canaries[0]", "needs a path"},
                                     {14, "identities[0]", "needs match"},
                                     {14, "identities[0].class", "unknown identity class 'x'"},
                                     {16, "protected[0]", "at least one of"}}}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) {
      std::string name;
      for (const auto& file : info.param.files) name += (name.empty() ? "" : "_and_") + file.substr(0, file.find('.'));
      return name;
    });

TEST(PolicyParser, UnreadableFileIsOneErrorNamingIt) {
  auto parsed = load_policy_files({"/nonexistent/policy.yaml"});
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].source, "/nonexistent/policy.yaml");
  EXPECT_NE(parsed.errors[0].message.find("No such file"), std::string::npos);
}

TEST(PolicyParser, DirectoryMissingIsAnErrorAndEmptyIsAnEmptyPolicy) {
  EXPECT_FALSE(load_policy_dir("/nonexistent/policy.d").ok());
  const std::string dir = ::testing::TempDir() + "/empty-policy-dir";
  std::filesystem::create_directories(dir);
  auto parsed = load_policy_dir(dir);
  EXPECT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed.policy.rules.empty());
}

TEST(PolicyParser, ShippedDefaultPolicyIsValid) {
  auto parsed = load_policy_dir(std::string(NHIGUARD_SOURCE_DIR) + "/packaging/policy.d");
  ASSERT_TRUE(parsed.ok()) << (parsed.errors.empty() ? "" : parsed.errors.front().to_string());
  EXPECT_FALSE(parsed.policy.rules.empty());
  EXPECT_FALSE(parsed.policy.canaries.empty());
  for (const auto& rule : parsed.policy.rules) {
    EXPECT_NE(rule.mode, RuleMode::enforce) << rule.name;
  }
}

TEST(PolicySelector, EveryKeyMustMatch) {
  IdentityFacts payments{.uri = "spiffe://td/host/h/systemd/payments.service",
                         .kind = "systemd",
                         .unit = "payments.service",
                         .exe = "/usr/bin/python3",
                         .uid = 1000};
  IdentitySelector by_unit{.unit = "payments.service"};
  IdentitySelector by_glob{.unit = "pay*.service"};
  IdentitySelector unit_and_uid{.unit = "payments.service", .uid = 0};
  IdentitySelector by_uri{.uri = "spiffe://td/host/*/systemd/payments.service"};
  IdentitySelector by_container{.container = "0123456789ab"};
  EXPECT_TRUE(by_unit.matches(payments));
  EXPECT_TRUE(by_glob.matches(payments));
  EXPECT_FALSE(unit_and_uid.matches(payments));
  EXPECT_TRUE(by_uri.matches(payments));
  EXPECT_FALSE(by_container.matches(payments));
  IdentityFacts container{.kind = "container", .container_id = std::string("0123456789ab") + std::string(52, 'c')};
  EXPECT_TRUE(by_container.matches(container));
}

// The facts the daemon derives from a process in `cgroup_path` running as `uid`.
IdentityFacts facts_in(const std::string& cgroup_path, uint32_t uid) {
  const auto w = identity::make_workload_identity("td", "h", cgroup_path, 1, uid);
  return IdentityFacts{.uri = w.uri,
                       .kind = std::string(identity::to_string(w.kind)),
                       .unit = w.unit,
                       .user_unit = w.user_unit,
                       .session = w.session,
                       .session_uid = w.session_uid,
                       .container_id = w.container_id,
                       .pod_uid = w.pod_uid,
                       .exe = "/usr/sbin/sshd",
                       .uid = uid,
                       .cgroup_path = w.cgroup_path};
}

const std::string kCid = "0a9b8c7d6e5f40312a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091";

// The attack: a cgroup named like a protected unit anywhere a user can make one. `unit:` is the
// system unit only; the user's own unit is selected by user_unit with its uid.
TEST(PolicySelector, UnitIsTheSystemUnitAndLookAlikesDoNotMatch) {
  const IdentitySelector unit{.unit = "sshd.service"};
  for (const std::string path : {"/system.slice/sshd.service", "/system.slice/foo.slice/sshd.service",
                                 "/system.slice/sshd.service/session-child"}) {
    EXPECT_TRUE(unit.matches(facts_in(path, 0))) << path;
  }
  for (const std::string& path : std::vector<std::string>{
           "/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service", "/nhiguard-test-x/sshd.service",
           "/anything/app.slice/sshd.service", "/anything/system.slice/sshd.service",
           "/system.slice/foo.service/sub/sshd.service", "/system.slice/docker-" + kCid + ".scope/sshd.service",
           "/kubepods/burstable/pod5f2a9d1c-8b3e-4c7a-9e61-0d4f2b8a7c93/" + kCid + "/sshd.service",
           "/../../system.slice/sshd.service"}) {
    EXPECT_FALSE(unit.matches(facts_in(path, 0))) << path;
    EXPECT_FALSE(unit.matches(facts_in(path, 1000))) << path;
  }
}

TEST(PolicySelector, UserUnitSessionAndCgroupKeys) {
  const std::string user_sshd = "/user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service";
  const IdentitySelector user_unit{.user_unit = "sshd.service", .uid = 1000};
  EXPECT_TRUE(user_unit.matches(facts_in(user_sshd, 1000)));
  EXPECT_FALSE(user_unit.matches(facts_in(user_sshd, 0)));  // another uid in that unit
  EXPECT_FALSE(
      user_unit.matches(facts_in("/user.slice/user-1001.slice/user@1001.service/app.slice/sshd.service", 1000)));
  EXPECT_FALSE(user_unit.matches(facts_in("/system.slice/sshd.service", 1000)));
  EXPECT_FALSE(
      user_unit.matches(facts_in("/nhiguard-test-x/user.slice/user-1000.slice/user@1000.service/sshd.service", 1000)));

  const IdentitySelector session{.session = "session-*.scope", .uid = 1000};
  EXPECT_TRUE(session.matches(facts_in("/user.slice/user-1000.slice/session-3.scope", 1000)));
  EXPECT_FALSE(session.matches(facts_in("/user.slice/user-1001.slice/session-3.scope", 1000)));
  EXPECT_FALSE(session.matches(facts_in("/nhiguard-test-x/session-3.scope", 1000)));
  EXPECT_FALSE(session.matches(facts_in(user_sshd, 1000)));

  // cgroup: the cgroup and everything below it, '*' within one component.
  const IdentitySelector cgroup{.cgroup = "/nhiguard-test-x"};
  EXPECT_TRUE(cgroup.matches(facts_in("/nhiguard-test-x", 0)));
  EXPECT_TRUE(cgroup.matches(facts_in("/nhiguard-test-x/app.slice/sshd.service", 0)));
  EXPECT_FALSE(cgroup.matches(facts_in("/nhiguard-test-xy/sshd.service", 0)));
  EXPECT_FALSE(cgroup.matches(facts_in("/", 0)));
  const IdentitySelector cgroup_glob{.cgroup = "/anything/*/sshd.service"};
  EXPECT_TRUE(cgroup_glob.matches(facts_in("/anything/app.slice/sshd.service", 0)));
  EXPECT_FALSE(cgroup_glob.matches(facts_in("/anything/a/b/sshd.service", 0)));
  EXPECT_EQ(IdentitySelector({.user_unit = "x.service", .cgroup = "/a", .uid = 7}).describe(),
            "user_unit=x.service,cgroup=/a,uid=7");
}

TEST(PolicyParser, SelectorKeysForUserUnitsSessionsAndCgroups) {
  const std::vector<PolicySource> ok{{"ok.yaml", R"(version: 1
protected:
  - {user_unit: backup.service, uid: 1000}
  - {session: "session-*.scope"}
  - {cgroup: /payments.slice}
)"}};
  auto parsed = parse_policy_documents(ok);
  ASSERT_TRUE(parsed.ok()) << parsed.errors.front().to_string();
  ASSERT_EQ(parsed.policy.protected_identities.size(), 3u);
  EXPECT_EQ(parsed.policy.protected_identities[0].describe(), "user_unit=backup.service,uid=1000");
  EXPECT_EQ(parsed.policy.protected_identities[2].describe(), "cgroup=/payments.slice");

  const std::vector<PolicySource> bad{{"bad.yaml", R"(version: 1
protected:
  - {user_unit: backup.service}
  - {unit: system.slice}
  - {cgroup: payments.slice}
  - {}
)"}};
  auto errors = parse_policy_documents(bad);
  ASSERT_EQ(errors.errors.size(), 4u);
  EXPECT_EQ(errors.errors[0].line, 3);
  EXPECT_NE(errors.errors[0].message.find("needs uid"), std::string::npos) << errors.errors[0].message;
  EXPECT_EQ(errors.errors[1].field, "protected[1].unit");
  EXPECT_NE(errors.errors[1].message.find("not the slice"), std::string::npos) << errors.errors[1].message;
  EXPECT_EQ(errors.errors[2].field, "protected[2].cgroup");
  EXPECT_NE(errors.errors[3].message.find("user_unit, session, container, pod, cgroup"), std::string::npos)
      << errors.errors[3].message;
}

TEST(PolicyEgress, CidrAndPortContainment) {
  auto net = containment::parse_egress_destination("10.20.0.0/16:443");
  auto any_port = containment::parse_egress_destination("192.0.2.7");
  ASSERT_TRUE(net && any_port);
  std::vector<containment::EgressDestination> allowed{*net, *any_port};
  auto v4 = [](uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    std::array<uint8_t, 16> out{};
    out[10] = out[11] = 0xff;
    out[12] = a, out[13] = b, out[14] = c, out[15] = d;
    return out;
  };
  EXPECT_TRUE(egress_allowed(allowed, v4(10, 20, 3, 4), 443));
  EXPECT_FALSE(egress_allowed(allowed, v4(10, 20, 3, 4), 80));
  EXPECT_FALSE(egress_allowed(allowed, v4(10, 21, 3, 4), 443));
  EXPECT_TRUE(egress_allowed(allowed, v4(192, 0, 2, 7), 22));
  EXPECT_FALSE(egress_allowed(allowed, v4(192, 0, 2, 8), 22));
}

}  // namespace
}  // namespace nhiguard::policy
