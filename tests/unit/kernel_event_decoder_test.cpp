// decode_kernel_event against golden records captured from the real sensor (tests/unit/fixtures/
// events/*.bin, one per record type; see tests/unit/fixtures/events/README.md) and against damaged
// copies of them.
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "nhiguard_abi.h"

using namespace nhiguard::events;

namespace {

std::vector<std::byte> golden(const std::string& name) {
  std::ifstream in(std::string(NHIGUARD_TEST_FIXTURES) + "/events/" + name, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(chars.empty()) << name;
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

TEST(KernelEventDecoder, CredentialOpen) {
  auto event = decode_kernel_event(golden("credential_open.bin"));
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& open = std::get<FileOpenEvent>(*event);
  EXPECT_TRUE(open.by_inode);
  EXPECT_EQ(open.credential_id, 42u);
  EXPECT_EQ(open.process.tgid, 27631u);
  EXPECT_EQ(open.process.tid, 27631u);
  EXPECT_EQ(open.process.ppid, 27630u);
  EXPECT_EQ(open.process.uid, 0u);
  EXPECT_EQ(open.process.audit_session_id, 0xffffffffu);
  EXPECT_EQ(open.process.comm, "golden-reader");
  EXPECT_EQ(open.process.cgroup_id, 1u);
  EXPECT_EQ(open.dev, 0x0fe00000u);
  EXPECT_EQ(open.ino, 10993672u);
  EXPECT_EQ(open.fd, 3);
  EXPECT_EQ(open.open_flags, 0u);
  EXPECT_TRUE(open.readable());
  EXPECT_FALSE(open.writable());
  EXPECT_EQ(open.syscall, OpenSyscall::openat);
  EXPECT_EQ(open.name, "credentials");
  EXPECT_EQ(open.parent, ".aws");
  EXPECT_EQ(open.requested_path, ".aws/credentials");
  EXPECT_FALSE(open.path_truncated);
  EXPECT_FALSE(open.path_missing);
  EXPECT_GT(open.ts_ns, open.process.start_ns);
  EXPECT_EQ(open.cmdline, (std::vector<std::string>{"/tmp/golden/golden-reader", ".aws/credentials"}));
  EXPECT_FALSE(open.cmdline_truncated);
  EXPECT_FALSE(open.cmdline_missing);
}

TEST(KernelEventDecoder, CandidateOpen) {
  auto event = decode_kernel_event(golden("candidate_open.bin"));
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& open = std::get<FileOpenEvent>(*event);
  EXPECT_FALSE(open.by_inode);
  EXPECT_EQ(open.credential_id, 0u);
  EXPECT_EQ(open.name, "id_ed25519");
  EXPECT_EQ(open.parent, ".ssh");
  EXPECT_TRUE(open.writable());
  EXPECT_NE(open.open_flags & 0100u, 0u);  // O_CREAT from the shell's redirect
}

TEST(KernelEventDecoder, ProcessLifecycle) {
  auto exec = decode_kernel_event(golden("process_exec.bin"));
  ASSERT_TRUE(exec.has_value()) << exec.error().message;
  EXPECT_EQ(std::get<ExecEvent>(*exec).filename, "/tmp/golden/golden-reader");
  EXPECT_EQ(std::get<ExecEvent>(*exec).process.comm, "golden-reader");

  auto fork = decode_kernel_event(golden("process_fork.bin"));
  ASSERT_TRUE(fork.has_value()) << fork.error().message;
  const auto& f = std::get<ForkEvent>(*fork);
  EXPECT_EQ(f.parent.comm, "golden-forker");
  EXPECT_NE(f.child_tgid, f.parent.tgid);
  EXPECT_GT(f.child_start_ns, f.parent.start_ns);

  auto exit = decode_kernel_event(golden("process_exit.bin"));
  ASSERT_TRUE(exit.has_value()) << exit.error().message;
  EXPECT_EQ(std::get<ExitEvent>(*exit).process.comm, "golden-reader");
  EXPECT_EQ(std::get<ExitEvent>(*exit).exit_code, 0);
}

TEST(KernelEventDecoder, RejectsShortRecords) {
  auto bytes = golden("credential_open.bin");
  for (size_t len : {size_t{0}, size_t{7}, size_t{16}, bytes.size() - 1}) {
    auto event = decode_kernel_event(std::span(bytes.data(), len));
    EXPECT_FALSE(event.has_value()) << "length " << len;
  }
}

TEST(KernelEventDecoder, RejectsMismatchedSizeVersionAndType) {
  auto bytes = golden("process_exit.bin");
  nhg_event_header header;
  std::memcpy(&header, bytes.data(), sizeof(header));

  auto bad_size = bytes;
  nhg_event_header h = header;
  h.size = 96;
  std::memcpy(bad_size.data(), &h, sizeof(h));
  EXPECT_FALSE(decode_kernel_event(bad_size).has_value());

  auto bad_version = bytes;
  h = header;
  h.version = NHG_ABI_VERSION + 1;
  std::memcpy(bad_version.data(), &h, sizeof(h));
  auto version_error = decode_kernel_event(bad_version);
  ASSERT_FALSE(version_error.has_value());
  EXPECT_NE(version_error.error().message.find("ABI version"), std::string::npos);

  auto bad_type = bytes;
  h = header;
  h.type = 200;
  std::memcpy(bad_type.data(), &h, sizeof(h));
  auto type_error = decode_kernel_event(bad_type);
  ASSERT_FALSE(type_error.has_value());
  EXPECT_NE(type_error.error().message.find("unknown type 200"), std::string::npos);
}

TEST(KernelEventDecoder, UnterminatedStringsStayInsideTheirField) {
  auto bytes = golden("credential_open.bin");
  // Fill name, parent and requested_path with non-NUL bytes: the decoder must stop at each field.
  std::memset(bytes.data() + offsetof(nhg_file_event, name), 'A', NHG_NAME_LEN);
  std::memset(bytes.data() + offsetof(nhg_file_event, parent), 'B', NHG_NAME_LEN);
  std::memset(bytes.data() + offsetof(nhg_file_event, requested_path), 'C', NHG_PATH_LEN);
  auto event = decode_kernel_event(bytes);
  ASSERT_TRUE(event.has_value());
  const auto& open = std::get<FileOpenEvent>(*event);
  EXPECT_EQ(open.name, std::string(NHG_NAME_LEN, 'A'));
  EXPECT_EQ(open.parent, std::string(NHG_NAME_LEN, 'B'));
  EXPECT_EQ(open.requested_path, std::string(NHG_PATH_LEN, 'C'));
}

TEST(KernelEventDecoder, RejectsCmdlineLengthPastItsField) {
  auto bytes = golden("credential_open.bin");
  const uint16_t too_long = NHG_CMDLINE_LEN + 1;
  std::memcpy(bytes.data() + offsetof(nhg_file_event, cmdline_len), &too_long, sizeof(too_long));
  EXPECT_FALSE(decode_kernel_event(bytes).has_value());
}

TEST(KernelEventDecoder, RejectsUnknownSyscall) {
  auto bytes = golden("credential_open.bin");
  const uint16_t bogus = 77;
  std::memcpy(bytes.data() + offsetof(nhg_file_event, syscall), &bogus, sizeof(bogus));
  EXPECT_FALSE(decode_kernel_event(bytes).has_value());
}

// The read path's records (bpf/readpath.bpf.h) are file records with their own syscall ids and the
// shared-fd-table flag; every id of the range decodes to its name.
TEST(KernelEventDecoder, ReadPathSyscallsAndTheSharedFdTableFlag) {
  auto bytes = golden("credential_open.bin");
  const uint16_t read = NHG_SYS_READ;
  const uint16_t flags = NHG_FILE_DENIED | NHG_FILE_SHARED_FD_TABLE | NHG_FILE_PATH_MISSING;
  std::memcpy(bytes.data() + offsetof(nhg_file_event, syscall), &read, sizeof(read));
  std::memcpy(bytes.data() + offsetof(nhg_file_event, flags), &flags, sizeof(flags));
  auto event = decode_kernel_event(bytes);
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& open = std::get<FileOpenEvent>(*event);
  EXPECT_EQ(open.syscall, OpenSyscall::read);
  EXPECT_TRUE(open.denied);
  EXPECT_TRUE(open.shared_fd_table);
  for (uint16_t id = NHG_SYS_IO_URING_OPENAT; id <= NHG_SYS_IO_URING_RING; ++id) {
    std::memcpy(bytes.data() + offsetof(nhg_file_event, syscall), &id, sizeof(id));
    auto decoded = decode_kernel_event(bytes);
    ASSERT_TRUE(decoded.has_value()) << id << ": " << decoded.error().message;
    EXPECT_NE(nhiguard::events::to_string(std::get<FileOpenEvent>(*decoded).syscall), "unknown") << id;
  }
  const uint16_t past = NHG_SYS_IO_URING_RING + 1;
  std::memcpy(bytes.data() + offsetof(nhg_file_event, syscall), &past, sizeof(past));
  EXPECT_FALSE(decode_kernel_event(bytes).has_value());
}

// A repeat summary (written at a process's exit) has no syscall; only a summary may say so, and
// only of a credential.
TEST(KernelEventDecoder, RepeatSummaryHasNoSyscallAndNothingElseMay) {
  auto bytes = golden("credential_open.bin");
  const uint16_t none = 0;
  const uint16_t summary_flags = NHG_FILE_REPEAT_SUMMARY | NHG_FILE_PATH_MISSING | NHG_FILE_CMDLINE_OMITTED;
  const uint16_t coalesced = 9;
  std::memcpy(bytes.data() + offsetof(nhg_file_event, syscall), &none, sizeof(none));
  EXPECT_FALSE(decode_kernel_event(bytes).has_value()) << "syscall 0 without the summary flag";

  std::memcpy(bytes.data() + offsetof(nhg_file_event, flags), &summary_flags, sizeof(summary_flags));
  std::memcpy(bytes.data() + offsetof(nhg_file_event, coalesced_opens), &coalesced, sizeof(coalesced));
  auto event = decode_kernel_event(bytes);
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& open = std::get<FileOpenEvent>(*event);
  EXPECT_TRUE(open.repeat_summary);
  EXPECT_EQ(open.syscall, OpenSyscall::none);
  EXPECT_EQ(open.coalesced_opens, 9u);

  auto candidate = golden("candidate_open.bin");
  std::memcpy(candidate.data() + offsetof(nhg_file_event, syscall), &none, sizeof(none));
  std::memcpy(candidate.data() + offsetof(nhg_file_event, flags), &summary_flags, sizeof(summary_flags));
  EXPECT_FALSE(decode_kernel_event(candidate).has_value()) << "a candidate cannot be a repeat summary";
}

}  // namespace

namespace {

template <typename Raw>
std::vector<std::byte> bytes_of(const Raw& raw) {
  std::vector<std::byte> bytes(sizeof(raw));
  std::memcpy(bytes.data(), &raw, sizeof(raw));
  return bytes;
}

template <typename Raw>
Raw with_header(nhg_event_type type) {
  Raw raw{};
  raw.hdr = {
      .type = static_cast<uint16_t>(type), .size = sizeof(Raw), .version = NHG_ABI_VERSION, .cpu = 1, .ts_ns = 42};
  raw.proc.tgid = 500;
  raw.proc.start_ns = 9;
  std::memcpy(raw.proc.comm, "gdb", 3);
  return raw;
}

TEST(KernelEventDecoder, MemoryAccess) {
  auto raw = with_header<nhg_memory_access_event>(NHG_EVENT_MEMORY_ACCESS);
  raw.target_tgid = 600;
  raw.target_tid = 601;
  raw.target_start_ns = 7;
  raw.taint_credential_id = 3;
  raw.taint_source_tgid = 599;
  raw.tainted_at_ns = 40;
  raw.how = NHG_MEM_PTRACE_SEIZE;
  raw.result = -1;
  auto event = decode_kernel_event(bytes_of(raw));
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& access = std::get<MemoryAccessEvent>(*event);
  EXPECT_EQ(access.ts_ns, 42u);
  EXPECT_EQ(access.process.tgid, 500u);
  EXPECT_EQ(access.process.comm, "gdb");
  EXPECT_EQ(access.target_tgid, 600u);
  EXPECT_EQ(access.target_tid, 601u);
  EXPECT_EQ(access.target_start_ns, 7u);
  EXPECT_EQ(access.taint_credential_id, 3u);
  EXPECT_EQ(access.taint_source_tgid, 599u);
  EXPECT_EQ(access.tainted_at_ns, 40u);
  EXPECT_EQ(access.how, MemoryAccessHow::ptrace_seize);
  EXPECT_EQ(to_string(access.how), "ptrace_seize");
  EXPECT_EQ(access.result, -1);

  raw.how = 9;
  EXPECT_FALSE(decode_kernel_event(bytes_of(raw)).has_value()) << "an unknown way in is refused";
  raw.how = NHG_MEM_PROC_MEM;
  raw.target_tgid = 0;
  EXPECT_FALSE(decode_kernel_event(bytes_of(raw)).has_value()) << "no target";
  raw.target_tgid = 600;
  auto short_record = bytes_of(raw);
  short_record.resize(sizeof(raw) - 8);
  EXPECT_FALSE(decode_kernel_event(short_record).has_value());
}

TEST(KernelEventDecoder, BlockDeviceOpen) {
  auto raw = with_header<nhg_block_device_event>(NHG_EVENT_BLOCK_DEVICE_OPEN);
  raw.rdev = (259ull << 20) | 2;
  raw.f_mode = 3;
  raw.fd = 4;
  raw.syscall = NHG_SYS_OPENAT2;
  std::memset(raw.name, 'n', sizeof(raw.name));  // unterminated: stays inside its field
  auto event = decode_kernel_event(bytes_of(raw));
  ASSERT_TRUE(event.has_value()) << event.error().message;
  const auto& open = std::get<BlockDeviceOpenEvent>(*event);
  EXPECT_EQ(open.major(), 259u);
  EXPECT_EQ(open.minor(), 2u);
  EXPECT_EQ(open.f_mode, 3u);
  EXPECT_EQ(open.fd, 4);
  EXPECT_EQ(open.syscall, OpenSyscall::openat2);
  EXPECT_EQ(open.name, std::string(NHG_NAME_LEN, 'n'));
  raw.syscall = 0;
  EXPECT_FALSE(decode_kernel_event(bytes_of(raw)).has_value());
}

}  // namespace
