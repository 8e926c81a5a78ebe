// What /proc says about a process: stat, status, cmdline, exe, cgroup, loginuid, sessionid.
//
// ProcessDir holds an open /proc/PID directory and reads every file through that descriptor
// (openat/readlinkat), never by path. Once the process is reaped, reads through the descriptor fail
// instead of reaching a new process that was given the same pid, so all the fields of one
// ProcessInfo describe one process. The caller still compares start times to make sure the
// directory it opened was the process it meant (see IdentityResolver).
//
// The proc root is configurable so tests can point at a fixture tree of plain files.
//
// The parse_* functions are pure and safe from any thread. ProcessDir is a move-only handle; its
// const reads may run concurrently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nhiguard::identity {

// The /proc/PID/stat fields the agent uses (proc(5) numbering).
struct ProcStat {
  pid_t pid = 0;                  // 1
  std::string comm;               // 2, without the parentheses; may contain spaces and ')'
  char state = '?';               // 3
  pid_t ppid = 0;                 // 4
  uint32_t session = 0;           // 6: the session id (setsid), not the audit session
  uint64_t start_time_ticks = 0;  // 22: since boot, in clock ticks (sysconf(_SC_CLK_TCK))
};

// comm may hold any byte but NUL, ')' and spaces included, so the fields after it are found from
// the LAST ')' in the text.
Result<ProcStat> parse_proc_stat(std::string_view text);

struct ProcIds {
  uint32_t uid = 0, euid = 0, gid = 0, egid = 0;
};
// The Uid: and Gid: lines of /proc/PID/status.
Result<ProcIds> parse_proc_status_ids(std::string_view text);

// The path of the cgroup v2 ("0::") line of /proc/PID/cgroup, without the " (deleted)" suffix the
// kernel adds for a removed cgroup. nullopt when there is no v2 line.
struct ProcCgroup {
  std::string path;
  bool deleted = false;
};
std::optional<ProcCgroup> parse_proc_cgroup(std::string_view text);

// Splits a NUL-separated argv buffer. The final terminator is dropped ("\0" is one empty argument,
// "" is none); a last argument without one (truncated, or rewritten argv) is kept. Arguments are
// raw bytes.
std::vector<std::string> split_cmdline(std::string_view raw);

// loginuid and sessionid files: a decimal number, 4294967295 meaning "unset" (returned as nullopt).
std::optional<uint32_t> parse_audit_id(std::string_view text);

inline constexpr size_t kMaxCmdlineBytes = 4096;

struct ProcessInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_time_ticks = 0;
  char state = '?';
  uint32_t uid = 0, euid = 0, gid = 0, egid = 0;
  std::string comm;
  std::string exe;           // readlink of exe; empty when unreadable (kernel threads, no permission)
  bool exe_deleted = false;  // the link ended in " (deleted)" (removed from exe, above)
  std::vector<std::string> cmdline;
  bool cmdline_truncated = false;            // longer than kMaxCmdlineBytes
  uint32_t session_id = 0;                   // stat field 6
  std::optional<uint32_t> audit_session_id;  // /proc/PID/sessionid; nullopt when unset or unavailable
  std::optional<uint32_t> login_uid;         // /proc/PID/loginuid; nullopt when unset or unavailable
  std::string cgroup_path;                   // the "0::" path; empty when none
  bool cgroup_deleted = false;
};

// One link of a process's ancestry.
struct Ancestor {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint64_t start_time_ticks = 0;
  std::string comm;
  std::string exe;  // empty when unreadable
};

class ProcessDir {
 public:
  // Opens <proc_root>/<pid>. ENOENT when there is no such process.
  static Result<ProcessDir> open(const std::string& proc_root, pid_t pid);

  ProcessDir(ProcessDir&& other) noexcept;
  ProcessDir& operator=(ProcessDir&& other) noexcept;
  ProcessDir(const ProcessDir&) = delete;
  ProcessDir& operator=(const ProcessDir&) = delete;
  ~ProcessDir();

  pid_t pid() const { return pid_; }
  int fd() const { return fd_; }

  Result<ProcStat> stat() const;
  // stat and status are required (the process is gone without them); every other file is best
  // effort and leaves its field empty.
  Result<ProcessInfo> info() const;
  // readlink of exe, with the " (deleted)" suffix removed and reported.
  Result<std::pair<std::string, bool>> exe() const;

 private:
  ProcessDir(int fd, pid_t pid) : fd_(fd), pid_(pid) {}
  Result<std::string> read_file(const char* name, size_t limit) const;

  int fd_ = -1;
  pid_t pid_ = 0;
};

// The parent chain of a process, nearest first, up to and including PID 1, at most max_depth
// links, starting from its parent `ppid`; `child_start_ticks` is the process's own start time.
// Stops early at a parent that is gone or that started after its child (the pid was reused).
std::vector<Ancestor> read_ancestry_from_parent(const std::string& proc_root, pid_t ppid, uint64_t child_start_ticks,
                                                size_t max_depth = 32);
// The same, starting from `pid`'s own stat.
std::vector<Ancestor> read_ancestry(const std::string& proc_root, pid_t pid, size_t max_depth = 32);

}  // namespace nhiguard::identity
