// agent.yaml parsing: defaults, every key, and error collection with file:line:column positions.
#include <unistd.h>

#include <algorithm>
#include <string>

#include <gtest/gtest.h>

#include "config/agent_config.h"
#include "config/duration.h"

namespace nhiguard::config {
namespace {

using namespace std::chrono_literals;
using catalogue::CredentialClass;

const std::string kFixtures = std::string(NHIGUARD_TEST_FIXTURES) + "/config/";

const ConfigError* find_error(const ConfigParse& parse, std::string_view field) {
  const auto it =
      std::find_if(parse.errors.begin(), parse.errors.end(), [&](const ConfigError& e) { return e.field == field; });
  return it == parse.errors.end() ? nullptr : &*it;
}

std::string all_errors(const ConfigParse& parse) {
  std::string out;
  for (const ConfigError& e : parse.errors) out += e.to_string() + "\n";
  return out;
}

// Checks that `field` has an error at line:column whose message contains `text`.
void expect_error(const ConfigParse& parse, std::string_view field, int line, int column, std::string_view text) {
  const ConfigError* e = find_error(parse, field);
  ASSERT_NE(e, nullptr) << "no error for " << field << " in:\n" << all_errors(parse);
  EXPECT_EQ(e->line, line) << e->to_string();
  EXPECT_EQ(e->column, column) << e->to_string();
  EXPECT_NE(e->message.find(text), std::string::npos) << e->to_string();
}

TEST(Duration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(parse_duration("90s").value(), 90s);
  EXPECT_EQ(parse_duration("15m").value(), 15min);
  EXPECT_EQ(parse_duration("2h").value(), 2h);
  EXPECT_EQ(parse_duration("1h30m").value(), 90min);
  EXPECT_EQ(parse_duration("500ms").value(), 500ms);
  EXPECT_EQ(parse_duration("1d").value(), 24h);
  EXPECT_EQ(parse_duration("1m30s250ms").value(), 90250ms);
  EXPECT_EQ(parse_duration("0s").value(), 0ms);
}

TEST(Duration, RejectsBareNumbersAndGarbageWithClearMessages) {
  const auto bare = parse_duration("30");
  ASSERT_FALSE(bare.has_value());
  EXPECT_NE(bare.error().message.find("missing unit"), std::string::npos) << bare.error().message;
  EXPECT_NE(bare.error().message.find("\"30s\""), std::string::npos) << bare.error().message;
  for (const char* bad : {"", "s", "-5s", "1.5h", "5 m", "5x", "1h30", "h1", "99999999999999999999s"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(Duration, FormatsTheShortestReadableText) {
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(1500ms), "1s500ms");
  EXPECT_EQ(format_duration(48h), "2d");
  for (auto d : {1ms, 999ms, 61000ms, 3600001ms, 90061001ms}) EXPECT_EQ(parse_duration(format_duration(d)).value(), d);
}

TEST(AgentConfig, EmptyDocumentGivesDefaults) {
  const auto parse = load_agent_config_collecting(kFixtures + "empty.yaml");
  ASSERT_TRUE(parse.ok()) << all_errors(parse);
  const AgentConfig& c = parse.config;
  EXPECT_EQ(c.policy_dir, "/etc/nhiguard/policy.d");
  EXPECT_EQ(c.state_dir, "/var/lib/nhiguard");
  EXPECT_EQ(c.control_socket, "/run/nhiguard/agent.sock");
  EXPECT_EQ(c.mode, AgentMode::policy);
  EXPECT_EQ(c.trust_domain, "nhiguard.local");
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(c.hostname, host);
  EXPECT_EQ(c.collector.address, "");
  EXPECT_EQ(c.collector.pki, "/etc/nhiguard/pki");
  EXPECT_FALSE(c.collector.insecure);
  EXPECT_EQ(c.event_log.path, "/var/lib/nhiguard/events.jsonl");
  EXPECT_FALSE(c.event_log.stdout_mirror);
  EXPECT_EQ(c.event_log.max_bytes, 64u << 20);
  EXPECT_EQ(c.event_log.keep, 3u);
  EXPECT_EQ(c.bpf.pin_dir, "/sys/fs/bpf/nhiguard");
  EXPECT_EQ(c.bpf.ringbuf_bytes, 8u << 20);
  EXPECT_TRUE(c.credentials.empty());
  EXPECT_EQ(c.rescan_interval, 30s);
  EXPECT_TRUE(c.redact_cmdlines) << "command lines are redacted unless agent.yaml says otherwise";
  // And from a string with no content at all.
  EXPECT_TRUE(parse_agent_config("", "inline").has_value());
}

TEST(AgentConfig, MinimalFileKeepsOtherDefaults) {
  auto config = load_agent_config(kFixtures + "minimal.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->mode, AgentMode::observe);
  EXPECT_EQ(config->state_dir, "/var/lib/nhiguard");
  EXPECT_EQ(config->rescan_interval, 30s);
}

TEST(AgentConfig, FullFileSetsEveryField) {
  auto config = load_agent_config(kFixtures + "valid_full.yaml");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  const AgentConfig& c = *config;
  EXPECT_EQ(c.policy_dir, "/srv/nhiguard/policy.d");
  EXPECT_EQ(c.state_dir, "/srv/nhiguard/state") << "trailing slash removed";
  EXPECT_EQ(c.control_socket, "/run/nhiguard-test/agent.sock");
  EXPECT_EQ(c.mode, AgentMode::observe);
  EXPECT_EQ(c.trust_domain, "prod.example.com");
  EXPECT_EQ(c.hostname, "node-17.example.com");
  EXPECT_EQ(c.collector.address, "collector.example.com:7443");
  EXPECT_EQ(c.collector.pki, "/srv/nhiguard/pki");
  EXPECT_TRUE(c.collector.insecure);
  EXPECT_EQ(c.event_log.path, "/var/log/nhiguard/events.jsonl");
  EXPECT_TRUE(c.event_log.stdout_mirror);
  EXPECT_EQ(c.event_log.max_bytes, 16u << 20);
  EXPECT_EQ(c.event_log.keep, 5u);
  EXPECT_EQ(c.bpf.pin_dir, "/sys/fs/bpf/nhiguard-test");
  EXPECT_EQ(c.bpf.ringbuf_bytes, 16u << 20);
  EXPECT_EQ(c.rescan_interval, 90min);
  ASSERT_EQ(c.credentials.size(), 3u);
  EXPECT_EQ(c.credentials[0].pattern, "/etc/payments/gcp-sa.json");
  EXPECT_FALSE(c.credentials[0].is_glob);
  EXPECT_EQ(c.credentials[0].credential_class, CredentialClass::gcp);
  EXPECT_EQ(c.credentials[0].owner, "payments.service");
  EXPECT_EQ(c.credentials[1].pattern, "/srv/app/*.env");
  EXPECT_TRUE(c.credentials[1].is_glob);
  EXPECT_EQ(c.credentials[1].credential_class, CredentialClass::dotenv);
  EXPECT_EQ(c.credentials[1].owner, std::nullopt);
  // A path: is literal, so its metacharacters are escaped for the catalogue.
  EXPECT_EQ(c.credentials[2].pattern, "~/.config/tool/token\\[1\\]");
  EXPECT_EQ(c.credentials[2].written, "~/.config/tool/token[1]");
  EXPECT_EQ(c.credentials[2].credential_class, CredentialClass::custom);
}

TEST(AgentConfig, CredentialsBecomeCatalogueEntries) {
  auto config = load_agent_config(kFixtures + "valid_full.yaml");
  ASSERT_TRUE(config.has_value());
  const auto entries = catalogue_entries(*config);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].pattern, "/etc/payments/gcp-sa.json");
  EXPECT_EQ(entries[0].credential_class, CredentialClass::gcp);
  EXPECT_EQ(entries[0].owner, "payments.service");
  EXPECT_EQ(entries[1].pattern, "/srv/app/*.env");
  EXPECT_EQ(entries[2].pattern, "~/.config/tool/token\\[1\\]");
  // Accepted by the catalogue as they are.
  const std::string passwd = std::string(NHIGUARD_TEST_FIXTURES) + "/catalogue/passwd";
  auto built = catalogue::CredentialCatalogue::create(
      catalogue::CatalogueOptions{.root = "/nonexistent-root", .passwd_path = passwd, .entries = entries});
  ASSERT_TRUE(built.has_value()) << built.error().message;
  const auto rules = (*built)->name_rules();
  EXPECT_NE(std::find(rules.begin(), rules.end(), catalogue::NameRule{"tool", "token[1]"}), rules.end());
  EXPECT_NE(std::find(rules.begin(), rules.end(), catalogue::NameRule{"payments", "gcp-sa.json"}), rules.end());
}

TEST(AgentConfig, OutboxBoundIsASizeWithAFloor) {
  auto config = parse_agent_config("collector:\n  outbox_max_bytes: 16MiB\n", "inline");
  ASSERT_TRUE(config.has_value()) << config.error().message;
  EXPECT_EQ(config->collector.outbox_max_bytes, 16u << 20);
  EXPECT_EQ(parse_agent_config("", "inline")->collector.outbox_max_bytes, 256u << 20);
  const auto tiny = parse_agent_config_collecting("collector:\n  outbox_max_bytes: 1KiB\n", "inline");
  ASSERT_EQ(tiny.errors.size(), 1u);
  EXPECT_EQ(tiny.errors[0].field, "collector.outbox_max_bytes");
  EXPECT_NE(tiny.errors[0].message.find("at least 65536 bytes"), std::string::npos) << tiny.errors[0].message;
}

TEST(AgentConfig, EventLogPathFollowsStateDir) {
  auto config = parse_agent_config("state_dir: /data/nhg\n", "inline");
  ASSERT_TRUE(config.has_value());
  EXPECT_EQ(config->event_log.path, "/data/nhg/events.jsonl");
}

TEST(AgentConfig, EveryErrorInAFileIsReportedAtItsPosition) {
  const std::string path = kFixtures + "multiple_errors.yaml";
  const auto parse = load_agent_config_collecting(path);
  EXPECT_EQ(parse.errors.size(), 13u) << all_errors(parse);
  expect_error(parse, "policy_dir", 2, 13, "absolute path");
  expect_error(parse, "mode", 3, 7, "unknown mode 'enforce'");
  expect_error(parse, "collector.address", 5, 12, "host:port");
  expect_error(parse, "collector.insecure", 6, 13, "true or false");
  expect_error(parse, "event_log.max_bytes", 8, 14, "size in bytes");
  expect_error(parse, "event_log.keep", 9, 9, "whole number");
  expect_error(parse, "bpf.ringbuf_bytes", 11, 18, "power of two");
  expect_error(parse, "credentials[0].class", 14, 12, "unknown credential class 'awz'");
  expect_error(parse, "credentials[1].glob", 15, 11, "absolute");
  expect_error(parse, "credentials[2]", 16, 5, "needs a path: or a glob:");
  expect_error(parse, "credentials[3]", 17, 5, "exactly one");
  expect_error(parse, "rescan_interval", 19, 18, "missing unit");
  expect_error(parse, "trust_domain", 20, 15, "invalid trust domain");
  // Sorted by position, each rendered as file:line:column: field: message.
  EXPECT_TRUE(std::is_sorted(parse.errors.begin(), parse.errors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  }));
  EXPECT_EQ(parse.errors.front().to_string(),
            path + ":2:13: policy_dir: expected an absolute path, got 'relative/policy.d'");

  // The Result form lists all of them in its message.
  auto folded = load_agent_config(path);
  ASSERT_FALSE(folded.has_value());
  EXPECT_EQ(folded.error().code, EINVAL);
  EXPECT_NE(folded.error().message.find("13 errors in " + path), std::string::npos) << folded.error().message;
  for (const ConfigError& e : parse.errors) {
    EXPECT_NE(folded.error().message.find(e.to_string()), std::string::npos) << e.to_string();
  }
}

TEST(AgentConfig, UnknownKeysAreReportedAtEveryLevel) {
  const auto parse = load_agent_config_collecting(kFixtures + "unknown_nested.yaml");
  EXPECT_EQ(parse.errors.size(), 6u) << all_errors(parse);
  expect_error(parse, "collector.adress", 2, 3, "did you mean 'address'");
  expect_error(parse, "event_log.rotate", 5, 3, "unknown key");
  expect_error(parse, "bpf.ring_buffer", 8, 3, "unknown key");
  expect_error(parse, "polcy_dir", 9, 1, "did you mean 'policy_dir'");
  expect_error(parse, "credentials[0].clas", 12, 5, "did you mean 'class'");
  expect_error(parse, "mode", 14, 1, "duplicate key");
  // Known keys next to unknown ones still apply.
  EXPECT_EQ(parse.config.event_log.path, "/var/log/nhiguard/events.jsonl");
}

TEST(AgentConfig, WrongTypesAreReportedAndDefaultsKept) {
  const auto parse = load_agent_config_collecting(kFixtures + "wrong_types.yaml");
  EXPECT_EQ(parse.errors.size(), 9u) << all_errors(parse);
  expect_error(parse, "policy_dir", 1, 13, "expected a string, got a list");
  expect_error(parse, "collector", 2, 12, "expected a mapping, got 'just-a-string'");
  expect_error(parse, "event_log.stdout", 4, 11, "true or false");
  expect_error(parse, "event_log.max_bytes", 5, 14, "got a mapping");
  expect_error(parse, "bpf", 6, 6, "expected a mapping, got a list");
  expect_error(parse, "credentials", 7, 14, "expected a list of credentials");
  expect_error(parse, "rescan_interval", 8, 18, "expected a duration");
  expect_error(parse, "mode", 9, 1, "expected a string, got null");  // at the key: a null has no position
  expect_error(parse, "hostname", 10, 11, "invalid hostname");
  EXPECT_EQ(parse.config.policy_dir, "/etc/nhiguard/policy.d");
  EXPECT_EQ(parse.config.mode, AgentMode::policy);
}

TEST(AgentConfig, SyntaxErrorIsOneClearError) {
  const std::string path = kFixtures + "syntax_error.yaml";
  const auto parse = load_agent_config_collecting(path);
  ASSERT_EQ(parse.errors.size(), 1u) << all_errors(parse);
  EXPECT_GT(parse.errors[0].line, 0);
  EXPECT_NE(parse.errors[0].message.find("invalid YAML"), std::string::npos);
  auto folded = load_agent_config(path);
  ASSERT_FALSE(folded.has_value());
  EXPECT_TRUE(folded.error().message.starts_with(path + ":")) << folded.error().message;
}

TEST(AgentConfig, TopLevelMustBeAMapping) {
  const auto parse = load_agent_config_collecting(kFixtures + "not_a_mapping.yaml");
  ASSERT_EQ(parse.errors.size(), 1u) << all_errors(parse);
  EXPECT_EQ(parse.errors[0].line, 1);
  EXPECT_NE(parse.errors[0].message.find("top level"), std::string::npos);
}

TEST(AgentConfig, UnreadableFileIsOneErrorWithErrno) {
  const std::string path = kFixtures + "does-not-exist.yaml";
  auto config = load_agent_config(path);
  ASSERT_FALSE(config.has_value());
  EXPECT_EQ(config.error().code, ENOENT);
  EXPECT_NE(config.error().message.find(path), std::string::npos);
  const auto parse = load_agent_config_collecting(path);
  ASSERT_EQ(parse.errors.size(), 1u);
  EXPECT_EQ(parse.errors[0].line, 0);
  EXPECT_EQ(parse.errors[0].to_string(), path + ": cannot read: No such file or directory");
}

TEST(AgentConfig, ValueChecks) {
  const auto errors_of = [](const std::string& yaml) { return parse_agent_config_collecting(yaml, "t").errors; };
  EXPECT_TRUE(errors_of("bpf: {ringbuf_bytes: 8MiB}").empty());
  EXPECT_FALSE(errors_of("bpf: {ringbuf_bytes: 1024}").empty()) << "below the page size";
  EXPECT_FALSE(errors_of("bpf: {ringbuf_bytes: 0}").empty());
  EXPECT_FALSE(errors_of("bpf: {ringbuf_bytes: 2GiB}").empty());
  EXPECT_TRUE(parse_agent_config("bpf: {report_all_egress: true}", "t").value().bpf.report_all_egress);
  EXPECT_FALSE(parse_agent_config("", "t").value().bpf.report_all_egress) << "egress of untainted processes is opt-in";
  EXPECT_FALSE(errors_of("bpf: {report_all_egress: often}").empty());
  EXPECT_FALSE(errors_of("control_socket: /" + std::string(120, 's')).empty()) << "sun_path is 108 bytes";
  EXPECT_TRUE(errors_of("collector: {address: '[2001:db8::1]:7443'}").empty());
  EXPECT_TRUE(errors_of("collector: {address: 'unix:/run/nhiguard/collector.sock'}").empty());
  EXPECT_TRUE(errors_of("collector: {address: ''}").empty()) << "empty = no collector";
  EXPECT_FALSE(errors_of("collector: {address: 'host:99999'}").empty());
  EXPECT_FALSE(errors_of("collector: {address: '2001:db8::1:7443'}").empty());
  EXPECT_FALSE(errors_of("rescan_interval: 500ms").empty()) << "at least 1s";
  EXPECT_TRUE(errors_of("event_log: {max_bytes: 0, keep: 0}").empty());
  EXPECT_FALSE(errors_of("event_log: {max_bytes: 100}").empty());
  EXPECT_FALSE(errors_of("credentials: [{path: /etc/../x}]").empty());
  EXPECT_FALSE(errors_of("credentials: [{path: /x, owner: ''}]").empty());
  EXPECT_FALSE(errors_of("credentials: [/etc/x]").empty()) << "an item must be a mapping";
  EXPECT_FALSE(errors_of("{[a]: 1}").empty()) << "non-scalar key";
}

TEST(AgentConfig, ShippedDefaultConfigParsesToTheDefaults) {
  const std::string path = std::string(NHIGUARD_TEST_FIXTURES) + "/../../../packaging/agent.yaml";
  auto shipped = load_agent_config(path);
  ASSERT_TRUE(shipped.has_value()) << shipped.error().message;
  const AgentConfig defaults = parse_agent_config("", "defaults").value();
  EXPECT_EQ(shipped->policy_dir, defaults.policy_dir);
  EXPECT_EQ(shipped->state_dir, defaults.state_dir);
  EXPECT_EQ(shipped->control_socket, defaults.control_socket);
  EXPECT_EQ(shipped->mode, defaults.mode);
  EXPECT_EQ(shipped->trust_domain, defaults.trust_domain);
  EXPECT_EQ(shipped->collector.address, defaults.collector.address);
  EXPECT_EQ(shipped->collector.pki, defaults.collector.pki);
  EXPECT_EQ(shipped->collector.insecure, defaults.collector.insecure);
  EXPECT_EQ(shipped->event_log.path, defaults.event_log.path);
  EXPECT_EQ(shipped->event_log.stdout_mirror, defaults.event_log.stdout_mirror);
  EXPECT_EQ(shipped->event_log.max_bytes, defaults.event_log.max_bytes);
  EXPECT_EQ(shipped->event_log.keep, defaults.event_log.keep);
  EXPECT_EQ(shipped->bpf.pin_dir, defaults.bpf.pin_dir);
  EXPECT_EQ(shipped->bpf.report_all_egress, defaults.bpf.report_all_egress);
  EXPECT_EQ(shipped->bpf.ringbuf_bytes, defaults.bpf.ringbuf_bytes);
  EXPECT_EQ(shipped->rescan_interval, defaults.rescan_interval);
  EXPECT_EQ(shipped->redact_cmdlines, defaults.redact_cmdlines);
  EXPECT_TRUE(shipped->credentials.empty());
}

TEST(AgentConfig, RedactCmdlinesIsOnUnlessExplicitlyOff) {
  auto off = parse_agent_config("redact_cmdlines: false\n", "inline");
  ASSERT_TRUE(off.has_value()) << off.error().message;
  EXPECT_FALSE(off->redact_cmdlines);
  auto on = parse_agent_config("redact_cmdlines: true\n", "inline");
  ASSERT_TRUE(on.has_value()) << on.error().message;
  EXPECT_TRUE(on->redact_cmdlines);
  // Anything but a boolean is an error with its place, never a silent "off".
  const auto parse = parse_agent_config_collecting("mode: observe\nredact_cmdlines: no-thanks\n", "agent.yaml");
  ASSERT_EQ(parse.errors.size(), 1u);
  EXPECT_EQ(parse.errors[0].line, 2);
  EXPECT_NE(parse.errors[0].to_string().find("redact_cmdlines"), std::string::npos) << parse.errors[0].to_string();
  EXPECT_TRUE(parse.config.redact_cmdlines) << "an invalid value leaves the default";
}

}  // namespace
}  // namespace nhiguard::config
