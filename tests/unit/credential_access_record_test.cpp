// The credential_access JSON line: every field the issue names, escaping of odd bytes, and the
// absence of anything but metadata about the credential.
#include <gtest/gtest.h>

#include "records/credential_access_record.h"

using namespace nhiguard;

namespace {

// The line as the event log writes it: rendered from the record the outbox sends.
nlohmann::json build_credential_access_record(const events::FileOpenEvent& event,
                                              const catalogue::ResolvedCredential& credential,
                                              const identity::ResolvedIdentity& identity, std::string_view host,
                                              uint64_t wall_time_ns) {
  return records::credential_access_line(
      records::credential_access_to_wire(event, credential, identity, static_cast<int64_t>(wall_time_ns), "ev_1"),
      event, host);
}

events::FileOpenEvent open_event() {
  events::FileOpenEvent e;
  e.by_inode = true;
  e.ts_ns = 100;
  e.process.tgid = 4242;
  e.process.tid = 4243;
  e.process.ppid = 1;
  e.process.uid = 1001;
  e.process.start_ns = 987654321;
  e.process.cgroup_id = 555;
  e.process.comm = "python3";
  e.dev = (254ull << 20) | 3;
  e.ino = 131;
  e.credential_id = 9;
  e.f_mode = 0x1;
  e.fd = 3;
  e.requested_path = std::string("../odd\nname\xff", 12);
  return e;
}

identity::ResolvedIdentity resolved() {
  identity::ResolvedIdentity id;
  id.resolved_from_proc = true;
  id.process.pid = 4242;
  id.process.tid = 4243;
  id.process.start_ns = 987654321;
  id.process.uid = 1001;
  id.process.comm = "python3";
  id.process.exe = "/usr/bin/python3.11";
  id.process.exe_sha256 = std::string(64, 'a');
  id.process.cmdline = {"python3", "steal.py", "--to", "x\ty"};
  id.process.session_id = 77;
  id.process.ancestry = {{.pid = 1, .ppid = 0, .start_time_ticks = 0, .comm = "init", .exe = "/sbin/init"}};
  id.workload.kind = identity::WorkloadKind::systemd_service;
  id.workload.name = "payments.service";
  id.workload.id = "payments.service";
  id.workload.cgroup_path = "/system.slice/payments.service";
  id.workload.cgroup_id = 555;
  id.workload.uri = "spiffe://td/host/h/systemd/payments.service";
  return id;
}

TEST(CredentialAccessRecord, CarriesEveryRequiredField) {
  catalogue::ResolvedCredential credential{.credential_id = 9,
                                           .credential_class = catalogue::CredentialClass::aws,
                                           .path = "/home/app/.aws/credentials",
                                           .dev = (254ull << 20) | 3,
                                           .ino = 131};
  auto j = build_credential_access_record(open_event(), credential, resolved(), "web-1", 1'700'000'000'123456789ull);
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(j["type"], "credential_access");
  EXPECT_EQ(j["host"], "web-1");
  EXPECT_EQ(j["credential"]["class"], "aws");
  EXPECT_EQ(j["credential"]["path"], "/home/app/.aws/credentials");
  EXPECT_EQ(j["credential"]["inode"], 131);
  EXPECT_EQ(j["credential"]["device"], "254:3");
  EXPECT_EQ(j["credential"]["match"], "inode");
  EXPECT_EQ(j["access"], "read");
  EXPECT_EQ(j["process"]["pid"], 4242);
  EXPECT_EQ(j["process"]["start_time"], 987654321);
  EXPECT_EQ(j["process"]["exe"], "/usr/bin/python3.11");
  EXPECT_EQ(j["process"]["uid"], 1001);
  EXPECT_EQ(j["process"]["cmdline"][3], "x\\x09y");
  EXPECT_EQ(j["process"]["ancestry"][0]["exe"], "/sbin/init");
  EXPECT_EQ(j["workload"]["kind"], "systemd");
  EXPECT_EQ(j["workload"]["name"], "payments.service");
  EXPECT_EQ(j["workload"]["id"], "payments.service");
  EXPECT_EQ(j["requested_path"], "../odd\\x0aname\\xff");
  // Serialises without throwing, as one line.
  const std::string line = j.dump();
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(CredentialAccessRecord, WriteAndReadWriteAccess) {
  catalogue::ResolvedCredential credential{.credential_id = 1, .path = "/x"};
  auto event = open_event();
  event.f_mode = 0x2;
  EXPECT_EQ(build_credential_access_record(event, credential, resolved(), "h", 0)["access"], "write");
  event.f_mode = 0x3;
  EXPECT_EQ(build_credential_access_record(event, credential, resolved(), "h", 0)["access"], "read_write");
}

// A record that stands for repeat opens the kernel coalesced says how many; a first read does not
// carry the field at all.
TEST(CredentialAccessRecord, CoalescedRepeatOpensAreCounted) {
  catalogue::ResolvedCredential credential{.credential_id = 1, .path = "/x"};
  auto event = open_event();
  EXPECT_FALSE(build_credential_access_record(event, credential, resolved(), "h", 0).contains("coalesced_opens"));
  event.coalesced_opens = 4096;
  event.cmdline_omitted = true;
  EXPECT_EQ(build_credential_access_record(event, credential, resolved(), "h", 0)["coalesced_opens"], 4096);
  EXPECT_FALSE(build_credential_access_record(event, credential, resolved(), "h", 0).contains("repeat_summary"));
  event.repeat_summary = true;
  event.syscall = events::OpenSyscall::none;
  auto summary = build_credential_access_record(event, credential, resolved(), "h", 0);
  EXPECT_EQ(summary["repeat_summary"], true);
  EXPECT_EQ(summary["syscall"], "none");
}

TEST(CredentialAccessRecord, KernelOnlyIdentityIsMarked) {
  auto id = resolved();
  id.resolved_from_proc = false;
  id.notes = {"pid 4242 gone"};
  catalogue::ResolvedCredential credential{.credential_id = 1, .path = "/x"};
  auto event = open_event();
  event.by_inode = false;
  auto j = build_credential_access_record(event, credential, id, "h", 0);
  EXPECT_EQ(j["process"]["resolved_from_proc"], false);
  EXPECT_EQ(j["process"]["notes"][0], "pid 4242 gone");
  EXPECT_EQ(j["credential"]["match"], "name");
}

}  // namespace
