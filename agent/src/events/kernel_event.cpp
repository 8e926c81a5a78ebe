#include "events/kernel_event.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <fmt/format.h>

#include "common/enum_names.h"
#include "nhiguard_abi.h"

namespace nhiguard::events {
namespace {

template <std::size_t N>
std::string bounded_string(const char (&field)[N]) {
  return std::string(field, strnlen(field, N));
}

// argv is NUL-separated; a truncated area may end inside an argument, which is kept as it is.
std::vector<std::string> split_argv(const char* data, size_t len) {
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (data[i] == '\0') {
      args.emplace_back(data + start, i - start);
      start = i + 1;
    }
  }
  if (start < len) args.emplace_back(data + start, len - start);
  return args;
}

KernelProcess decode_process(const nhg_process& raw) {
  return KernelProcess{
      .tgid = raw.tgid,
      .tid = raw.tid,
      .ppid = raw.ppid,
      .uid = raw.uid,
      .euid = raw.euid,
      .gid = raw.gid,
      .audit_session_id = raw.sessionid,
      .start_ns = raw.start_ns,
      .cgroup_id = raw.cgroup_id,
      .comm = bounded_string(raw.comm),
  };
}

// Copies the record into a properly aligned struct after checking its declared and actual size.
template <typename Raw>
Result<Raw> copy_record(std::span<const std::byte> record, const nhg_event_header& header) {
  if (header.size != sizeof(Raw) || record.size() < sizeof(Raw)) {
    return fail(Error::plain(fmt::format("kernel event type {}: size {} (record {} bytes), expected {}", header.type,
                                         header.size, record.size(), sizeof(Raw))));
  }
  Raw raw;
  std::memcpy(&raw, record.data(), sizeof(Raw));
  return raw;
}

constexpr auto kEgressHooks = enum_names<EgressHook>({{EgressHook::connect4, "connect4"},
                                                      {EgressHook::connect6, "connect6"},
                                                      {EgressHook::sendmsg4, "sendmsg4"},
                                                      {EgressHook::sendmsg6, "sendmsg6"},
                                                      {EgressHook::sock_create, "sock_create"}});

constexpr auto kOpenSyscalls = enum_names<OpenSyscall>({{OpenSyscall::none, "none"},
                                                        {OpenSyscall::openat, "openat"},
                                                        {OpenSyscall::openat2, "openat2"},
                                                        {OpenSyscall::open, "open"},
                                                        {OpenSyscall::creat, "creat"},
                                                        {OpenSyscall::open_by_handle_at, "open_by_handle_at"},
                                                        {OpenSyscall::file_receive, "file_receive"},
                                                        {OpenSyscall::lsm_file_open, "lsm_file_open"},
                                                        {OpenSyscall::io_uring_openat, "io_uring_openat"},
                                                        {OpenSyscall::io_uring_openat2, "io_uring_openat2"},
                                                        {OpenSyscall::read, "read"},
                                                        {OpenSyscall::pread64, "pread64"},
                                                        {OpenSyscall::readv, "readv"},
                                                        {OpenSyscall::preadv, "preadv"},
                                                        {OpenSyscall::io_uring_read, "io_uring_read"},
                                                        {OpenSyscall::mmap, "mmap"},
                                                        {OpenSyscall::sendfile, "sendfile"},
                                                        {OpenSyscall::splice, "splice"},
                                                        {OpenSyscall::copy_file_range, "copy_file_range"},
                                                        {OpenSyscall::io_uring_ring, "io_uring_ring"}});

// Syscall ids a file record may carry (nhiguard_abi.h enum nhg_open_syscall).
bool known_file_syscall(uint16_t id) {
  return id >= NHG_SYS_OPENAT && id <= NHG_SYS_IO_URING_RING;
}

constexpr auto kMemoryAccessHows = enum_names<MemoryAccessHow>({{MemoryAccessHow::ptrace_attach, "ptrace_attach"},
                                                                {MemoryAccessHow::ptrace_seize, "ptrace_seize"},
                                                                {MemoryAccessHow::process_vm_readv, "process_vm_readv"},
                                                                {MemoryAccessHow::proc_mem, "proc_mem"},
                                                                {MemoryAccessHow::proc_environ, "proc_environ"}});

}  // namespace

std::string_view to_string(MemoryAccessHow how) {
  return kMemoryAccessHows.name(how);
}

std::string_view to_string(EgressHook hook) {
  return kEgressHooks.name(hook);
}

std::string EgressEvent::address_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (family == AF_INET) {
    inet_ntop(AF_INET, &address[12], buffer, sizeof(buffer));
  } else {
    inet_ntop(AF_INET6, address.data(), buffer, sizeof(buffer));
  }
  return buffer;
}

std::string_view to_string(OpenSyscall syscall) {
  return kOpenSyscalls.name(syscall);
}

Result<KernelEvent> decode_kernel_event(std::span<const std::byte> record) {
  nhg_event_header header;
  if (record.size() < sizeof(header)) {
    return fail(Error::plain(fmt::format("kernel event: {} bytes, shorter than its header", record.size())));
  }
  std::memcpy(&header, record.data(), sizeof(header));
  if (header.version != NHG_ABI_VERSION) {
    return fail(Error::plain(fmt::format("kernel event type {}: ABI version {}, this agent speaks {}", header.type,
                                         header.version, NHG_ABI_VERSION)));
  }
  switch (header.type) {
    case NHG_EVENT_CREDENTIAL_OPEN:
    case NHG_EVENT_CANDIDATE_OPEN: {
      auto raw = copy_record<nhg_file_event>(record, header);
      if (!raw) return fail(raw.error());
      const bool summary = (raw->flags & NHG_FILE_REPEAT_SUMMARY) != 0;
      if (summary ? raw->syscall != 0 || header.type != NHG_EVENT_CREDENTIAL_OPEN : !known_file_syscall(raw->syscall)) {
        return fail(Error::plain(fmt::format("kernel file event: syscall {} with flags {:#x} and type {}", raw->syscall,
                                             raw->flags, header.type)));
      }
      if (raw->cmdline_len > NHG_CMDLINE_LEN) {
        return fail(Error::plain(
            fmt::format("kernel file event: cmdline length {} over {}", raw->cmdline_len, NHG_CMDLINE_LEN)));
      }
      return FileOpenEvent{
          .by_inode = header.type == NHG_EVENT_CREDENTIAL_OPEN,
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .dev = raw->file.dev,
          .ino = raw->file.ino,
          .credential_id = raw->credential_id,
          .open_flags = raw->open_flags,
          .f_mode = raw->f_mode,
          .fd = raw->fd,
          .syscall = static_cast<OpenSyscall>(raw->syscall),
          .name = bounded_string(raw->name),
          .parent = bounded_string(raw->parent),
          .requested_path = bounded_string(raw->requested_path),
          .path_truncated = (raw->flags & NHG_FILE_PATH_TRUNCATED) != 0,
          .path_missing = (raw->flags & NHG_FILE_PATH_MISSING) != 0,
          .cmdline = split_argv(raw->cmdline, raw->cmdline_len),
          .cmdline_truncated = (raw->flags & NHG_FILE_CMDLINE_TRUNCATED) != 0,
          .cmdline_missing = (raw->flags & NHG_FILE_CMDLINE_MISSING) != 0,
          .cmdline_omitted = (raw->flags & NHG_FILE_CMDLINE_OMITTED) != 0,
          .coalesced_opens = raw->coalesced_opens,
          .repeat_summary = summary,
          .denied = (raw->flags & NHG_FILE_DENIED) != 0,
          .refused = (raw->flags & (NHG_FILE_DENIED | NHG_FILE_REFUSED)) == (NHG_FILE_DENIED | NHG_FILE_REFUSED),
          .shared_fd_table = (raw->flags & NHG_FILE_SHARED_FD_TABLE) != 0,
      };
    }
    case NHG_EVENT_PROCESS_EXEC: {
      auto raw = copy_record<nhg_exec_event>(record, header);
      if (!raw) return fail(raw.error());
      return ExecEvent{
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .old_tid = raw->old_tid,
          .filename = bounded_string(raw->filename),
          .filename_truncated = (raw->flags & NHG_FILE_PATH_TRUNCATED) != 0,
      };
    }
    case NHG_EVENT_PROCESS_FORK: {
      auto raw = copy_record<nhg_fork_event>(record, header);
      if (!raw) return fail(raw.error());
      return ForkEvent{
          .ts_ns = header.ts_ns,
          .parent = decode_process(raw->proc),
          .child_tgid = raw->child_tgid,
          .child_start_ns = raw->child_start_ns,
      };
    }
    case NHG_EVENT_PROCESS_EXIT: {
      auto raw = copy_record<nhg_exit_event>(record, header);
      if (!raw) return fail(raw.error());
      return ExitEvent{.ts_ns = header.ts_ns, .process = decode_process(raw->proc), .exit_code = raw->exit_code};
    }
    case NHG_EVENT_EGRESS: {
      auto raw = copy_record<nhg_egress_event>(record, header);
      if (!raw) return fail(raw.error());
      if (raw->hook < NHG_HOOK_CONNECT4 || raw->hook > NHG_HOOK_SOCK_CREATE ||
          (raw->verdict != NHG_VERDICT_ALLOWED && raw->verdict != NHG_VERDICT_DENIED) ||
          (raw->family != AF_INET && raw->family != AF_INET6) || raw->taint_kind > NHG_TAINT_CGROUP_WINDOW) {
        return fail(Error::plain(fmt::format("kernel egress event: hook {} verdict {} family {} out of range",
                                             raw->hook, raw->verdict, raw->family)));
      }
      EgressEvent event{
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .port = raw->port,
          .family = raw->family,
          .protocol = raw->protocol,
          .hook = static_cast<EgressHook>(raw->hook),
          .denied = raw->verdict == NHG_VERDICT_DENIED,
          .rule_id = raw->rule_id,
          .taint_credential_id = raw->taint_credential_id,
          .taint_source_tgid = raw->taint_source_tgid,
          .tainted_at_ns = raw->tainted_at_ns,
          .taint_from_cgroup_window = raw->taint_kind == NHG_TAINT_CGROUP_WINDOW,
      };
      std::memcpy(event.address.data(), raw->addr, sizeof(raw->addr));
      return event;
    }
    case NHG_EVENT_CGROUP_MOVE: {
      auto raw = copy_record<nhg_cgroup_move_event>(record, header);
      if (!raw) return fail(raw.error());
      CgroupMoveEvent event{
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .to_cgroup_id = raw->dst_cgroup_id,
          .contained = (raw->flags & NHG_MOVE_CONTAINED) != 0,
          .tainted = (raw->flags & NHG_MOVE_TAINTED) != 0,
          .thread_only = (raw->flags & NHG_MOVE_THREAD) != 0,
          .taint_credential_id = raw->taint_credential_id,
      };
      for (uint64_t id : raw->followed_cgroup_ids) {
        if (id != 0) event.followed_cgroup_ids.push_back(id);
      }
      return event;
    }
    case NHG_EVENT_MEMORY_ACCESS: {
      auto raw = copy_record<nhg_memory_access_event>(record, header);
      if (!raw) return fail(raw.error());
      if (raw->how < NHG_MEM_PTRACE_ATTACH || raw->how > NHG_MEM_PROC_ENVIRON || raw->target_tgid == 0) {
        return fail(Error::plain(
            fmt::format("kernel memory-access event: how {} target {} out of range", raw->how, raw->target_tgid)));
      }
      return MemoryAccessEvent{
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .target_tgid = raw->target_tgid,
          .target_tid = raw->target_tid,
          .target_start_ns = raw->target_start_ns,
          .taint_credential_id = raw->taint_credential_id,
          .taint_source_tgid = raw->taint_source_tgid,
          .tainted_at_ns = raw->tainted_at_ns,
          .how = static_cast<MemoryAccessHow>(raw->how),
          .f_mode = raw->f_mode,
          .result = raw->result,
      };
    }
    case NHG_EVENT_BLOCK_DEVICE_OPEN: {
      auto raw = copy_record<nhg_block_device_event>(record, header);
      if (!raw) return fail(raw.error());
      if (raw->syscall == 0) {
        return fail(Error::plain("kernel block-device event: no syscall"));
      }
      return BlockDeviceOpenEvent{
          .ts_ns = header.ts_ns,
          .process = decode_process(raw->proc),
          .rdev = raw->rdev,
          .f_mode = raw->f_mode,
          .fd = raw->fd,
          .syscall = static_cast<OpenSyscall>(raw->syscall),
          .name = bounded_string(raw->name),
      };
    }
    default:
      return fail(Error::plain(fmt::format("kernel event: unknown type {} ({} bytes)", header.type, record.size())));
  }
}

}  // namespace nhiguard::events
