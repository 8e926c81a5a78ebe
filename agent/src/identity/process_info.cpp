#include "identity/process_info.h"

#include "common/filesystem.h"
#include "common/text.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <climits>

namespace nhiguard::identity {
namespace {

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

constexpr std::string_view kDeleted = " (deleted)";

}  // namespace

Result<ProcStat> parse_proc_stat(std::string_view text) {
  const size_t open = text.find('(');
  const size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return fail(Error{EINVAL, "stat: no (comm)"});
  }
  ProcStat st;
  if (!parse_number(trim(text.substr(0, open)), st.pid)) return fail(Error{EINVAL, "stat: bad pid"});
  st.comm = std::string(text.substr(open + 1, close - open - 1));

  // Fields 3.. follow the ')'; fields[0] is field 3 (state).
  std::vector<std::string_view> fields;
  std::string_view rest = text.substr(close + 1);
  size_t pos = 0;
  while (pos < rest.size() && fields.size() < 20) {
    while (pos < rest.size() && (rest[pos] == ' ' || rest[pos] == '\n')) ++pos;
    if (pos >= rest.size()) break;
    size_t end = rest.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = rest.size();
    fields.push_back(rest.substr(pos, end - pos));
    pos = end;
  }
  if (fields.size() < 20) return fail(Error{EINVAL, "stat: too few fields"});
  if (fields[0].size() != 1) return fail(Error{EINVAL, "stat: bad state"});
  st.state = fields[0][0];
  int64_t session = 0;
  if (!parse_number(fields[1], st.ppid) || !parse_number(fields[3], session) ||
      !parse_number(fields[19], st.start_time_ticks)) {
    return fail(Error{EINVAL, "stat: bad ppid, session or starttime"});
  }
  st.session = static_cast<uint32_t>(session);
  return st;
}

Result<ProcIds> parse_proc_status_ids(std::string_view text) {
  ProcIds ids;
  bool have_uid = false, have_gid = false;
  for (const std::string_view line : split_lines(text)) {
    const bool is_uid = line.starts_with("Uid:");
    const bool is_gid = line.starts_with("Gid:");
    if (!is_uid && !is_gid) continue;
    // "Uid:\treal\teffective\tsaved\tfs"
    std::array<uint32_t, 2> values{};
    std::string_view rest = line.substr(4);
    size_t got = 0;
    while (got < values.size()) {
      rest = trim(rest);
      const size_t sep = rest.find_first_of(" \t");
      const std::string_view field = rest.substr(0, sep);
      if (!parse_number(field, values[got]))
        return fail(Error{EINVAL, "status: bad " + std::string(line.substr(0, 3))});
      ++got;
      if (sep == std::string_view::npos) break;
      rest = rest.substr(sep);
    }
    if (got < values.size()) return fail(Error{EINVAL, "status: short " + std::string(line.substr(0, 3))});
    if (is_uid) {
      ids.uid = values[0];
      ids.euid = values[1];
      have_uid = true;
    } else {
      ids.gid = values[0];
      ids.egid = values[1];
      have_gid = true;
    }
  }
  if (!have_uid || !have_gid) return fail(Error{EINVAL, "status: no Uid/Gid lines"});
  return ids;
}

std::optional<ProcCgroup> parse_proc_cgroup(std::string_view text) {
  for (const std::string_view line : split_lines(text)) {
    // The path is everything after "0::": it may itself contain ':'.
    if (!line.starts_with("0::")) continue;
    ProcCgroup cg;
    std::string_view path = line.substr(3);
    if (path.ends_with(kDeleted)) {
      path.remove_suffix(kDeleted.size());
      cg.deleted = true;
    }
    cg.path = std::string(path);
    return cg;
  }
  return std::nullopt;
}

std::vector<std::string> split_cmdline(std::string_view raw) {
  std::vector<std::string> args;
  if (raw.empty()) return args;  // kernel threads and zombies have no argv at all
  if (raw.back() == '\0') raw.remove_suffix(1);
  size_t pos = 0;
  for (;;) {
    const size_t nul = raw.find('\0', pos);
    args.emplace_back(raw.substr(pos, nul == std::string_view::npos ? std::string_view::npos : nul - pos));
    if (nul == std::string_view::npos) break;
    pos = nul + 1;
  }
  return args;
}

std::optional<uint32_t> parse_audit_id(std::string_view text) {
  uint64_t v = 0;
  if (!parse_number(trim(text), v) || v >= UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(v);
}

Result<ProcessDir> ProcessDir::open(const std::string& proc_root, pid_t pid) {
  if (pid <= 0) return fail(Error{EINVAL, "pid " + std::to_string(pid)});
  const std::string path = proc_root + "/" + std::to_string(pid);
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  return ProcessDir(fd, pid);
}

ProcessDir::ProcessDir(ProcessDir&& other) noexcept : fd_(other.fd_), pid_(other.pid_) {
  other.fd_ = -1;
}

ProcessDir& ProcessDir::operator=(ProcessDir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    pid_ = other.pid_;
    other.fd_ = -1;
  }
  return *this;
}

ProcessDir::~ProcessDir() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::string> ProcessDir::read_file(const char* name, size_t limit) const {
  const int fd = ::openat(fd_, name, O_RDONLY | O_CLOEXEC);
  const std::string what = "/proc/" + std::to_string(pid_) + "/" + name;
  if (fd < 0) return fail(Error::from_current_errno("open " + what));
  return read_to_end(fd, "read " + what, limit);
}

Result<ProcStat> ProcessDir::stat() const {
  auto text = read_file("stat", 4096);
  if (!text) return fail(std::move(text.error()));
  return parse_proc_stat(*text);
}

Result<std::pair<std::string, bool>> ProcessDir::exe() const {
  std::array<char, PATH_MAX> buf{};
  const ssize_t n = ::readlinkat(fd_, "exe", buf.data(), buf.size() - 1);
  if (n < 0) return fail(Error::from_current_errno("readlink /proc/" + std::to_string(pid_) + "/exe"));
  std::string path(buf.data(), static_cast<size_t>(n));
  bool deleted = false;
  if (path.ends_with(kDeleted)) {
    path.resize(path.size() - kDeleted.size());
    deleted = true;
  }
  return std::pair{std::move(path), deleted};
}

Result<ProcessInfo> ProcessDir::info() const {
  auto st = stat();
  if (!st) return fail(std::move(st.error()));
  auto status_text = read_file("status", 64 * 1024);
  if (!status_text) return fail(std::move(status_text.error()));
  auto ids = parse_proc_status_ids(*status_text);
  if (!ids) return fail(std::move(ids.error()));

  ProcessInfo info;
  info.pid = st->pid;
  info.ppid = st->ppid;
  info.start_time_ticks = st->start_time_ticks;
  info.state = st->state;
  info.comm = std::move(st->comm);
  info.session_id = st->session;
  info.uid = ids->uid;
  info.euid = ids->euid;
  info.gid = ids->gid;
  info.egid = ids->egid;

  if (auto exe_link = exe(); exe_link) {
    info.exe = std::move(exe_link->first);
    info.exe_deleted = exe_link->second;
  }
  // One byte past the cap tells a buffer of exactly the cap from a longer one.
  if (auto raw = read_file("cmdline", kMaxCmdlineBytes + 1); raw) {
    if (raw->size() > kMaxCmdlineBytes) {
      raw->resize(kMaxCmdlineBytes);
      info.cmdline_truncated = true;
    }
    info.cmdline = split_cmdline(*raw);
  }
  if (auto text = read_file("cgroup", 64 * 1024); text) {
    if (auto cg = parse_proc_cgroup(*text); cg) {
      info.cgroup_path = std::move(cg->path);
      info.cgroup_deleted = cg->deleted;
    }
  }
  if (auto text = read_file("loginuid", 64); text) info.login_uid = parse_audit_id(*text);
  if (auto text = read_file("sessionid", 64); text) info.audit_session_id = parse_audit_id(*text);
  return info;
}

std::vector<Ancestor> read_ancestry(const std::string& proc_root, pid_t pid, size_t max_depth) {
  auto self = ProcessDir::open(proc_root, pid);
  if (!self) return {};
  auto self_stat = self->stat();
  if (!self_stat) return {};
  return read_ancestry_from_parent(proc_root, self_stat->ppid, self_stat->start_time_ticks, max_depth);
}

std::vector<Ancestor> read_ancestry_from_parent(const std::string& proc_root, pid_t ppid, uint64_t child_start_ticks,
                                                size_t max_depth) {
  std::vector<Ancestor> chain;
  pid_t next = ppid;
  uint64_t child_start = child_start_ticks;
  while (next > 0 && chain.size() < max_depth) {
    auto dir = ProcessDir::open(proc_root, next);
    if (!dir) break;
    auto st = dir->stat();
    if (!st) break;
    // A parent cannot start after its child; if this one did, the real parent exited and its pid
    // went to a newer process (a live child would have been reparented, so this is a race).
    if (st->start_time_ticks > child_start) break;
    Ancestor a;
    a.pid = st->pid;
    a.ppid = st->ppid;
    a.start_time_ticks = st->start_time_ticks;
    a.comm = std::move(st->comm);
    if (auto exe_link = dir->exe(); exe_link) a.exe = std::move(exe_link->first);
    chain.push_back(std::move(a));
    if (next == 1) break;
    child_start = chain.back().start_time_ticks;
    next = chain.back().ppid;
  }
  return chain;
}

}  // namespace nhiguard::identity
