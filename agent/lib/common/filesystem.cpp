#include "common/filesystem.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <string>

namespace nhiguard {

Result<std::string> read_to_end(int fd, const std::string& read_error, size_t limit) {
  std::string text;
  std::array<char, 8192> buf{};
  while (text.size() < limit) {
    const ssize_t n = ::read(fd, buf.data(), std::min(buf.size(), limit - text.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return fail(Error::from_errno(err, read_error));
    }
    if (n == 0) break;
    text.append(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

Result<std::string> read_text_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail(Error::from_current_errno("open " + path));
  return read_to_end(fd, "read " + path);
}

Result<void> make_directories(const std::string& path, mode_t mode) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return fail(Error::from_current_errno("create directory " + prefix));
    }
    if (slash == std::string::npos) break;
  }
  return {};
}

namespace {

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

Result<void> fsync_directory(const std::string& dir) {
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fail(Error::from_current_errno("open directory " + dir));
  const int synced = ::fsync(dir_fd);
  const int saved = errno;
  ::close(dir_fd);
  if (synced != 0) return fail(Error::from_errno(saved, "fsync directory " + dir));
  return {};
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path, mode_t mode)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), mode_(mode) {}

AtomicFileWriter::~AtomicFileWriter() {
  if (written_ && !committed_) ::unlink(tmp_.c_str());
}

Result<void> AtomicFileWriter::write(std::string_view content) {
  const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_);
  if (fd < 0) return fail(Error::from_current_errno("create " + tmp_));
  written_ = true;  // from here on the destructor removes it unless committed
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error error = Error::from_current_errno("write " + tmp_);
      ::close(fd);
      return fail(std::move(error));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Error error = Error::from_current_errno("fsync " + tmp_);
    ::close(fd);
    return fail(std::move(error));
  }
  if (::close(fd) != 0) return fail(Error::from_current_errno("close " + tmp_));
  return {};
}

Result<void> AtomicFileWriter::commit() {
  if (!written_) return fail(Error{EINVAL, "commit " + path_ + ": nothing written"});
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    return fail(Error::from_current_errno("rename " + tmp_ + " to " + path_));
  committed_ = true;
  // The rename is durable only once the directory entry is.
  return fsync_directory(directory_of(path_));
}

Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  AtomicFileWriter writer(path, mode);
  if (auto written = writer.write(content); !written) return written;
  return writer.commit();
}

Result<std::string> quarantine_file(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return fail(Error::from_current_errno("quarantine " + path));
  if (!S_ISREG(st.st_mode)) return fail(Error{EINVAL, "quarantine " + path + ": not a regular file; left in place"});
  const time_t now = ::time(nullptr);
  struct tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &utc);
  std::string target = path + ".damaged-" + stamp;
  for (int n = 2; ::access(target.c_str(), F_OK) == 0; ++n)
    target = path + ".damaged-" + stamp + "-" + std::to_string(n);
  // The companions first: a crash midway leaves the main file where the next start finds it again.
  for (const char* companion : {"-wal", "-shm"}) {
    const std::string from = path + companion;
    if (::lstat(from.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (::rename(from.c_str(), (target + companion).c_str()) != 0) {
      return fail(Error::from_current_errno("quarantine " + from));
    }
  }
  if (::rename(path.c_str(), target.c_str()) != 0) return fail(Error::from_current_errno("quarantine " + path));
  if (auto synced = fsync_directory(directory_of(path)); !synced) return fail(synced.error());
  return target;
}

}  // namespace nhiguard
