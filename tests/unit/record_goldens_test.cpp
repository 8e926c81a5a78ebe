// Golden records: the exact JSON lines the event log writes and the exact protobuf messages the
// outbox sends, for representative records of every kind the agent emits both ways (credential
// access, repeat summary, egress, decision, rollback handle). The JSON lines are e2e's and
// operators' contract (DESIGN.md); the protobuf is the collector's. A change to either is a change
// of the golden file in the same commit, so it is seen in review, never made by accident.
//
// The goldens live in fixtures/records/: NAME.json (pretty-printed; compared as the one line the
// event log writes) and NAME.textproto (protobuf text format; compared field by field). On a
// mismatch the actual record is written beside the temporary directory named in the failure, so a
// deliberate change is copied in rather than typed.
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "containment/action.h"
#include "records/control_audit_record.h"
#include "records/credential_access_record.h"
#include "records/decision_record.h"
#include "records/block_device_record.h"
#include "records/egress_record.h"
#include "records/memory_access_record.h"
#include "records/rollback_handle_record.h"
#include "reporter/wire_records.h"

namespace nhiguard {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::filesystem::path kGoldenDir = std::filesystem::path(NHIGUARD_TEST_FIXTURES) / "records";

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Where a mismatching record is written for a person to inspect and, if the change is meant, copy.
std::filesystem::path write_actual(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "nhiguard-record-goldens";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

// The line exactly as events::EventLog writes it.
std::string event_log_line(const json& record) {
  return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string pretty(const json& record) {
  return record.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

void expect_json_golden(const json& record, const std::string& name) {
  const auto path = kGoldenDir / (name + ".json");
  const std::string text = read_text(path);
  ASSERT_FALSE(text.empty()) << "no golden " << path << "; actual written to "
                             << write_actual(name + ".json", pretty(record));
  const json golden = json::parse(text);
  const std::string line = event_log_line(record);
  if (line != event_log_line(golden)) {
    ADD_FAILURE() << "JSON line differs from " << path << "\n  actual:   " << line
                  << "\n  expected: " << event_log_line(golden) << "\n  actual written to "
                  << write_actual(name + ".json", pretty(record));
  }
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

void expect_proto_golden(const google::protobuf::Message& message, const std::string& name) {
  const auto path = kGoldenDir / (name + ".textproto");
  const std::string text = read_text(path);
  std::string actual_text;
  google::protobuf::TextFormat::PrintToString(message, &actual_text);
  ASSERT_FALSE(text.empty()) << "no golden " << path << "; actual written to "
                             << write_actual(name + ".textproto", actual_text);
  std::unique_ptr<google::protobuf::Message> golden(message.New());
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, golden.get())) << path;
  std::string differences;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&differences);
  if (!differ.Compare(*golden, message)) {
    ADD_FAILURE() << "protobuf differs from " << path << ":\n"
                  << differences << "actual written to " << write_actual(name + ".textproto", actual_text);
  }
}

// --- representative inputs ---------------------------------------------------------------------

// A systemd service whose names carry bytes that are not UTF-8 and control characters: every one
// must come out escaped (escape_bytes), in the JSON and on the wire alike.
identity::ResolvedIdentity odd_names_identity() {
  identity::ResolvedIdentity id;
  id.workload.kind = identity::WorkloadKind::systemd_service;
  id.workload.name = "pay\xffments.service";
  id.workload.id = "pay\xffments.service";
  id.workload.unit = "pay\xffments.service";
  id.workload.cgroup_path = "/system.slice/pay\xffments.service";
  id.workload.cgroup_id = 8123;
  id.workload.uri = "spiffe://nhiguard.local/host/web-1/systemd/pay%FFments.service";
  id.process.pid = 4048;
  id.process.tid = 4049;
  id.process.ppid = 4047;
  id.process.start_ns = 4'638'473'412;
  id.process.uid = 1000;
  id.process.euid = 1001;
  id.process.gid = 1002;
  id.process.comm = "c\x01t";
  id.process.exe = "/opt/\xc3\x28/cat";  // an invalid two-byte sequence
  id.process.exe_sha256 = std::string(64, 'e');
  id.process.cmdline = {"cat", "tab\there", "new\nline", "\xfe\xff"};
  id.process.session_id = 311;
  id.process.audit_session_id = 7;
  id.process.login_uid = 1000;
  id.process.ancestry = {{.pid = 4047, .ppid = 4000, .start_time_ticks = 5, .comm = "ba\x7fsh", .exe = "/usr/bin/bash"},
                         {.pid = 4000, .ppid = 1, .start_time_ticks = 2, .comm = "sshd", .exe = ""}};
  id.resolved_from_proc = true;
  return id;
}

// A Kubernetes container whose argv went through the redactor, seen only by the kernel (the
// process was gone before /proc could be read).
identity::ResolvedIdentity redacted_pod_identity() {
  identity::ResolvedIdentity id;
  id.workload.kind = identity::WorkloadKind::kubernetes_pod;
  id.workload.name = "6f1c2d3e-0000-4000-8000-00000000abcd";
  id.workload.id = "6f1c2d3e-0000-4000-8000-00000000abcd";
  id.workload.runtime = "containerd";
  id.workload.pod_uid = "6f1c2d3e-0000-4000-8000-00000000abcd";
  id.workload.container_id = std::string(64, 'c');
  id.workload.qos_class = "burstable";
  id.workload.cgroup_path =
      "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6f1c2d3e_0000_4000_8000_00000000abcd.slice/"
      "cri-containerd-cccc.scope";
  id.workload.cgroup_id = 9001;
  id.workload.uri = "spiffe://nhiguard.local/host/node-7/k8s/pod/6f1c2d3e-0000-4000-8000-00000000abcd/container/" +
                    std::string(64, 'c');
  id.process.pid = 31337;
  id.process.tid = 31337;
  id.process.start_ns = 77'000'000'000;
  id.process.uid = 0;
  id.process.comm = "curl";
  id.process.exe = "/usr/bin/curl";
  id.process.exe_deleted = true;
  id.process.cmdline = {"curl", "-H", "Authorization: Bearer <redacted:bearer:3f9a1c0d2b4e>", "--data",
                        "key=<redacted:aws-secret:0011aabbccdd>"};
  id.process.cmdline_truncated = true;
  id.process.cmdline_redacted = true;
  id.resolved_from_proc = false;
  id.notes = {"pid 31337 gone before /proc was read", "cmdline from the kernel at the open"};
  return id;
}

identity::ResolvedIdentity bare_process_identity() {
  identity::ResolvedIdentity id;
  id.workload.kind = identity::WorkloadKind::bare_process;
  id.workload.name = "python3";
  id.workload.id = "1001";
  id.workload.cgroup_path = "/user.slice";
  id.workload.cgroup_id = 2;
  id.workload.uri = "spiffe://nhiguard.local/host/web-1/uid/1001/process";
  id.process.pid = 5000;
  id.process.tid = 5002;
  id.process.ppid = 4999;
  id.process.start_ns = 123;
  id.process.uid = 1001;
  id.process.euid = 1001;
  id.process.gid = 1001;
  id.process.comm = "python3";
  id.process.exe = "/usr/bin/python3.11";
  id.resolved_from_proc = true;
  return id;
}

catalogue::ResolvedCredential aws_credential() {
  return catalogue::ResolvedCredential{.credential_id = 3,
                                       .credential_class = catalogue::CredentialClass::aws,
                                       .path = "/root/.aws/cred\xff",
                                       .aliases = {"/srv/link\x01", "/etc/aws-creds"},
                                       .dev = (254ull << 20) | 3,
                                       .ino = 10953933,
                                       .owner = "payments.service"};
}

events::FileOpenEvent read_event() {
  events::FileOpenEvent e;
  e.by_inode = true;
  e.ts_ns = 99'000;
  e.process.tgid = 4048;
  e.process.tid = 4049;
  e.process.cgroup_id = 8123;
  e.dev = (254ull << 20) | 3;
  e.ino = 10953933;
  e.credential_id = 3;
  e.open_flags = 0x8000;
  e.f_mode = 0x1;
  e.fd = 5;
  e.syscall = events::OpenSyscall::openat;
  e.requested_path = std::string("../.aws/cred\xff\n", 14);
  return e;
}

constexpr uint64_t kWall = 1'700'000'000'123'456'789ull;  // 2023-11-14T22:13:20.123456789Z

// One event's JSON line and outbox report, made as the daemon makes them: the line is rendered
// from the very record the report carries.
struct Encoded {
  json line;
  reporter::Report report;
  v1::Report body;  // the report's payload, parsed
};

Encoded encode_access(const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential,
                      const identity::ResolvedIdentity& identity, std::string_view host, uint64_t wall_ns,
                      std::string event_id) {
  auto record = records::credential_access_to_wire(event, credential, identity, static_cast<int64_t>(wall_ns),
                                                   std::move(event_id));
  Encoded out{.line = records::credential_access_line(record, event, host)};
  out.report = reporter::credential_access_report(std::move(record), event.ts_ns);
  EXPECT_TRUE(out.body.ParseFromString(out.report.payload));
  return out;
}

Encoded encode_egress(const events::EgressEvent& event, const catalogue::ResolvedCredential* taint,
                      const identity::ResolvedIdentity& identity, std::string_view host, uint64_t wall_ns,
                      std::string event_id) {
  auto record = records::egress_to_wire(event, taint, identity, static_cast<int64_t>(wall_ns), std::move(event_id));
  Encoded out{.line = records::egress_line(record, host)};
  out.report = reporter::egress_report(std::move(record), event.ts_ns);
  EXPECT_TRUE(out.body.ParseFromString(out.report.payload));
  return out;
}

TEST(RecordGoldens, CredentialAccessWithOddBytes) {
  const auto encoded = encode_access(read_event(), aws_credential(), odd_names_identity(), "web-1", kWall,
                                     "ev_01HGOLDEN0000000000000001");
  expect_json_golden(encoded.line, "credential_access_odd_bytes");
  EXPECT_EQ(encoded.report.type, "credential_access");
  EXPECT_TRUE(encoded.report.droppable);
  EXPECT_EQ(encoded.report.event_boot_ns, 99'000u);
  EXPECT_EQ(encoded.report.event_wall_ns, static_cast<int64_t>(kWall));
  expect_proto_golden(encoded.body, "credential_access_odd_bytes");
}

TEST(RecordGoldens, DeniedReadWithRedactedCmdline) {
  auto event = read_event();
  event.by_inode = false;
  event.f_mode = 0x3;
  event.open_flags = 0x8002;
  event.syscall = events::OpenSyscall::openat2;
  event.requested_path = "/var/run/secrets/kubernetes.io/serviceaccount/tok";
  event.path_truncated = true;
  event.denied = true;
  event.coalesced_opens = 2;
  const catalogue::ResolvedCredential token{.credential_id = 11,
                                            .credential_class = catalogue::CredentialClass::kube_sa_token,
                                            .path = "/var/run/secrets/kubernetes.io/serviceaccount/token"};
  const auto encoded =
      encode_access(event, token, redacted_pod_identity(), "node-7", kWall + 1, "ev_01HGOLDEN0000000000000002");
  expect_json_golden(encoded.line, "credential_access_denied_redacted");
  EXPECT_FALSE(encoded.report.droppable);
  expect_proto_golden(encoded.body, "credential_access_denied_redacted");
}

TEST(RecordGoldens, RepeatSummary) {
  events::FileOpenEvent event;
  event.by_inode = true;
  event.ts_ns = 5'000'000;
  event.process.tgid = 5000;
  event.dev = (8ull << 20) | 1;
  event.ino = 42;
  event.credential_id = 4;
  event.syscall = events::OpenSyscall::none;
  event.repeat_summary = true;
  event.coalesced_opens = 4096;
  event.path_missing = true;
  event.cmdline_omitted = true;
  const catalogue::ResolvedCredential netrc{
      .credential_id = 4, .credential_class = catalogue::CredentialClass::netrc, .path = "/home/app/.netrc"};
  const auto encoded =
      encode_access(event, netrc, bare_process_identity(), "web-1", kWall, "ev_01HGOLDEN0000000000000003");
  expect_json_golden(encoded.line, "credential_access_repeat_summary");
  expect_proto_golden(encoded.body, "credential_access_repeat_summary");
}

// read_at is the taint's boot time on the wall clock now, which no golden can hold: it is checked
// against the clock and then pinned, so everything else is compared exactly.
constexpr std::string_view kPinnedReadAt = "2023-11-14T22:13:19.000000000Z";
constexpr int64_t kPinnedReadAtNs = 1'699'999'999'000'000'000;

void pin_read_at(json& record, uint64_t tainted_at_ns) {
  ASSERT_TRUE(record["tainted_by"].is_object());
  const auto expected = boot_to_wall_ns(tainted_at_ns);
  const std::string text = record["tainted_by"]["read_at"].get<std::string>();
  // Same second (the two clock reads are nanoseconds apart; a second boundary between them is
  // vanishingly rare and shows as this failure).
  EXPECT_EQ(text.substr(0, 19), format_rfc3339_ns(expected).substr(0, 19));
  record["tainted_by"]["read_at"] = kPinnedReadAt;
}

void pin_read_at(v1::Report& body, uint64_t tainted_at_ns) {
  ASSERT_TRUE(body.egress().has_tainted_by());
  const auto expected = static_cast<int64_t>(boot_to_wall_ns(tainted_at_ns));
  EXPECT_LT(std::abs(body.egress().tainted_by().read_at_unix_ns() - expected), 1'000'000'000);
  body.mutable_egress()->mutable_tainted_by()->set_read_at_unix_ns(kPinnedReadAtNs);
}

events::EgressEvent tainted_connect() {
  events::EgressEvent e;
  e.ts_ns = 7'000'000;
  e.process.tgid = 4048;
  e.process.tid = 4049;
  e.process.cgroup_id = 8123;
  e.address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9};
  e.port = 443;
  e.family = AF_INET;
  e.protocol = IPPROTO_TCP;
  e.hook = events::EgressHook::connect4;
  e.taint_credential_id = 3;
  e.taint_source_tgid = 4047;
  e.tainted_at_ns = 6'000'000;
  return e;
}

TEST(RecordGoldens, TaintedEgressIpv4Tcp) {
  const auto event = tainted_connect();
  const auto taint = aws_credential();
  auto encoded = encode_egress(event, &taint, odd_names_identity(), "web-1", kWall, "ev_01HGOLDEN0000000000000004");
  EXPECT_EQ(encoded.line["tainted_by"]["read_at"],
            format_rfc3339_ns(static_cast<uint64_t>(encoded.body.egress().tainted_by().read_at_unix_ns())))
      << "one read_at, in the line and the report";
  pin_read_at(encoded.line, event.tainted_at_ns);
  expect_json_golden(encoded.line, "egress_tainted_ipv4_tcp");
  EXPECT_TRUE(encoded.report.droppable);
  EXPECT_EQ(encoded.report.type, "egress");
  pin_read_at(encoded.body, event.tainted_at_ns);
  expect_proto_golden(encoded.body, "egress_tainted_ipv4_tcp");
}

TEST(RecordGoldens, DeniedEgressIpv6Udp) {
  events::EgressEvent event;
  event.ts_ns = 8'000'000;
  event.process.tgid = 5000;
  event.process.tid = 5002;
  event.address = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  event.port = 53;
  event.family = AF_INET6;
  event.protocol = IPPROTO_UDP;
  event.hook = events::EgressHook::sendmsg6;
  event.denied = true;
  event.rule_id = 77;
  const auto encoded =
      encode_egress(event, nullptr, bare_process_identity(), "web-1", kWall, "ev_01HGOLDEN0000000000000005");
  expect_json_golden(encoded.line, "egress_denied_ipv6_udp");
  EXPECT_FALSE(encoded.report.droppable);
  expect_proto_golden(encoded.body, "egress_denied_ipv6_udp");
}

// Tainted by a credential the catalogue no longer knows, over a protocol that is neither TCP nor UDP.
TEST(RecordGoldens, EgressTaintedByUnknownCredential) {
  auto event = tainted_connect();
  event.protocol = IPPROTO_SCTP;
  event.hook = events::EgressHook::sendmsg4;
  event.taint_source_tgid = event.process.tgid;
  auto encoded =
      encode_egress(event, nullptr, redacted_pod_identity(), "node-7", kWall, "ev_01HGOLDEN0000000000000006");
  pin_read_at(encoded.line, event.tainted_at_ns);
  expect_json_golden(encoded.line, "egress_taint_unknown_credential");
  pin_read_at(encoded.body, event.tainted_at_ns);
  expect_proto_golden(encoded.body, "egress_taint_unknown_credential");
}

// A debugger-shaped accessor seizing a thread of a pod's process that read its service-account
// token: the target and its credential ride along with the accessor.
TEST(RecordGoldens, MemoryAccessIntoATokenHolder) {
  events::MemoryAccessEvent event;
  event.ts_ns = 9'000'000;
  event.process.tgid = 5000;
  event.how = events::MemoryAccessHow::ptrace_seize;
  event.result = 0;
  event.target_tgid = 31337;
  event.target_tid = 31340;
  event.target_start_ns = 77'000'000'000;
  event.taint_credential_id = 11;
  event.taint_source_tgid = 31337;
  event.tainted_at_ns = 8'000'000;
  const catalogue::ResolvedCredential token{.credential_id = 11,
                                            .credential_class = catalogue::CredentialClass::kube_sa_token,
                                            .path = "/var/run/secrets/kubernetes.io/serviceaccount/token"};
  auto record = records::memory_access_to_wire(event, &token, bare_process_identity(), redacted_pod_identity(),
                                               static_cast<int64_t>(kWall), "ev_01HGOLDEN0000000000000007");
  auto line = records::memory_access_line(record, "node-7");
  auto report = reporter::memory_access_report(record, event.ts_ns);
  v1::Report body;
  ASSERT_TRUE(body.ParseFromString(report.payload));
  EXPECT_EQ(report.type, "memory_access");
  EXPECT_TRUE(report.droppable);
  EXPECT_EQ(report.event_boot_ns, 9'000'000u);
  ASSERT_TRUE(line["target_taint"].is_object());
  line["tainted_by"] = line["target_taint"];  // pin_read_at reads it under the egress name
  pin_read_at(line, event.tainted_at_ns);
  line["target_taint"] = line["tainted_by"];
  line.erase("tainted_by");
  expect_json_golden(line, "memory_access_ptrace_seize");
  const auto expected = static_cast<int64_t>(boot_to_wall_ns(event.tainted_at_ns));
  EXPECT_LT(std::abs(body.memory_access().target_taint().read_at_unix_ns() - expected), 1'000'000'000);
  body.mutable_memory_access()->mutable_target_taint()->set_read_at_unix_ns(kPinnedReadAtNs);
  expect_proto_golden(body, "memory_access_ptrace_seize");
}

TEST(RecordGoldens, BlockDeviceOpen) {
  events::BlockDeviceOpenEvent event;
  event.ts_ns = 10'000'000;
  event.process.tgid = 4048;
  event.rdev = (7ull << 20) | 3;
  event.f_mode = 0x1;
  event.fd = 3;
  event.syscall = events::OpenSyscall::openat;
  event.name = "loop\x013";
  auto record = records::block_device_to_wire(event, odd_names_identity(), static_cast<int64_t>(kWall),
                                              "ev_01HGOLDEN0000000000000008");
  auto line = records::block_device_line(record, "web-1");
  auto report = reporter::block_device_open_report(record, event.ts_ns);
  v1::Report body;
  ASSERT_TRUE(body.ParseFromString(report.payload));
  EXPECT_EQ(report.type, "block_device_open");
  expect_json_golden(line, "block_device_open");
  expect_proto_golden(body, "block_device_open");
}

// A pipe's sender: it read nothing, its cgroup's window attributed the reader's credential.
TEST(RecordGoldens, EgressAttributedByTheCgroupWindow) {
  auto event = tainted_connect();
  event.taint_from_cgroup_window = true;
  event.process.start_ns = 0;
  const auto taint = aws_credential();
  auto encoded = encode_egress(event, &taint, odd_names_identity(), "web-1", kWall, "ev_01HGOLDEN0000000000000009");
  pin_read_at(encoded.line, event.tainted_at_ns);
  EXPECT_EQ(encoded.line["tainted_by"]["attribution"], "cgroup_window");
  EXPECT_EQ(encoded.line["tainted_by"]["inherited"], false);
  expect_json_golden(encoded.line, "egress_cgroup_window");
  pin_read_at(encoded.body, event.tainted_at_ns);
  expect_proto_golden(encoded.body, "egress_cgroup_window");
}

// --- decisions and handles ---------------------------------------------------------------------

policy::IdentityFacts facts_of(const identity::ResolvedIdentity& id) {
  return policy::IdentityFacts{.uri = id.workload.uri,
                               .kind = std::string(identity::to_string(id.workload.kind)),
                               .unit = id.workload.unit,
                               .container_id = id.workload.container_id,
                               .pod_uid = id.workload.pod_uid,
                               .exe = id.process.exe,
                               .uid = id.process.uid,
                               .cgroup_path = id.workload.cgroup_path,
                               .cgroup_id = id.workload.cgroup_id,
                               .pid = id.process.pid,
                               .pid_start_ns = id.process.start_ns,
                               .comm = id.process.comm};
}

containment::RollbackHandle held_deny_handle() {
  containment::RollbackHandle h;
  h.handle = "rb_01HGOLDEN00000000000000HD";
  h.action = containment::ActionKind::deny_credential;
  h.state = containment::ActionState::held;
  h.target.unit = "pay\xffments.service";
  h.target.cgroup_path = "/system.slice/pay\xffments.service";
  h.target.cgroup_id = 8123;
  h.target.credential_path = "/root/.aws/cred\xff";
  h.target.credential_id = 3;
  h.target.workload_uri = "spiffe://nhiguard.local/host/web-1/systemd/pay%FFments.service";
  h.rule = "aws-readers";
  h.reason = "payments.service read /root/.aws/credentials, not an allowed reader";
  h.trigger_event_ids = {"ev_01HGOLDEN0000000000000001"};
  h.created_at_ns = static_cast<int64_t>(kWall);
  h.expires_at_ns = static_cast<int64_t>(kWall) + 900'000'000'000;
  h.expires_at_boot_ns = 900'000'099'000;
  h.updated_at_ns = static_cast<int64_t>(kWall);
  h.rollback_operation = "delete nhg_credential_denies[cgroup 8123, credential 3]";
  return h;
}

containment::RollbackHandle active_block_handle() {
  containment::RollbackHandle h;
  h.handle = "rb_01HGOLDEN00000000000000BE";
  h.action = containment::ActionKind::block_egress;
  h.state = containment::ActionState::active;
  h.target.cgroup_path = "/user.slice";
  h.target.cgroup_id = 2;
  h.target.destinations = {"203.0.113.9/32:443", "2001:db8::/32"};
  h.target.workload_uri = "spiffe://nhiguard.local/host/web-1/uid/1001/process";
  h.rule = "no-exfil";
  h.reason = "tainted egress";
  h.trigger_event_ids = {"ev_01HGOLDEN0000000000000004", "ev_01HGOLDEN0000000000000001"};
  h.created_at_ns = static_cast<int64_t>(kWall);
  h.expires_at_ns = static_cast<int64_t>(kWall) + 600'000'000'000;
  h.expires_at_boot_ns = 600'007'000'000;
  h.boot_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
  h.updated_at_ns = static_cast<int64_t>(kWall) + 5;
  h.rollback_operation = "delete nhg_egress_blocks[cgroup 2]";
  return h;
}

containment::RollbackHandle irreversible_kill_handle() {
  containment::RollbackHandle h;
  h.handle = "rb_01HGOLDEN00000000000000KP";
  h.action = containment::ActionKind::kill_process;
  h.state = containment::ActionState::irreversible;
  h.target.pid = 31337;
  h.target.pid_start_ns = 77'000'000'000;
  h.target.session_id = 31300;
  h.target.workload_uri = "spiffe://nhiguard.local/host/node-7/k8s/pod/6f1c2d3e-0000-4000-8000-00000000abcd";
  h.rule = "manual";
  h.reason = "operator: curl exfiltrating";
  h.dry_run = true;
  h.created_at_ns = static_cast<int64_t>(kWall);
  h.updated_at_ns = static_cast<int64_t>(kWall);
  h.last_error = "pidfd_open: No such process";
  return h;
}

policy::Decision hold_decision() {
  policy::Decision d;
  d.rule = "aws-readers";
  d.trigger = policy::TriggerKind::unexpected_reader;
  d.confidence = policy::Confidence::high;
  d.rule_mode = policy::RuleMode::enforce;
  d.identity_class = "customer-facing";
  d.impact = policy::Impact::high;
  d.matrix_outcome = policy::Outcome::contain;
  d.outcome = policy::Outcome::hold;
  d.action = containment::ActionKind::deny_credential;
  d.ttl = 15min;
  d.gates = {{.gate = "matrix", .tripped = false, .detail = "high x high -> contain"},
             {.gate = "blast_radius", .tripped = true, .detail = "2 other readers of /root/.aws/cred\xff"}};
  d.reason = "unexpected reader of /root/.aws/cred\xff; held: blast radius";
  return d;
}

policy::TriggerInput read_trigger() {
  policy::TriggerInput input;
  input.event = policy::TriggerInput::Event::credential_read;
  input.event_ids = {"ev_01HGOLDEN0000000000000001"};
  input.event_boot_ns = 99'000;
  input.identity = facts_of(odd_names_identity());
  input.credential = policy::CredentialFacts{.id = 3,
                                             .path = "/root/.aws/cred\xff",
                                             .aliases = {"/srv/link\x01"},
                                             .credential_class = catalogue::CredentialClass::aws};
  return input;
}

TEST(RecordGoldens, HeldDecision) {
  const auto decision = hold_decision();
  const auto input = read_trigger();
  const auto handle = held_deny_handle();
  const auto record = records::build_decision_record(decision, input, &handle, "", "web-1", kWall + 10);
  expect_json_golden(record, "decision_hold");
  const auto wire = records::decision_to_wire(decision, input, odd_names_identity(), &handle,
                                              "dc_01HGOLDEN000000000000000H", kWall + 10);
  expect_proto_golden(wire, "decision_hold");
  EXPECT_EQ(records::decision_log_line(decision, &handle, ""),
            "decision hold deny_credential rb_01HGOLDEN00000000000000HD on unit pay\xffments.service cgroup "
            "/system.slice/pay\xffments.service credential /root/.aws/cred\xff [held]: unexpected reader of "
            "/root/.aws/cred\\xff; held: blast radius; "
            "rollback: delete nhg_credential_denies[cgroup 8123, credential 3]");
}

TEST(RecordGoldens, ContainedEgressDecision) {
  policy::Decision d;
  d.rule = "no-exfil";
  d.trigger = policy::TriggerKind::unexpected_egress;
  d.confidence = policy::Confidence::certain;
  d.rule_mode = policy::RuleMode::enforce;
  d.impact = policy::Impact::low;
  d.matrix_outcome = policy::Outcome::contain;
  d.outcome = policy::Outcome::contain;
  d.action = containment::ActionKind::block_egress;
  d.ttl = 10min;
  d.gates = {{.gate = "matrix", .tripped = false, .detail = "certain x low -> contain"},
             {.gate = "rate_limit", .tripped = false, .detail = "0 of 5 in 10m"}};
  d.reason = "tainted process connected to 203.0.113.9:443";
  policy::TriggerInput input;
  input.event = policy::TriggerInput::Event::tainted_egress;
  input.event_ids = {"ev_01HGOLDEN0000000000000004", "ev_01HGOLDEN0000000000000001"};
  input.identity = facts_of(bare_process_identity());
  input.credential = policy::CredentialFacts{
      .id = 4, .path = "/home/app/.netrc", .credential_class = catalogue::CredentialClass::netrc};
  input.destination = policy::DestinationFacts{
      .address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9}, .port = 443, .text = "203.0.113.9:443"};
  const auto handle = active_block_handle();
  const auto record = records::build_decision_record(d, input, &handle, "", "web-1", kWall + 20);
  expect_json_golden(record, "decision_contain_egress");
  const auto wire =
      records::decision_to_wire(d, input, bare_process_identity(), &handle, "dc_01HGOLDEN000000000000000C", kWall + 20);
  expect_proto_golden(wire, "decision_contain_egress");
  EXPECT_EQ(records::decision_log_line(d, &handle, ""),
            "decision contain block_egress rb_01HGOLDEN00000000000000BE on cgroup /user.slice to 203.0.113.9/32:443,"
            "2001:db8::/32 [active]: tainted process connected to 203.0.113.9:443; rollback: delete "
            "nhg_egress_blocks[cgroup 2]");
}

// A dry-run contain over IPv6 that could not be carried out, and an observe with nothing to act on.
TEST(RecordGoldens, DryRunDecisionWithErrorAndObserve) {
  policy::Decision d;
  d.rule = "canary";
  d.trigger = policy::TriggerKind::canary_read;
  d.confidence = policy::Confidence::certain;
  d.rule_mode = policy::RuleMode::enforce;
  d.matrix_outcome = policy::Outcome::contain;
  d.outcome = policy::Outcome::contain;
  d.dry_run = true;
  d.action = containment::ActionKind::kill_process;
  d.gates = {{.gate = "dry_run", .tripped = true, .detail = "rule is dry_run"}};
  d.reason = "canary read";
  policy::TriggerInput input;
  input.event = policy::TriggerInput::Event::tainted_egress;
  input.event_ids = {"ev_01HGOLDEN0000000000000006"};
  input.identity = facts_of(redacted_pod_identity());
  input.destination =
      policy::DestinationFacts{.address = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
                               .port = 53,
                               .text = "[2001:db8::1]:53"};
  const auto handle = irreversible_kill_handle();
  const auto record =
      records::build_decision_record(d, input, &handle, "pidfd_open: No such process", "node-7", kWall + 30);
  expect_json_golden(record, "decision_dry_run_error");
  const auto wire =
      records::decision_to_wire(d, input, redacted_pod_identity(), &handle, "dc_01HGOLDEN000000000000000D", kWall + 30);
  expect_proto_golden(wire, "decision_dry_run_error");
  EXPECT_EQ(records::decision_log_line(d, &handle, "pidfd_open: No such process"),
            "decision contain (dry run) kill_process rb_01HGOLDEN00000000000000KP on pid 31337 session 31300 "
            "[irreversible]: canary "
            "read; not carried out: pidfd_open: No such process");

  policy::Decision observe;
  observe.rule = "learn";
  observe.rule_mode = policy::RuleMode::observe;
  observe.confidence = policy::Confidence::low;
  observe.impact = policy::Impact::low;
  observe.reason = "first read by \x01new reader";
  policy::TriggerInput read = read_trigger();
  read.credential.reset();
  const auto observed = records::build_decision_record(observe, read, nullptr, "", "web-1", kWall + 40);
  expect_json_golden(observed, "decision_observe");
  const auto observed_wire = records::decision_to_wire(observe, read, odd_names_identity(), nullptr,
                                                       "dc_01HGOLDEN000000000000000O", kWall + 40);
  expect_proto_golden(observed_wire, "decision_observe");
  EXPECT_EQ(records::decision_log_line(observe, nullptr, ""), "decision observe: first read by \\x01new reader");
}

TEST(RecordGoldens, RollbackHandles) {
  expect_json_golden(records::handle_to_json(held_deny_handle()), "handle_held");
  expect_proto_golden(records::handle_to_wire(held_deny_handle()), "handle_held");
  expect_json_golden(records::handle_to_json(active_block_handle()), "handle_active");
  expect_proto_golden(records::handle_to_wire(active_block_handle()), "handle_active");
  expect_json_golden(records::handle_to_json(irreversible_kill_handle()), "handle_irreversible");
  expect_proto_golden(records::handle_to_wire(irreversible_kill_handle()), "handle_irreversible");
}

// handle_from_wire is handle_to_wire's inverse for everything the wire carries; boot_id stays the
// ledger's. Strings come back as the wire holds them: escaped, as nhiguardctl prints them.
TEST(RecordGoldens, HandlesReadBackFromTheWire) {
  for (const auto& original : {active_block_handle(), irreversible_kill_handle()}) {
    const v1::RollbackHandle wire = records::handle_to_wire(original);
    const containment::RollbackHandle back = records::handle_from_wire(wire);
    std::string differences;
    google::protobuf::util::MessageDifferencer differ;
    differ.ReportDifferencesToString(&differences);
    EXPECT_TRUE(differ.Compare(wire, records::handle_to_wire(back))) << original.handle << ": " << differences;
    EXPECT_EQ(back.boot_id, "");
    auto without_boot = original;
    without_boot.boot_id.clear();
    EXPECT_EQ(records::handle_to_json(back), records::handle_to_json(without_boot)) << original.handle;
    EXPECT_EQ(back.expires_at_ns.has_value(), original.expires_at_ns.has_value());
    EXPECT_EQ(back.expires_at_boot_ns, original.expires_at_boot_ns);
  }

  const containment::RollbackHandle odd = records::handle_from_wire(records::handle_to_wire(held_deny_handle()));
  EXPECT_EQ(odd.target.unit, "pay\\xffments.service");
  EXPECT_EQ(odd.target.cgroup_path, "/system.slice/pay\\xffments.service");
  EXPECT_EQ(odd.target.credential_path, "/root/.aws/cred\\xff");

  v1::RollbackHandle newer;
  newer.set_action(static_cast<v1::ActionKind>(42));
  newer.set_state(static_cast<v1::ActionState>(42));
  const containment::RollbackHandle unknown = records::handle_from_wire(newer);
  EXPECT_EQ(containment::to_string(unknown.action), "unknown");
  EXPECT_EQ(containment::to_string(unknown.state), "unknown");
}

// --- the control socket's audit ------------------------------------------------------------------

// A peer that names itself with bytes that are not UTF-8, and typed a cgroup path with one.
ledger::ControlPeer odd_peer() {
  return ledger::ControlPeer{.pid = 7001,
                             .uid = 0,
                             .gid = 0,
                             .start_time_ticks = 123456,
                             .exe =
                                 "/usr/bin/nhiguard\xff"
                                 "ctl",
                             .comm =
                                 "nhg\x1b"
                                 "ctl",
                             .cgroup = "/user.slice/user-0.slice/session-\xfe.scope"};
}

TEST(RecordGoldens, ControlAudit) {
  const ledger::AuditEntry entry{.seq = 12,
                                 .at_ns = static_cast<int64_t>(kWall),
                                 .method = "contain",
                                 .handle = "rb_01HGOLDEN00000000000000BE",
                                 .detail = "block_egress cgroup /system.slice/pay\xffments.service",
                                 .outcome = "refused",
                                 .message = "the peer's own cgroup /user.slice/\x01x",
                                 .peer = odd_peer()};
  expect_json_golden(records::audit_to_json(entry), "control_audit");
  const auto report = reporter::control_audit_report(entry);
  EXPECT_FALSE(report.droppable);
  EXPECT_EQ(report.type, "control_audit");
  v1::Report body;
  ASSERT_TRUE(body.ParseFromString(report.payload));
  expect_proto_golden(body, "control_audit");

  // nhiguardctl reads a peer back from the wire as it was sent: escaped.
  const ledger::ControlPeer back = records::peer_from_wire(body.control_audit().peer());
  EXPECT_EQ(back.pid, 7001);
  EXPECT_EQ(back.start_time_ticks, 123456u);
  EXPECT_EQ(back.exe, "/usr/bin/nhiguard\\xffctl");
  EXPECT_EQ(back.comm, "nhg\\x1bctl");
  EXPECT_EQ(back.cgroup, "/user.slice/user-0.slice/session-\\xfe.scope");
}

// An action's change of state made through nhiguardctl carries the peer that asked.
TEST(RecordGoldens, ActionUpdateWithPeer) {
  const ledger::HistoryEntry change{.seq = 31,
                                    .handle = "rb_01HGOLDEN00000000000000BE",
                                    .from_state = containment::ActionState::active,
                                    .to_state = containment::ActionState::rolled_back,
                                    .at_ns = static_cast<int64_t>(kWall) + 99,
                                    .actor = "nhiguardctl",
                                    .note = "false positive",
                                    .peer = odd_peer()};
  const auto report = reporter::action_update_report(active_block_handle(), change);
  v1::Report body;
  ASSERT_TRUE(body.ParseFromString(report.payload));
  expect_proto_golden(body, "action_update_with_peer");
}

}  // namespace
}  // namespace nhiguard
