// The agent's facts as protocol messages: every field of a credential access, an egress event and an
// action update lands in its proto field, kernel strings are escaped as in the JSON lines, what is
// low value is marked droppable, and stored rows (including drop markers and damaged payloads) turn
// into the Reports sent on the stream.
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "records/credential_access_record.h"
#include "records/egress_record.h"
#include "reporter/wire_records.h"

namespace nhiguard::reporter {
namespace {

identity::ResolvedIdentity sample_identity() {
  identity::ResolvedIdentity id;
  id.workload.kind = identity::WorkloadKind::systemd_service;
  id.workload.name = "payments.service";
  id.workload.id = "payments.service";
  id.workload.unit = "payments.service";
  id.workload.cgroup_path = "/system.slice/payments.service";
  id.workload.cgroup_id = 8123;
  id.workload.uri = "spiffe://nhiguard.local/host/web-1/systemd/payments.service";
  id.process.pid = 4048;
  id.process.tid = 4049;
  id.process.ppid = 4047;
  id.process.start_ns = 4'638'473'412;
  id.process.uid = 1000;
  id.process.euid = 1001;
  id.process.gid = 1002;
  id.process.comm = "cat";
  id.process.exe = "/usr/bin/c\x01t";  // a control byte: escaped as in the JSON lines
  id.process.exe_sha256 = "ab12";
  id.process.cmdline = {"cat", ".aws/credentials"};
  id.process.session_id = 311;
  id.process.audit_session_id = 7;
  id.process.ancestry = {{.pid = 4047, .ppid = 1, .start_time_ticks = 5, .comm = "bash", .exe = "/usr/bin/bash"}};
  id.resolved_from_proc = true;
  id.notes = {"exe hashed"};
  return id;
}

v1::Report body_of(const Report& report) {
  v1::Report body;
  EXPECT_TRUE(body.ParseFromString(report.payload));
  EXPECT_EQ(body.sequence(), 0u) << "the sequence is set when sending, not stored";
  return body;
}

TEST(WireRecords, CredentialAccessCarriesEveryFieldAndIsLowValueUnlessDenied) {
  events::FileOpenEvent event;
  event.by_inode = true;
  event.ts_ns = 99'000;
  event.process.tgid = 4048;
  event.dev = (254ull << 20) | 3;
  event.ino = 10953933;
  event.coalesced_opens = 12;
  event.open_flags = 0x8000;
  event.f_mode = 0x1;
  event.syscall = events::OpenSyscall::openat2;
  event.requested_path = ".aws/credentials";
  catalogue::ResolvedCredential credential{.credential_id = 3,
                                           .credential_class = catalogue::CredentialClass::aws,
                                           .path = "/root/.aws/credentials",
                                           .aliases = {"/srv/link"},
                                           .owner = "payments.service"};
  const Report report = credential_access_report(
      records::credential_access_to_wire(event, credential, sample_identity(), 1'700'000'000'000'000'000, "ev_1"),
      event.ts_ns);
  EXPECT_EQ(report.kind, ReportKind::event);
  EXPECT_EQ(report.type, "credential_access");
  EXPECT_TRUE(report.droppable);
  EXPECT_EQ(report.event_boot_ns, 99'000u);
  EXPECT_EQ(report.event_wall_ns, 1'700'000'000'000'000'000);

  const auto body = body_of(report);
  ASSERT_TRUE(body.has_credential_access());
  const auto& e = body.credential_access();
  EXPECT_EQ(e.event_id(), "ev_1");
  EXPECT_EQ(e.time_unix_ns(), 1'700'000'000'000'000'000);
  EXPECT_EQ(e.credential().id(), 3u);
  EXPECT_EQ(e.credential().credential_class(), v1::CREDENTIAL_CLASS_AWS);
  EXPECT_EQ(e.credential().path(), "/root/.aws/credentials");
  EXPECT_EQ(e.credential().inode(), 10953933u);
  EXPECT_EQ(e.credential().device_major(), 254u);
  EXPECT_EQ(e.credential().device_minor(), 3u);
  EXPECT_EQ(e.credential().match(), "inode");
  ASSERT_EQ(e.credential().aliases_size(), 1);
  EXPECT_EQ(e.credential().owner(), "payments.service");
  EXPECT_EQ(e.access(), "read");
  EXPECT_EQ(e.open_flags(), 0x8000u);
  EXPECT_EQ(e.syscall(), "openat2");
  EXPECT_EQ(e.requested_path(), ".aws/credentials");
  EXPECT_FALSE(e.denied());
  EXPECT_EQ(e.coalesced_opens(), 12u);
  EXPECT_FALSE(e.repeat_summary());
  EXPECT_EQ(e.process().pid(), 4048u);
  EXPECT_EQ(e.process().tid(), 4049u);
  EXPECT_EQ(e.process().start_time_boot_ns(), 4'638'473'412u);
  EXPECT_EQ(e.process().euid(), 1001u);
  EXPECT_EQ(e.process().exe(), "/usr/bin/c\\x01t");
  EXPECT_EQ(e.process().audit_session_id(), 7u);
  EXPECT_FALSE(e.process().has_login_uid());
  ASSERT_EQ(e.process().ancestry_size(), 1);
  EXPECT_EQ(e.process().ancestry(0).exe(), "/usr/bin/bash");
  EXPECT_EQ(e.process().cmdline(1), ".aws/credentials");
  EXPECT_EQ(e.workload().kind(), v1::WORKLOAD_KIND_SYSTEMD);
  EXPECT_EQ(e.workload().cgroup_id(), 8123u);
  EXPECT_EQ(e.workload().uri(), "spiffe://nhiguard.local/host/web-1/systemd/payments.service");

  event.denied = true;
  event.f_mode = 0x3;
  const Report denied = credential_access_report(
      records::credential_access_to_wire(event, credential, sample_identity(), 1, "ev_2"), event.ts_ns);
  EXPECT_FALSE(denied.droppable) << "a denied access is evidence of containment working";
  EXPECT_EQ(body_of(denied).credential_access().access(), "read_write");
}

TEST(WireRecords, EgressCarriesDestinationAndTaint) {
  events::EgressEvent event;
  event.ts_ns = 5;
  event.process.tgid = 4048;
  event.address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 9};
  event.port = 443;
  event.family = AF_INET;
  event.protocol = IPPROTO_TCP;
  event.hook = events::EgressHook::connect4;
  event.taint_credential_id = 3;
  event.taint_source_tgid = 4047;
  catalogue::ResolvedCredential taint{
      .credential_id = 3, .credential_class = catalogue::CredentialClass::gcp, .path = "/etc/gcp.json"};
  const Report allowed =
      egress_report(records::egress_to_wire(event, &taint, sample_identity(), 10, "ev_3"), event.ts_ns);
  EXPECT_TRUE(allowed.droppable);
  EXPECT_EQ(allowed.type, "egress");
  const auto e = body_of(allowed).egress();
  EXPECT_EQ(e.destination().address(), "203.0.113.9");
  EXPECT_EQ(e.destination().port(), 443u);
  EXPECT_EQ(e.destination().family(), v1::ADDRESS_FAMILY_IPV4);
  EXPECT_EQ(e.destination().protocol(), v1::TRANSPORT_PROTOCOL_TCP);
  EXPECT_EQ(e.hook(), "connect4");
  ASSERT_TRUE(e.has_tainted_by());
  EXPECT_EQ(e.tainted_by().credential_class(), v1::CREDENTIAL_CLASS_GCP);
  EXPECT_EQ(e.tainted_by().path(), "/etc/gcp.json");
  EXPECT_TRUE(e.tainted_by().inherited());

  event.denied = true;
  event.rule_id = 77;
  event.taint_credential_id = 0;
  const Report denied =
      egress_report(records::egress_to_wire(event, nullptr, sample_identity(), 10, "ev_4"), event.ts_ns);
  EXPECT_FALSE(denied.droppable);
  const auto d = body_of(denied).egress();
  EXPECT_TRUE(d.denied());
  EXPECT_EQ(d.block_rule_id(), 77u);
  EXPECT_FALSE(d.has_tainted_by());
}

TEST(WireRecords, ActionUpdateShowsTheStateOfTheChangeAndItsCommand) {
  containment::RollbackHandle h;
  h.handle = "rb_01ARYZ6S41TSV4RRFFQ69G5FAV";
  h.action = containment::ActionKind::freeze;
  h.state = containment::ActionState::rolled_back;  // as stored now
  h.target.cgroup_path = "/system.slice/payments.service";
  h.target.cgroup_id = 8123;
  h.rule = "manual";
  h.reason = "token read by curl";
  h.created_at_ns = 100;
  h.expires_at_ns = 900;
  h.updated_at_ns = 500;
  ledger::HistoryEntry recorded{.seq = 7,
                                .handle = h.handle,
                                .from_state = std::nullopt,
                                .to_state = containment::ActionState::active,
                                .at_ns = 100,
                                .actor = "nhiguardctl",
                                .note = ""};
  const Report first = action_update_report(h, recorded);
  EXPECT_FALSE(first.droppable);
  EXPECT_EQ(first.kind, ReportKind::action_update);
  auto u = body_of(first).action_update();
  EXPECT_EQ(u.action().handle(), h.handle);
  EXPECT_EQ(u.action().state(), v1::ACTION_STATE_ACTIVE) << "the state at this change, not the latest";
  EXPECT_EQ(u.action().updated_at_unix_ns(), 100);
  EXPECT_EQ(u.action().action(), v1::ACTION_KIND_FREEZE);
  EXPECT_EQ(u.action().expires_at_unix_ns(), 900);
  EXPECT_EQ(u.action().target().description(), h.target.describe());
  EXPECT_FALSE(u.change().has_from_state());
  EXPECT_EQ(u.change().ledger_sequence(), 7);
  EXPECT_EQ(u.change().actor(), "nhiguardctl");
  EXPECT_EQ(u.change().command_id(), "");

  ledger::HistoryEntry rolled{.seq = 9,
                              .handle = h.handle,
                              .from_state = containment::ActionState::active,
                              .to_state = containment::ActionState::rolled_back,
                              .at_ns = 500,
                              .actor = "collector",
                              .note = collector_command_note("01JCMD0000000000000000000A", "false positive")};
  u = body_of(action_update_report(h, rolled)).action_update();
  EXPECT_EQ(u.change().from_state(), v1::ACTION_STATE_ACTIVE);
  EXPECT_EQ(u.change().to_state(), v1::ACTION_STATE_ROLLED_BACK);
  EXPECT_EQ(u.change().command_id(), "01JCMD0000000000000000000A");
  EXPECT_EQ(u.change().note(), "collector command 01JCMD0000000000000000000A: false positive");
}

TEST(WireRecords, CommandNotesRoundTrip) {
  EXPECT_EQ(command_id_from_note(collector_command_note("X1", "")), "X1");
  EXPECT_EQ(command_id_from_note(collector_command_note("X1", "why: because")), "X1");
  EXPECT_EQ(command_id_from_note("expired at its TTL"), "");
}

TEST(WireRecords, ModesMapBothWays) {
  EXPECT_EQ(mode_to_wire(config::AgentMode::observe), v1::MODE_OBSERVE);
  EXPECT_EQ(mode_to_wire(config::AgentMode::policy), v1::MODE_POLICY);
  EXPECT_EQ(mode_from_wire(v1::MODE_OBSERVE), config::AgentMode::observe);
  EXPECT_EQ(mode_from_wire(v1::MODE_POLICY), config::AgentMode::policy);
  EXPECT_EQ(mode_from_wire(v1::MODE_UNSPECIFIED), std::nullopt);
  EXPECT_EQ(mode_from_wire(static_cast<v1::Mode>(42)), std::nullopt);
}

TEST(WireRecords, StoredRowsBecomeSequencedReports) {
  StoredReport stored;
  stored.seq = 41;
  stored.seq_end = 41;
  stored.stored_wall_ns = 1234;
  stored.report = alert_report("ringbuf_drops", "12 kernel events dropped", 12);
  auto wire = to_wire(stored);
  ASSERT_TRUE(wire) << wire.error().message;
  EXPECT_EQ(wire->sequence(), 41u);
  EXPECT_EQ(wire->created_at_unix_ns(), 1234);
  EXPECT_EQ(wire->alert().kind(), "ringbuf_drops");
  EXPECT_EQ(wire->alert().count(), 12u);

  StoredReport marker;
  marker.seq = 50;
  marker.seq_end = 59;
  marker.report.kind = ReportKind::dropped;
  const std::pair<std::string, uint64_t> counts[] = {{"credential_access", 4}, {"egress", 6}};
  marker.report.payload = drop_marker_payload(50, 59, counts, 1, 2);
  wire = to_wire(marker);
  ASSERT_TRUE(wire) << wire.error().message;
  EXPECT_EQ(wire->sequence(), 59u) << "sent under the last sequence it covers";
  ASSERT_TRUE(wire->has_reports_dropped());
  ASSERT_EQ(wire->reports_dropped().ranges_size(), 1);
  EXPECT_EQ(wire->reports_dropped().ranges(0).first(), 50u);
  EXPECT_EQ(wire->reports_dropped().ranges(0).last(), 59u);
  EXPECT_EQ(wire->reports_dropped().count(), 10u);
  EXPECT_EQ(wire->reports_dropped().reason(), "outbox full: dropped 4 credential_access, 6 egress");

  StoredReport damaged;
  damaged.seq = 60;
  damaged.seq_end = 60;
  damaged.report.type = "egress";
  damaged.report.payload = "\xff\xff\xff garbage";
  auto refused = to_wire(damaged);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("outbox report 60 (egress)"), std::string::npos) << refused.error().message;
}

// A control-socket peer names its own exe, comm and cgroup (a binary called "\xff\xfe", a cgroup the
// user made): they are escaped as process records are, or the audit report would not parse at the
// collector (proto3 strings must be UTF-8) and the audit of that command would be lost. So is what
// the peer sent: the cgroup path it typed shows in the detail and the message.
TEST(WireRecords, ControlAuditEscapesWhatThePeerNamedItself) {
  ledger::AuditEntry entry;
  entry.seq = 3;
  entry.at_ns = 1'000;
  entry.method = "rollback";
  entry.handle = "rb_01ARYZ6S41TSV4RRFFQ69G5FAV";
  entry.detail = "block_egress cgroup /srv/\xff";  // the path as the peer typed it
  entry.outcome = "refused";
  entry.message = "no cgroup /srv/\xff";
  entry.peer = {.pid = 77,
                .uid = 1000,
                .gid = 1000,
                .start_time_ticks = 9,
                .exe =
                    "/tmp/\xff\xfe"
                    "evil",
                .comm = "ev\x01l",
                .cgroup = "/user.slice/\xc3("};
  const Report report = control_audit_report(entry);
  EXPECT_EQ(report.kind, ReportKind::control_audit);
  EXPECT_FALSE(report.droppable) << "an audit record is never dropped";
  const v1::Report body = body_of(report);  // parses: every string is UTF-8
  ASSERT_TRUE(body.has_control_audit());
  const auto& peer = body.control_audit().peer();
  EXPECT_EQ(peer.exe(), "/tmp/\\xff\\xfeevil");
  EXPECT_EQ(peer.comm(), "ev\\x01l");
  EXPECT_EQ(peer.cgroup(), "/user.slice/\\xc3(");
  EXPECT_EQ(peer.pid(), 77);
  EXPECT_EQ(body.control_audit().outcome(), "refused");
  EXPECT_EQ(body.control_audit().detail(), "block_egress cgroup /srv/\\xff");
  EXPECT_EQ(body.control_audit().message(), "no cgroup /srv/\\xff");
}

}  // namespace
}  // namespace nhiguard::reporter
