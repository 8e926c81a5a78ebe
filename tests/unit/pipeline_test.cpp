// The agent's whole event path without root or a kernel: synthetic kernel records (FakeSource)
// through the real stages (decode, enrichment, event emission, correlation, decision, execution,
// decision emission) into enforcement maps in memory (FakeEnforcement), a real rollback ledger, a
// real event log and a real outbox, in a temporary directory that stands in for /proc and cgroupfs.
// Shows: a canary read is contained (block in the maps, active ledger row, event and decision
// lines, event/decision/action reports in the outbox); an unexpected reader is held with nothing
// applied, and the collector's approve applies it; a burst of identical reads is one decision; the
// golden blobs replay through the same path.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "catalogue/watched_credentials.h"
#include "common/clock.h"
#include "containment/containment_executor.h"
#include "reporter/collector_commands.h"
#include "events/event_log.h"
#include "fake_kernel.h"
#include "identity/identity_resolver.h"
#include "kernel/replay_source.h"
#include "ledger/rollback_ledger.h"
#include "pipeline/pipeline.h"
#include "policy/decision_engine.h"
#include "reporter/outbox.h"
#include "reporter/reporter.h"
#include "temp_dir.h"

namespace nhiguard::pipeline {
namespace {

namespace fs = std::filesystem;
using containment::ActionKind;
using containment::ActionState;

constexpr uint32_t kReaderPid = 4'190'001;  // above any pid_max: never a live process
constexpr uint64_t kReaderStart = 77'000'000'000ull;

void write_file(const fs::path& path, const std::string& content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << content;
}

// One agent, wired as daemon/agent_daemon.cpp wires it, over in-memory kernel maps.
class PipelineTest : public ::testing::Test {
 protected:
  void start(const std::string& rules) {
    const fs::path root = dir_.path();
    cgroup_root_ = root / "cgroup";
    fs::create_directories(cgroup_root_ / "system.slice" / "payments.service");
    write_file(cgroup_root_ / "system.slice" / "payments.service" / "cgroup.procs", "");
    fs::create_directories(root / "proc");
    fs::create_directories(root / "state");
    credential_ = (root / "etc" / "payments" / "token").string();
    canary_ = (root / "root" / ".aws" / "credentials.old").string();
    write_file(credential_, "token\n");
    write_file(canary_, "[default]\n");
    write_file(root / "passwd", "root:x:0:0:root:/root:/bin/sh\n");
    write_file(root / "policy" / "policy.yaml", "version: 1\ncredentials:\n  - path: " + credential_ +
                                                    "\n    class: custom\n    readers:\n      - unit: billing.service\n"
                                                    "canaries:\n  - path: " +
                                                    canary_ + "\n    class: aws\n" + rules);
    auto parsed = policy::load_policy_dir((root / "policy").string());
    ASSERT_TRUE(parsed.ok()) << config::format_errors(parsed.errors, (root / "policy").string());
    engine_ =
        std::make_unique<policy::DecisionEngine>(std::make_shared<const policy::Policy>(std::move(parsed.policy)));

    catalogue::CatalogueOptions options{.passwd_path = (root / "passwd").string(), .include_builtins = false};
    options.entries.push_back({.pattern = catalogue::catalogue_pattern(credential_, false),
                               .credential_class = catalogue::CredentialClass::custom});
    options.entries.push_back(
        {.pattern = catalogue::catalogue_pattern(canary_, false), .credential_class = catalogue::CredentialClass::aws});
    auto catalogue = catalogue::CredentialCatalogue::create(std::move(options));
    ASSERT_TRUE(catalogue) << catalogue.error().message;
    watched_ = std::make_unique<catalogue::WatchedCredentials>(std::move(*catalogue), tables_,
                                                               (root / "state" / "credential_ids.json").string());
    ASSERT_TRUE(watched_->sync("start"));

    identities_ = std::make_unique<identity::IdentityResolver>(
        identity::IdentityResolverOptions{.trust_domain = "example.org",
                                          .host = "web-1",
                                          .proc_root = (root / "proc").string(),
                                          .cgroup_root = cgroup_root_.string(),
                                          .hash_executables = false});
    auto ledger = ledger::RollbackLedger::open((root / "state" / "ledger.db").string());
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    protected_ = std::make_unique<containment::ProtectedTargets>(
        containment::ProtectedTargets::Snapshot{
            .agent =
                {.pid = 1000, .start_ns = 1, .cgroup_path = "/system.slice/nhiguard-agent.service", .comm = "agent"},
            .init = {.pid = 1, .start_ns = 1, .cgroup_path = "/init.scope", .comm = "systemd"},
        },
        (root / "proc").string());
    resolver_ = std::make_unique<containment::TargetResolver>(cgroup_root_.string());
    executor_ = std::make_unique<containment::ContainmentExecutor>(
        maps_, *ledger_, *protected_, *resolver_, cgroup_root_.string(),
        [this](std::string_view path) { return watched_->by_path(path); }, clock_);
    event_log_ = std::make_unique<events::JsonLineWriter>(
        events::JsonLineWriterOptions{.path = (root / "events.jsonl").string()});
    commands_ = std::make_unique<reporter::CollectorCommands>(
        reporter::AgentOperations{
            .approve = [this](std::string_view h, std::string_view actor,
                              std::string_view note) { return executor_->approve(h, actor, note); },
            .reject = [this](std::string_view h, std::string_view actor,
                             std::string_view note) { return executor_->reject(h, actor, note); },
            .rollback = [this](std::string_view h, std::string_view actor,
                               std::string_view note) { return executor_->rollback(h, actor, note); },
            .mode = [this] { return mode_.load(); },
            .set_mode = [this](config::AgentMode m) { mode_.store(m); },
        },
        *ledger_, (root / "state" / "mode.json").string(), config::AgentMode::policy);
    auto reporter = reporter::Reporter::open(
        {.outbox_path = outbox_path(), .hostname = "web-1", .trust_domain = "example.org"}, *ledger_, *commands_);
    ASSERT_TRUE(reporter) << reporter.error().message;
    reporter_ = std::move(*reporter);
    reporter_->start();
    pipeline_ = std::make_unique<Pipeline>(PipelineParts{
        .redactor = nullptr,
        .identities = *identities_,
        .credentials = *watched_,
        .engine = *engine_,
        .learned = learned_,
        .rate_limiter = rate_limiter_,
        .mode = mode_,
        .protected_targets = *protected_,
        .cgroup2_root = cgroup_root_.string(),
        .executor = *executor_,
        .event_log = *event_log_,
        .reporter = *reporter_,
        .hostname = "web-1",
    });
  }

  void TearDown() override {
    if (reporter_) reporter_->stop();
  }

  std::string outbox_path() const { return (dir_.path() / "state" / "outbox.db").string(); }
  uint64_t payments_cgroup() const {
    struct stat st{};
    EXPECT_EQ(stat((cgroup_root_ / "system.slice" / "payments.service").c_str(), &st), 0);
    return st.st_ino;
  }

  // The record the sensor sends when the reader in payments.service opens `path` for reading.
  nhg_file_event credential_open(const std::string& path, uint64_t ts_ns) {
    auto raw = testing::kernel_record<nhg_file_event>(NHG_EVENT_CREDENTIAL_OPEN, ts_ns, kReaderPid, kReaderStart,
                                                      payments_cgroup(), 1001, "reader");
    auto credential = watched_->by_path(path);
    EXPECT_TRUE(credential) << path;
    raw.file = {.dev = credential->dev, .ino = credential->ino};
    raw.credential_id = credential->credential_id;
    raw.f_mode = 1;  // FMODE_READ
    raw.fd = 3;
    raw.syscall = NHG_SYS_OPENAT;
    std::strncpy(raw.name, fs::path(path).filename().c_str(), sizeof(raw.name) - 1);
    std::strncpy(raw.requested_path, path.c_str(), sizeof(raw.requested_path) - 1);
    return raw;
  }

  // Runs what the source holds through the pipeline, then writes the outbox as the event loop does.
  void drain() {
    auto consumed = source_.consume(pipeline_->input());
    ASSERT_TRUE(consumed) << consumed.error().message;
    reporter_->flush();
  }

  std::vector<nlohmann::json> event_lines() const {
    std::vector<nlohmann::json> lines;
    std::ifstream in(dir_.path() / "events.jsonl");
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  // Every report in the outbox, as "kind:type".
  std::vector<std::string> outbox_reports() const {
    auto outbox = reporter::Outbox::open({.path = outbox_path()});
    EXPECT_TRUE(outbox) << outbox.error().message;
    std::vector<std::string> out;
    if (!outbox) return out;
    auto rows = (*outbox)->take_for_send(0, 1000, 64u << 20);
    EXPECT_TRUE(rows) << rows.error().message;
    for (const auto& row : *rows)
      out.push_back(std::string(reporter::to_string(row.report.kind)) + ":" + row.report.type);
    return out;
  }

  std::vector<containment::RollbackHandle> actions() const {
    auto listed = ledger_->list({});
    EXPECT_TRUE(listed) << listed.error().message;
    return listed ? *listed : std::vector<containment::RollbackHandle>{};
  }

  testing::TempDir dir_{"nhiguard-pipeline"};
  fs::path cgroup_root_;
  std::string credential_;
  std::string canary_;
  testing::FakeSource source_;
  testing::FakeCredentialTables tables_;
  testing::FakeEnforcement maps_;
  SystemClock clock_;
  std::unique_ptr<policy::DecisionEngine> engine_;
  std::unique_ptr<catalogue::WatchedCredentials> watched_;
  std::unique_ptr<identity::IdentityResolver> identities_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  std::unique_ptr<containment::ContainmentExecutor> executor_;
  std::unique_ptr<events::JsonLineWriter> event_log_;
  policy::LearnedSet learned_;
  policy::ActionRateLimiter rate_limiter_;
  std::atomic<config::AgentMode> mode_{config::AgentMode::policy};
  std::unique_ptr<reporter::CollectorCommands> commands_;
  std::unique_ptr<reporter::Reporter> reporter_;
  std::unique_ptr<Pipeline> pipeline_;
};

constexpr const char* kCanaryRule =
    "rules:\n  - name: canary\n    trigger: canary_read\n    mode: enforce\n    response: block_egress\n";
constexpr const char* kHoldRule =
    "rules:\n  - name: reader\n    trigger: unexpected_reader\n    confidence: high\n    mode: hold\n"
    "    response: block_egress\n    ttl: 30m\n";

TEST_F(PipelineTest, CanaryReadIsContainedRecordedAndReported) {
  start(kCanaryRule);
  ASSERT_TRUE(tables_.credentials()->size() == 2) << "the catalogue sync writes both inodes into the kernel tables";
  source_.push_record(credential_open(canary_, clock_ns(CLOCK_BOOTTIME)));
  drain();

  const uint64_t cgroup = payments_cgroup();
  ASSERT_TRUE(maps_.blocks.contains(cgroup)) << "the block reached the enforcement maps";
  EXPECT_TRUE(maps_.blocks[cgroup].destinations.empty()) << "all egress of the offender's cgroup";
  EXPECT_GT(maps_.blocks[cgroup].expires_at_boot_ns, clock_ns(CLOCK_BOOTTIME));

  const auto rows = actions();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ActionState::active);
  EXPECT_EQ(rows[0].action, ActionKind::block_egress);
  EXPECT_EQ(rows[0].rule, "canary");
  EXPECT_EQ(rows[0].target.cgroup_path, "/system.slice/payments.service");
  EXPECT_EQ(maps_.blocks[cgroup].rule_id, containment::ContainmentExecutor::kernel_rule_id(rows[0].handle));

  const auto lines = event_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "credential_access");
  EXPECT_EQ(lines[0]["credential"]["path"], canary_);
  EXPECT_EQ(lines[1]["type"], "decision");
  EXPECT_EQ(lines[1]["outcome"], "contain");
  EXPECT_EQ(lines[1]["handle"]["handle"], rows[0].handle);
  EXPECT_EQ(lines[1]["trigger"]["event_ids"][0], lines[0]["event_id"]) << "the decision names the read it answers";

  EXPECT_EQ(outbox_reports(),
            (std::vector<std::string>{"event:credential_access", "decision:decision", "action_update:action_update"}));
  EXPECT_EQ(pipeline_->counts().decisions.contain, 1u);
  EXPECT_EQ(pipeline_->counts().events_written, 2u);
}

TEST_F(PipelineTest, UnexpectedReaderIsHeldUntilTheCollectorApproves) {
  start(kHoldRule);
  source_.push_record(credential_open(credential_, clock_ns(CLOCK_BOOTTIME)));
  drain();

  auto rows = actions();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ActionState::held);
  EXPECT_TRUE(maps_.blocks.empty()) << "a held action applies nothing";
  const auto lines = event_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["outcome"], "hold");

  v1::Command approve;
  approve.set_command_id("C1");
  approve.set_issued_by("alice");
  approve.mutable_approve()->set_handle(rows[0].handle);
  approve.mutable_approve()->set_reason("looked at it");
  const auto result = commands_->execute(approve);
  EXPECT_EQ(result.status(), v1::CommandResult::STATUS_OK) << result.message();
  reporter_->flush();

  EXPECT_EQ(ledger_->get(rows[0].handle)->state, ActionState::active);
  ASSERT_TRUE(maps_.blocks.contains(payments_cgroup())) << "approval applies the held block";
  EXPECT_EQ(outbox_reports(), (std::vector<std::string>{"event:credential_access", "decision:decision",
                                                        "action_update:action_update", "action_update:action_update"}))
      << "the hold and the approval each reach the collector";
}

TEST_F(PipelineTest, IdenticalReadsWithinTheQuietPeriodAreOneDecision) {
  start(kHoldRule);
  const uint64_t now = clock_ns(CLOCK_BOOTTIME);
  for (int i = 0; i < 3; ++i) source_.push_record(credential_open(credential_, now + static_cast<uint64_t>(i)));
  drain();
  EXPECT_EQ(actions().size(), 1u);
  EXPECT_EQ(pipeline_->counts().decisions.hold, 1u);
  EXPECT_EQ(pipeline_->counts().decisions_suppressed, 2u);
  EXPECT_EQ(event_lines().size(), 4u) << "every read is still an event line";
}

// The record the sensor sends when the process in payments.service reaches into `target`, which
// read `credential` (its taint).
nhg_memory_access_event memory_access(uint64_t cgroup, uint32_t target, uint32_t credential_id, uint64_t ts_ns) {
  auto raw = testing::kernel_record<nhg_memory_access_event>(NHG_EVENT_MEMORY_ACCESS, ts_ns, kReaderPid, kReaderStart,
                                                             cgroup, 0, "gdb");
  raw.target_tgid = target;
  raw.target_tid = target;
  raw.target_start_ns = 5'000'000'000ull;
  raw.taint_credential_id = credential_id;
  raw.taint_source_tgid = target;
  raw.tainted_at_ns = ts_ns - 1'000'000;
  raw.how = NHG_MEM_PROCESS_VM_READV;
  raw.result = 64;
  return raw;
}

TEST_F(PipelineTest, MemoryAccessIntoACredentialHolderContainsTheAccessor) {
  start(
      "rules:\n  - name: memory\n    trigger: credential_memory_access\n    mode: enforce\n"
      "    response: [block_egress, kill_process]\n");
  const uint32_t holder = kReaderPid + 1;
  const auto credential = watched_->by_path(credential_);
  ASSERT_TRUE(credential);
  source_.push_record(memory_access(payments_cgroup(), holder, credential->credential_id, clock_ns(CLOCK_BOOTTIME)));
  drain();

  const auto lines = event_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "credential_memory_access");
  EXPECT_EQ(lines[0]["how"], "process_vm_readv");
  EXPECT_EQ(lines[0]["result"], 64);
  EXPECT_EQ(lines[0]["target"]["pid"], holder);
  EXPECT_EQ(lines[0]["target_taint"]["credential_id"], credential->credential_id);
  EXPECT_EQ(lines[0]["target_taint"]["path"], credential_);
  EXPECT_EQ(lines[0]["process"]["pid"], kReaderPid);
  EXPECT_EQ(lines[1]["type"], "decision");
  EXPECT_EQ(lines[1]["trigger"]["kind"], "credential_memory_access");
  EXPECT_EQ(lines[1]["trigger"]["event"], "memory_access");
  EXPECT_EQ(lines[1]["trigger"]["event_ids"][0], lines[0]["event_id"]);
  EXPECT_EQ(lines[1]["outcome"], "contain");
  EXPECT_TRUE(maps_.blocks.contains(payments_cgroup())) << "the accessor's cgroup is cut off";
  const auto rows = actions();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].action, ActionKind::block_egress);
  EXPECT_EQ(outbox_reports(),
            (std::vector<std::string>{"event:memory_access", "decision:decision", "action_update:action_update"}));
}

nhg_block_device_event block_device_open(uint64_t cgroup, uint32_t uid, uint64_t ts_ns) {
  auto raw = testing::kernel_record<nhg_block_device_event>(NHG_EVENT_BLOCK_DEVICE_OPEN, ts_ns, kReaderPid,
                                                            kReaderStart, cgroup, uid, "dd");
  raw.rdev = (7ull << 20) | 3;
  raw.f_mode = 1;
  raw.fd = 3;
  raw.syscall = NHG_SYS_OPENAT;
  std::strncpy(raw.name, "loop3", sizeof(raw.name) - 1);
  return raw;
}

TEST_F(PipelineTest, BlockDeviceReadByAProcessNotAllowedIsAnEventAndADecision) {
  start(
      "block_device_readers:\n  - uid: 1001\n"
      "rules:\n  - name: raw-disk\n    trigger: block_device_read\n    mode: hold\n    response: freeze\n");
  source_.push_record(block_device_open(payments_cgroup(), 1001, clock_ns(CLOCK_BOOTTIME)));
  drain();
  EXPECT_TRUE(event_lines().empty()) << "an allowed block device reader is no event";
  EXPECT_EQ(pipeline_->counts().block_device_opens_allowed, 1u);

  source_.push_record(block_device_open(payments_cgroup(), 0, clock_ns(CLOCK_BOOTTIME)));
  drain();
  const auto lines = event_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["type"], "block_device_open");
  EXPECT_EQ(lines[0]["device"], "/dev/loop3");
  EXPECT_EQ(lines[0]["device_number"], "7:3");
  EXPECT_EQ(lines[0]["access"], "read");
  EXPECT_EQ(lines[1]["trigger"]["kind"], "block_device_read");
  EXPECT_EQ(lines[1]["trigger"]["device"], "/dev/loop3");
  EXPECT_EQ(lines[1]["credential"], nullptr);
  EXPECT_EQ(lines[1]["outcome"], "hold");
  const auto rows = actions();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, ActionState::held);
  EXPECT_EQ(rows[0].action, ActionKind::freeze);
  EXPECT_EQ(outbox_reports(),
            (std::vector<std::string>{"event:block_device_open", "decision:decision", "action_update:action_update"}));
}

TEST_F(PipelineTest, GoldenRecordsReplayThroughTheSamePath) {
  start(kCanaryRule);
  const std::string fixtures = std::string(NHIGUARD_TEST_FIXTURES) + "/events/";
  std::vector<std::byte> recording;
  for (const char* name : {"process_exec.bin", "process_fork.bin", "credential_open.bin", "process_exit.bin"}) {
    auto one = kernel::ReplaySource::from_files({fixtures + name});
    ASSERT_TRUE(one) << one.error().message;
    struct Keep final : kernel::RecordSink {
      void on_record(std::span<const std::byte> record) override { frame = kernel::recording_frame(record); }
      std::vector<std::byte> frame;
    } keep;
    ASSERT_EQ(*(*one)->consume(keep), 1);
    recording.insert(recording.end(), keep.frame.begin(), keep.frame.end());
  }
  const std::string path = (dir_.path() / "recording.bin").string();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(recording.data()), static_cast<std::streamsize>(recording.size()));
  auto replay = kernel::ReplaySource::from_recording(path);
  ASSERT_TRUE(replay) << replay.error().message;
  ASSERT_EQ((*replay)->remaining(), 4u);
  ASSERT_EQ(*(*replay)->consume(pipeline_->input()), 4);
  EXPECT_EQ((*replay)->remaining(), 0u);
  // The golden credential open names an inode this host's catalogue does not hold: reported with
  // the kernel's id, decided on by nothing.
  EXPECT_EQ(pipeline_->counts().undecodable_records, 0u);
  const auto lines = event_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["type"], "credential_access");
  EXPECT_TRUE(actions().empty());

  std::ofstream(path, std::ios::binary | std::ios::app).write("\x10\x00", 2);
  EXPECT_FALSE(kernel::ReplaySource::from_recording(path)) << "a torn frame is refused, not misread";
}

}  // namespace
}  // namespace nhiguard::pipeline
