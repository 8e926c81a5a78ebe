// The learned set: what is recorded (only while learning), how identities become selectors, the
// bounds, persistence, and that the suggested policy is valid and allows exactly what was seen.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "policy/decision_engine.h"
#include "policy/learned_set.h"

namespace nhiguard::policy {
namespace {

constexpr int64_t kStart = 1'000'000'000'000;
constexpr int64_t kHour = 3'600'000'000'000;

IdentityFacts service(const std::string& unit) {
  return IdentityFacts{.uri = "spiffe://td/host/h/systemd/" + unit,
                       .kind = "systemd",
                       .unit = unit,
                       .exe = "/usr/bin/python3",
                       .uid = 1000,
                       .cgroup_path = "/system.slice/" + unit};
}

CredentialFacts aws() {
  return CredentialFacts{.id = 1, .path = "/etc/app/aws", .credential_class = catalogue::CredentialClass::aws};
}

DestinationFacts destination(uint8_t last, uint16_t port) {
  DestinationFacts d;
  d.address[10] = d.address[11] = 0xff;
  d.address[12] = 10, d.address[13] = 0, d.address[14] = 0, d.address[15] = last;
  d.port = port;
  d.text = "10.0.0." + std::to_string(last) + ":" + std::to_string(port);
  return d;
}

TEST(LearnedSet, RecordsOnlyWhileLearning) {
  LearnedSet set;
  EXPECT_FALSE(set.record_read(kStart, aws(), service("a.service")));
  set.start(kStart, kStart + kHour);
  EXPECT_TRUE(set.active(kStart + 1));
  EXPECT_TRUE(set.record_read(kStart + 1, aws(), service("a.service")));
  EXPECT_FALSE(set.record_read(kStart + 2, aws(), service("a.service")));      // nothing new
  EXPECT_FALSE(set.record_read(kStart + kHour, aws(), service("b.service")));  // period over
  EXPECT_EQ(set.readers_of(aws()), std::set<std::string>{"unit=a.service"});
  EXPECT_EQ(set.summary(kStart + 1)["observations"], 2);
}

TEST(LearnedSet, SelectorsPerWorkloadKind) {
  EXPECT_EQ(learned_selector(service("getty@tty1.service")).describe(), "unit=getty@tty1.service");
  IdentityFacts container{.kind = "container", .container_id = std::string(64, 'a')};
  EXPECT_EQ(learned_selector(container).describe(), "container=" + std::string(64, 'a'));
  IdentityFacts pod{.kind = "k8s_pod", .container_id = std::string(64, 'b'), .pod_uid = "1234"};
  EXPECT_EQ(learned_selector(pod).describe(), "pod=1234");
  IdentityFacts bare{.kind = "process", .exe = "/opt/tool[1]", .uid = 7};
  EXPECT_EQ(learned_selector(bare).describe(), "exe=/opt/tool\\[1\\],uid=7");  // literal, not a pattern
}

TEST(LearnedSet, SuggestedPolicyIsValidAndAllowsExactlyWhatWasSeen) {
  LearnedSet set;
  set.start(kStart, kStart + kHour);
  set.record_read(kStart + 1, aws(), service("payments.service"));
  set.record_egress(kStart + 2, service("payments.service"), destination(5, 443));
  const std::string yaml = set.suggest_yaml("test\nsecond line");
  EXPECT_TRUE(yaml.starts_with("# test\n# second line\n"));

  std::vector<PolicySource> sources{{"suggested.yaml", yaml},
                                    {"rules.yaml",
                                     "version: 1\nrules:\n  - {name: r, trigger: unexpected_reader, mode: enforce}\n"
                                     "  - {name: e, trigger: unexpected_egress, mode: enforce}\n"}};
  auto parsed = parse_policy_documents(sources);
  ASSERT_TRUE(parsed.ok()) << parsed.errors.front().to_string() << "\n" << yaml;
  DecisionEngine engine(std::make_shared<const Policy>(std::move(parsed.policy)));

  TriggerInput read{.event_ids = {"ev"}, .identity = service("payments.service"), .credential = aws()};
  EXPECT_FALSE(engine.trigger_of(read).has_value());  // seen: allowed
  read.identity = service("other.service");
  EXPECT_EQ(engine.trigger_of(read), TriggerKind::unexpected_reader);  // not seen

  TriggerInput egress{.event = TriggerInput::Event::tainted_egress,
                      .identity = service("payments.service"),
                      .credential = aws(),
                      .destination = destination(5, 443)};
  EXPECT_FALSE(engine.trigger_of(egress).has_value());
  egress.destination = destination(5, 80);
  EXPECT_EQ(engine.trigger_of(egress), TriggerKind::unexpected_egress);
  egress.destination = destination(6, 443);
  EXPECT_EQ(engine.trigger_of(egress), TriggerKind::unexpected_egress);
}

TEST(LearnedSet, BoundsAreCountedNotSilent) {
  LearnedSet set;
  set.start(kStart, kStart + kHour);
  for (size_t i = 0; i < LearnedSet::kMaxDestinationsPerIdentity + 10; ++i) {
    set.record_egress(kStart + 1, service("chatty.service"),
                      destination(static_cast<uint8_t>(i % 250), static_cast<uint16_t>(1000 + i)));
  }
  EXPECT_EQ(set.summary(kStart + 1)["dropped"], 10);
  EXPECT_NE(set.suggest_yaml("x").find("1000"), std::string::npos);
}

TEST(LearnedSet, SurvivesAJsonRoundTrip) {
  LearnedSet set;
  set.start(kStart, kStart + kHour);
  set.record_read(kStart + 1, aws(), service("payments.service"));
  set.record_egress(kStart + 2, service("payments.service"), destination(5, 443));
  ASSERT_TRUE(set.take_dirty());
  EXPECT_FALSE(set.take_dirty());

  LearnedSet restored;
  ASSERT_TRUE(restored.load_json(nlohmann::json::parse(set.to_json().dump())).has_value());
  EXPECT_EQ(restored.suggest_yaml("x"), set.suggest_yaml("x"));
  EXPECT_EQ(restored.readers_of(aws()), set.readers_of(aws()));
  EXPECT_TRUE(restored.active(kStart + 3));
  EXPECT_FALSE(restored.load_json(nlohmann::json{{"version", 2}}).has_value());
  EXPECT_FALSE(restored.load_json(nlohmann::json{{"version", 1}, {"credentials", 5}}).has_value());
}

}  // namespace
}  // namespace nhiguard::policy
