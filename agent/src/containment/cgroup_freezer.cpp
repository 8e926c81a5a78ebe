#include "containment/cgroup_freezer.h"

#include "common/text.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace nhiguard::containment {
namespace {

// Re-check at least this often: a notification can be missed between the read and the poll.
constexpr std::chrono::milliseconds kRecheck{50};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<CgroupEvents> read_events_fd(int fd, const std::string& path) {
  char buf[512];
  ssize_t n;
  do {
    n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail(Error::from_current_errno("read " + path));
  auto parsed = parse_cgroup_events(std::string_view(buf, static_cast<size_t>(n)));
  if (!parsed) return fail(Error{parsed.error().code, path + ": " + parsed.error().message});
  return parsed;
}

Result<void> write_freeze(const std::string& cgroup_dir, const char* value) {
  const std::string path = cgroup_dir + "/cgroup.freeze";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  Fd guard(fd);
  ssize_t n;
  do {
    n = ::write(fd, value, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return fail(Error::from_current_errno(fmt::format("write \"{}\" to {}", value, path)));
  return {};
}

Result<void> set_and_wait(const std::string& cgroup_dir, bool want_frozen, std::chrono::milliseconds timeout) {
  const std::string events_path = cgroup_dir + "/cgroup.events";
  // Open cgroup.events before writing so the change cannot slip between the write and the watch.
  const int fd = ::open(events_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + events_path));
  Fd guard(fd);
  if (auto r = write_freeze(cgroup_dir, want_frozen ? "1" : "0"); !r) return r;

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto ev = read_events_fd(fd, events_path);
    if (!ev) return fail(ev.error());
    if (ev->frozen == want_frozen) return {};
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return fail(Error{ETIMEDOUT, fmt::format("{}: still \"frozen {}\" {} ms after writing {} to cgroup.freeze",
                                               events_path, ev->frozen ? 1 : 0, timeout.count(), want_frozen ? 1 : 0)});
    }
    const auto wait = std::min(
        kRecheck, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + std::chrono::milliseconds(1));
    pollfd pfd{fd, POLLPRI, 0};
    const int rc = ::poll(&pfd, 1, static_cast<int>(wait.count()));
    if (rc < 0 && errno != EINTR) return fail(Error::from_current_errno("poll " + events_path));
  }
}

}  // namespace

Result<CgroupEvents> parse_cgroup_events(std::string_view text) {
  CgroupEvents ev;
  bool have_frozen = false;
  for (const std::string_view line : split_lines(text)) {
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, space), value = line.substr(space + 1);
    if (key == "populated") ev.populated = value == "1";
    if (key == "frozen") {
      ev.frozen = value == "1";
      have_frozen = true;
    }
  }
  if (!have_frozen) return fail(Error{EINVAL, "cgroup.events has no \"frozen\" key (kernel older than 5.2?)"});
  return ev;
}

Result<CgroupEvents> read_cgroup_events(const std::string& cgroup_dir) {
  const std::string path = cgroup_dir + "/cgroup.events";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  Fd guard(fd);
  return read_events_fd(fd, path);
}

Result<void> freeze(const std::string& cgroup_dir, std::chrono::milliseconds timeout) {
  return set_and_wait(cgroup_dir, true, timeout);
}

Result<void> thaw(const std::string& cgroup_dir, std::chrono::milliseconds timeout) {
  return set_and_wait(cgroup_dir, false, timeout);
}

Result<bool> is_frozen(const std::string& cgroup_dir) {
  auto ev = read_cgroup_events(cgroup_dir);
  if (!ev) return fail(ev.error());
  return ev->frozen;
}

}  // namespace nhiguard::containment
