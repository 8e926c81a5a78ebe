// Typed kernel events, decoded from the ring buffer's bytes (see bpf/nhiguard_abi.h).
//
// decode_kernel_event is pure: it copies out of the span, validates the header (type, size, ABI
// version) and every length, and never trusts a string to be NUL-terminated. The ring-buffer
// callback only hands bytes over; everything after works on these C++ types, so detection runs in
// unit tests from golden byte blobs without a kernel.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace nhiguard::events {

// The process a record is about, as the kernel saw it at the probe.
struct KernelProcess {
  uint32_t tgid = 0;
  uint32_t tid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t euid = 0;
  uint32_t gid = 0;
  uint32_t audit_session_id = 0;  // 0xffffffff when unset
  uint64_t start_ns = 0;          // CLOCK_BOOTTIME ns of the group leader's start: (tgid, start_ns) is the key
  uint64_t cgroup_id = 0;         // cgroup v2 id
  std::string comm;
};

// none: a repeat summary (FileOpenEvent::repeat_summary), which no syscall made.
// io_uring_*: an open submitted through io_uring. The read family (read .. copy_file_range): the first
// read of a credential fd by a process that did not open it (bpf/readpath.bpf.h). io_uring_ring: an
// io_uring_setup/enter refused (killed) under a credential deny; it names no file.
// file_receive: not an open, an fd of the file arrived (SCM_RIGHTS, pidfd_getfd); lsm_file_open:
// an open seen by BPF LSM (any syscall, io_uring too). Both carry no fd or path.
enum class OpenSyscall : uint16_t {
  none = 0,
  openat = 1,
  openat2 = 2,
  open = 3,
  creat = 4,
  open_by_handle_at = 5,
  file_receive = 6,
  lsm_file_open = 7,
  io_uring_openat = 8,
  io_uring_openat2 = 9,
  read = 10,
  pread64 = 11,
  readv = 12,
  preadv = 13,
  io_uring_read = 14,
  mmap = 15,
  sendfile = 16,
  splice = 17,
  copy_file_range = 18,
  io_uring_ring = 19,
};
std::string_view to_string(OpenSyscall syscall);

// A credential file (matched by inode) or a candidate (matched by name) was opened.
struct FileOpenEvent {
  bool by_inode = false;  // true: credential map hit; false: name-table candidate
  uint64_t ts_ns = 0;     // CLOCK_BOOTTIME ns
  KernelProcess process;
  uint64_t dev = 0;  // kernel dev_t encoding (major << 20 | minor)
  uint64_t ino = 0;
  uint32_t credential_id = 0;
  uint32_t open_flags = 0;
  uint32_t f_mode = 0;
  int32_t fd = -1;
  OpenSyscall syscall = OpenSyscall::openat;
  std::string name;            // the file's own name (dentry)
  std::string parent;          // the parent directory's name
  std::string requested_path;  // the path the process passed; raw bytes, may be relative
  bool path_truncated = false;
  bool path_missing = false;
  std::vector<std::string> cmdline;  // the opener's argv as the kernel held it at the open
  bool cmdline_truncated = false;
  bool cmdline_missing = false;
  bool cmdline_omitted = false;  // a repeat read: the argv came with this process's first read
  // Repeat opens of this credential by this process since its previous record, counted in the
  // kernel instead of reported one by one (NHG_REPEAT_WINDOW_NS).
  uint32_t coalesced_opens = 0;
  // Not an open: at the process's exit, the repeat opens counted after its last record
  // (coalesced_opens of them). Carries no path, fd or syscall.
  bool repeat_summary = false;
  bool denied = false;   // a deny_credential rule matched: the kernel SIGKILLed the reader, or (refused) ...
  bool refused = false;  // ... BPF LSM refused the open or the fd with EACCES: nothing read, nobody killed
  // With denied: killed because it shares the fd table (clone(CLONE_FILES)) of a process a deny killed.
  bool shared_fd_table = false;

  bool readable() const { return (f_mode & 0x1) != 0; }
  bool writable() const { return (f_mode & 0x2) != 0; }
};

struct ExecEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;
  uint32_t old_tid = 0;
  std::string filename;
  bool filename_truncated = false;
};

struct ForkEvent {
  uint64_t ts_ns = 0;
  KernelProcess parent;
  uint32_t child_tgid = 0;
  uint64_t child_start_ns = 0;
};

struct ExitEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;
  int32_t exit_code = 0;  // wait-status encoding
};

// sock_create: a raw socket refused at its creation (no destination: address and port 0).
enum class EgressHook : uint16_t { connect4 = 1, connect6 = 2, sendmsg4 = 3, sendmsg6 = 4, sock_create = 5 };
std::string_view to_string(EgressHook hook);

// A connect/sendmsg of a tainted process, or one an egress block denied.
struct EgressEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;              // start_ns only when tainted; ppid/euid/audit session not available here
  std::array<uint8_t, 16> address{};  // IPv4 mapped into IPv6
  uint16_t port = 0;
  uint16_t family = 0;    // AF_INET / AF_INET6
  uint16_t protocol = 0;  // IPPROTO_*
  EgressHook hook = EgressHook::connect4;
  bool denied = false;
  uint32_t rule_id = 0;
  uint32_t taint_credential_id = 0;  // 0: not tainted
  uint32_t taint_source_tgid = 0;
  uint64_t tainted_at_ns = 0;
  // The process read nothing itself: another process of its cgroup read the credential within
  // NHG_CGROUP_TAINT_WINDOW_NS (a pipe's sender, or unrelated egress: lower confidence).
  bool taint_from_cgroup_window = false;

  std::string address_string() const;  // "192.0.2.7" or "2001:db8::1"
};

// A contained (followed) or tainted process was attached to another cgroup; process.cgroup_id is
// the new one. Its containment moved with it: followed_cgroup_ids are the contained cgroups whose
// blocks and denies it carries.
struct CgroupMoveEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;
  uint64_t to_cgroup_id = 0;
  std::vector<uint64_t> followed_cgroup_ids;
  bool contained = false;
  bool tainted = false;
  bool thread_only = false;  // one thread moved (cgroup.threads), not the whole process
  uint32_t taint_credential_id = 0;
};

// How a process reached into another's memory (nhg_memory_access_how).
enum class MemoryAccessHow : uint16_t {
  ptrace_attach = 1,
  ptrace_seize = 2,
  process_vm_readv = 3,
  proc_mem = 4,
  proc_environ = 5
};
std::string_view to_string(MemoryAccessHow how);

// A process reached into the memory of a tainted process (one that read a credential, or whose
// ancestor did): ptrace attach/seize, process_vm_readv, or an open of its /proc/PID/mem or environ.
struct MemoryAccessEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;  // the accessor
  uint32_t target_tgid = 0;
  uint32_t target_tid = 0;  // the pid the accessor named
  uint64_t target_start_ns = 0;
  uint32_t taint_credential_id = 0;  // the credential the target (or its ancestor) read
  uint32_t taint_source_tgid = 0;
  uint64_t tainted_at_ns = 0;
  MemoryAccessHow how = MemoryAccessHow::ptrace_attach;
  uint32_t f_mode = 0;  // the /proc opens: FMODE_READ 1, FMODE_WRITE 2
  int64_t result = 0;   // the syscall's return value (a refused ptrace is -EPERM)
};

// A block device special file opened for reading.
struct BlockDeviceOpenEvent {
  uint64_t ts_ns = 0;
  KernelProcess process;
  uint64_t rdev = 0;  // kernel dev_t: major << 20 | minor
  uint32_t f_mode = 0;
  int32_t fd = -1;
  OpenSyscall syscall = OpenSyscall::openat;
  std::string name;  // the device node's name: "sda", "loop0"

  uint32_t major() const { return static_cast<uint32_t>(rdev >> 20); }
  uint32_t minor() const { return static_cast<uint32_t>(rdev & 0xfffff); }
};

using KernelEvent = std::variant<FileOpenEvent, ExecEvent, ForkEvent, ExitEvent, EgressEvent, MemoryAccessEvent,
                                 BlockDeviceOpenEvent, CgroupMoveEvent>;

// Decodes one ring-buffer record. Errors name what was wrong (short record, size mismatch,
// unknown type, ABI version) so a bad record is counted and logged, never misread.
Result<KernelEvent> decode_kernel_event(std::span<const std::byte> record);

}  // namespace nhiguard::events
