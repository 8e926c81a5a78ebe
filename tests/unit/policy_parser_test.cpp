// The policy parser: a valid file with every key, and a corpus of malformed files whose every
// error is asserted by file, line and field.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "policy/policy.h"

namespace nhiguard::policy {
namespace {

using containment::ActionKind;

std::string fixture(const std::string& name) { return std::string(NHIGUARD_TEST_FIXTURES) + "/policy/" + name; }

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
    ::testing::Values(
        MalformedCase{{"unknown_keys.yaml"},
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
        MalformedCase{{"unknown_class.yaml"},
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
  IdentityFacts payments{.uri = "spiffe://td/host/h/systemd/payments.service", .kind = "systemd",
                         .unit = "payments.service", .exe = "/usr/bin/python3", .uid = 1000};
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
