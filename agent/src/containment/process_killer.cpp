#include "containment/process_killer.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <map>
#include <set>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "identity/process_info.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

namespace nhiguard::containment {
namespace {

constexpr const char* kProc = "/proc";

class PidFd {
 public:
  PidFd() = default;
  explicit PidFd(int fd) : fd_(fd) {}
  PidFd(PidFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  PidFd& operator=(PidFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~PidFd() { reset(); }
  int get() const { return fd_; }

 private:
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

struct StatEntry {
  pid_t pid = 0;
  pid_t ppid = 0;
  uint32_t session = 0;
  uint64_t start_ns = 0;
};

Result<StatEntry> read_stat(pid_t pid) {
  auto dir = identity::ProcessDir::open(kProc, pid);
  if (!dir) return fail(Error{ESRCH, fmt::format("no process {}", pid)});
  auto st = dir->stat();
  if (!st) return fail(Error{ESRCH, fmt::format("process {}: {}", pid, st.error().message)});
  return StatEntry{st->pid, st->ppid, st->session, start_ticks_to_ns(st->start_time_ticks)};
}

// Steps 1 and 2 of the header: a pidfd that is known to name the expected process.
Result<PidFd> open_verified(pid_t pid, uint64_t expected_start_ns, StatEntry* stat_out = nullptr) {
  if (pid <= 0) return fail(Error{EINVAL, fmt::format("invalid pid {}", pid)});
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return fail(Error::from_current_errno(fmt::format("pidfd_open pid {}", pid)));
  PidFd pidfd(fd);
  auto st = read_stat(pid);
  if (!st) return fail(st.error());
  if (!same_start(st->start_ns, expected_start_ns)) {
    return fail(Error{ESRCH, fmt::format("pid {} is not the expected process: it started at {} ns, expected {} ns "
                                         "(the pid was reused); nothing sent",
                                         pid, st->start_ns, expected_start_ns)});
  }
  if (stat_out) *stat_out = *st;
  return pidfd;
}

Result<void> send_kill(const PidFd& pidfd, pid_t pid) {
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0) != 0) {
    return fail(Error::from_current_errno(fmt::format("pidfd_send_signal SIGKILL pid {}", pid)));
  }
  return {};
}

// Every process of /proc, by pid. Processes that vanish mid-scan are skipped.
std::map<pid_t, StatEntry> scan_processes() {
  std::map<pid_t, StatEntry> table;
  DIR* dir = ::opendir(kProc);
  if (!dir) return table;
  while (const dirent* ent = ::readdir(dir)) {
    pid_t pid = 0;
    const std::string_view name(ent->d_name);
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() || pid <= 0) continue;
    if (auto st = read_stat(pid)) table.emplace(pid, *st);
  }
  ::closedir(dir);
  return table;
}

using Key = std::pair<pid_t, uint64_t>;  // (pid, start tick): the process key

Key key_of(pid_t pid, uint64_t start_ns) {
  return {pid, start_ns / ns_per_clock_tick()};
}

// The members of session `sid` in `table`, plus the subtree below the processes of `subtree`
// (the offender, and the descendants found by earlier scans). `subtree` grows with the
// descendants found; only the offender's line counts, not the descendants of other members.
std::vector<StatEntry> members_of(const std::map<pid_t, StatEntry>& table, uint32_t sid, std::set<Key>& subtree) {
  // Close over the ppid links: a process whose live parent is in the subtree is in it. A parent
  // entry that started after the child is a reused pid, not the parent.
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& [pid, e] : table) {
      const Key k = key_of(pid, e.start_ns);
      if (subtree.contains(k)) continue;
      auto parent = table.find(e.ppid);
      if (parent == table.end() || parent->second.start_ns > e.start_ns) continue;
      if (subtree.contains(key_of(parent->first, parent->second.start_ns))) {
        subtree.insert(k);
        grew = true;
      }
    }
  }
  std::vector<StatEntry> out;
  for (const auto& [pid, e] : table) {
    if (e.session == sid || subtree.contains(key_of(pid, e.start_ns))) out.push_back(e);
  }
  return out;
}

}  // namespace

Result<void> kill_process(pid_t pid, uint64_t expected_start_ns) {
  auto pidfd = open_verified(pid, expected_start_ns);
  if (!pidfd) return fail(pidfd.error());
  return send_kill(*pidfd, pid);
}

Result<void> kill_process(pid_t pid, uint64_t expected_start_ns, const ProtectedTargets& protected_targets) {
  if (auto r = protected_targets.check_process(pid, expected_start_ns); !r) return r;
  return kill_process(pid, expected_start_ns);
}

Result<std::vector<KilledProcess>> kill_session(pid_t pid, uint64_t expected_start_ns,
                                                const ProtectedTargets& protected_targets) {
  StatEntry offender;
  auto offender_fd = open_verified(pid, expected_start_ns, &offender);
  if (!offender_fd) return fail(offender_fd.error());
  const uint32_t sid = offender.session;
  // Session id 0 is a kernel thread, or a process whose session leader lives outside the agent's
  // pid namespace: its session cannot be told apart from others led from outside, so nothing is
  // guessed and nothing is killed.
  if (sid == 0) {
    return fail(Error{EINVAL, fmt::format("refused: kill_session of pid {}, nothing killed: its session id is 0 (a "
                                          "kernel thread, or a session led from outside the agent's pid namespace), "
                                          "so the session cannot be delimited; use kill-process or freeze",
                                          pid)});
  }

  // Up front: the whole set is checked before the first signal.
  std::set<Key> subtree{key_of(pid, offender.start_ns)};
  std::vector<StatEntry> members = members_of(scan_processes(), sid, subtree);
  for (const auto& m : members) {
    auto checked = protected_targets.check_process(m.pid, m.start_ns);
    if (!checked && checked.error().code == EPERM) {
      std::string why = checked.error().message;
      if (why.starts_with("refused: ")) why.erase(0, 9);
      return fail(Error{EPERM, fmt::format("refused: kill_session of pid {} (session {}), nothing killed: member {}",
                                           pid, sid, why)});
    }
  }

  std::vector<KilledProcess> killed;
  std::set<Key> done;
  // The offender first: it is the one known to be acting.
  if (send_kill(*offender_fd, pid)) killed.push_back({pid, offender.start_ns});
  done.insert(key_of(pid, offender.start_ns));

  for (int round = 0; round < kMaxSessionRounds; ++round) {
    if (round > 0) {
      // Members found by a later scan were forked after the check: check them too, and leave a
      // protected one alone (the earlier kills stand; they were checked).
      members = members_of(scan_processes(), sid, subtree);
    }
    bool any_new = false;
    for (const auto& m : members) {
      const Key k = key_of(m.pid, m.start_ns);
      if (done.contains(k)) continue;
      done.insert(k);
      any_new = true;
      if (round > 0 && !protected_targets.check_process(m.pid, m.start_ns)) continue;
      auto fd = open_verified(m.pid, m.start_ns);
      if (!fd) continue;  // exited (and perhaps reused) since the scan: not ours to kill
      if (send_kill(*fd, m.pid)) killed.push_back({m.pid, m.start_ns});
    }
    if (!any_new && round > 0) break;
  }
  return killed;
}

bool wait_for_process_exit(pid_t pid, uint64_t start_ns, std::chrono::milliseconds timeout) {
  auto fd = open_verified(pid, start_ns);
  if (!fd) return fd.error().code == ESRCH;  // gone, or the pid now names another process
  pollfd pfd{fd->get(), POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int rc = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace nhiguard::containment
