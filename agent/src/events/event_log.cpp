#include "events/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/filesystem.h"

namespace nhiguard::events {
namespace {

constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;

// mkdir -p for the parent of `path`, creating only what is missing, each component 0700.
Result<void> create_parent_directories(const std::string& path) {
  const std::size_t last_slash = path.rfind('/');
  if (last_slash == std::string::npos || last_slash == 0) return {};
  return make_directories(path.substr(0, last_slash), kDirMode);
}

// Writes all of data, retrying on EINTR and short writes. Returns 0 or the errno that stopped it,
// with `written` set to what did reach the file.
int write_all(int fd, std::string_view data, std::size_t& written) {
  written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EIO;  // a regular file never accepts 0 bytes of a non-empty write
    written += static_cast<std::size_t>(n);
  }
  return 0;
}

std::string rotated_name(const std::string& path, uint32_t index) {
  return fmt::format("{}.{}", path, index);
}

}  // namespace

JsonLineWriter::JsonLineWriter(JsonLineWriterOptions options) : options_(std::move(options)) {}

JsonLineWriter::~JsonLineWriter() {
  std::lock_guard lock(mutex_);
  close_locked();
}

void JsonLineWriter::close_locked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<void> JsonLineWriter::open_locked() {
  close_locked();
  if (options_.path.empty() || options_.path.front() != '/') {
    return fail(Error{EINVAL, fmt::format("event log path '{}' is not absolute", options_.path)});
  }
  if (auto dirs = create_parent_directories(options_.path); !dirs) return fail(dirs.error());
  // O_NOFOLLOW: the log lives in a root-only state directory; a symlink planted there must not
  // redirect root's appends to some other file.
  const int fd = ::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, kFileMode);
  if (fd < 0) return fail(Error::from_current_errno("open event log " + options_.path));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(Error::from_errno(err, "stat event log " + options_.path));
  }
  if ((st.st_mode & 07777) != kFileMode && ::fchmod(fd, kFileMode) != 0) {
    spdlog::warn("event log {}: cannot narrow mode {:o} to 0600: {}", options_.path, st.st_mode & 07777,
                 std::strerror(errno));
  }
  fd_ = fd;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  size_ = static_cast<uint64_t>(st.st_size);
  return {};
}

Result<void> JsonLineWriter::ensure_open_locked() {
  if (fd_ >= 0) {
    // Someone else removed or renamed the file (logrotate without copytruncate, an operator):
    // writing on would go to an unlinked inode nobody reads.
    struct stat st{};
    if (::stat(options_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) return {};
  }
  return open_locked();
}

Result<void> JsonLineWriter::rotate_locked() {
  close_locked();
  const std::string& path = options_.path;
  const auto rename_if_present = [](const std::string& from, const std::string& to) {
    return ::rename(from.c_str(), to.c_str()) == 0 || errno == ENOENT;
  };
  bool ok = true;
  if (options_.keep == 0) {
    ok = ::unlink(path.c_str()) == 0 || errno == ENOENT;
  } else {
    // rename() replaces the oldest, so no separate unlink of path.<keep> is needed.
    for (uint32_t i = options_.keep - 1; ok && i >= 1; --i) {
      ok = rename_if_present(rotated_name(path, i), rotated_name(path, i + 1));
    }
    ok = ok && rename_if_present(path, rotated_name(path, 1));
  }
  if (!ok) {
    const int err = errno;
    ++stats_.rotation_failures;
    return fail(Error::from_errno(err, "rotate event log " + path));
  }
  ++stats_.rotations;
  return {};
}

Result<void> JsonLineWriter::open() {
  std::lock_guard lock(mutex_);
  return ensure_open_locked();
}

Result<void> JsonLineWriter::reopen() {
  std::lock_guard lock(mutex_);
  return open_locked();
}

Result<void> JsonLineWriter::write(const nlohmann::json& record) {
  // replace: a stray invalid UTF-8 byte must cost one character, not the event (dump would throw).
  return write_line(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

Result<void> JsonLineWriter::write_line(std::string_view line) {
  if (line.find('\n') != std::string_view::npos) {
    std::lock_guard lock(mutex_);
    ++stats_.lines_dropped;
    return fail(Error{EINVAL, "event log " + options_.path + ": line contains a newline"});
  }
  std::string data;
  data.reserve(line.size() + 1);
  data.append(line);
  data += '\n';

  std::lock_guard lock(mutex_);
  const auto drop = [&](Error error) {
    ++stats_.lines_dropped;
    error.message += fmt::format(" ({} lines dropped so far)", stats_.lines_dropped);
    return fail(std::move(error));
  };
  if (auto opened = ensure_open_locked(); !opened) return drop(opened.error());

  if (options_.max_bytes > 0 && size_ > 0 && size_ + data.size() > options_.max_bytes) {
    if (auto rotated = rotate_locked(); !rotated) {
      // Keep logging into the oversized file rather than lose events over a rename.
      spdlog::warn("{}", rotated.error().message);
    }
    if (auto opened = ensure_open_locked(); !opened) return drop(opened.error());
  }

  std::size_t written = 0;
  if (const int err = write_all(fd_, data, written); err != 0) {
    if (written > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) {
      spdlog::warn("event log {}: cannot cut a partial line: {}", options_.path, std::strerror(errno));
    }
    // Reopen on the next write: the error may be the file's (a removed filesystem, EIO).
    close_locked();
    return drop(Error::from_errno(err, "append to event log " + options_.path));
  }
  size_ += data.size();
  ++stats_.lines_written;
  stats_.bytes_written += data.size();

  if (options_.mirror_stdout) {
    std::size_t mirrored = 0;
    if (write_all(options_.mirror_fd, data, mirrored) != 0) ++stats_.mirror_failures;
  }
  return {};
}

JsonLineWriterStats JsonLineWriter::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace nhiguard::events
