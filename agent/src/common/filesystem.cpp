#include "common/filesystem.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace nhiguard {

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

Result<void> write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fail(Error::from_current_errno("create " + tmp));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Error error = Error::from_current_errno("write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(std::move(error));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Error error = Error::from_current_errno("fsync " + tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(std::move(error));
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error error = Error::from_current_errno("rename " + tmp + " to " + path);
    ::unlink(tmp.c_str());
    return fail(std::move(error));
  }
  // The rename is durable only once the directory entry is.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return fail(Error::from_current_errno("open directory " + dir));
  const int synced = ::fsync(dir_fd);
  const int saved = errno;
  ::close(dir_fd);
  if (synced != 0) return fail(Error::from_errno(saved, "fsync directory " + dir));
  return {};
}

}  // namespace nhiguard
