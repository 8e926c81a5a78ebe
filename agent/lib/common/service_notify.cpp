#include "common/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace nhiguard {

Result<void> notify_service_manager(std::string_view notify_socket, std::string_view state) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // An abstract name has no terminating NUL and is not NUL-padded: its length is part of the name.
  const bool abstract = notify_socket.starts_with('@');
  if (notify_socket.size() < 2 || !(abstract || notify_socket.starts_with('/'))) {
    return fail(Error{EINVAL, "NOTIFY_SOCKET '" + std::string(notify_socket) +
                                  "' is neither an absolute path nor an @abstract name"});
  }
  if (notify_socket.size() >= sizeof(address.sun_path)) {
    return fail(
        Error{ENAMETOOLONG, "NOTIFY_SOCKET '" + std::string(notify_socket) + "' is longer than a socket address"});
  }
  std::memcpy(address.sun_path, notify_socket.data(), notify_socket.size());
  if (abstract) address.sun_path[0] = '\0';
  const auto address_size =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_socket.size() + (abstract ? 0 : 1));

  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(Error::from_current_errno("socket(AF_UNIX) for NOTIFY_SOCKET"));
  const ssize_t sent =
      ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&address), address_size);
  const int send_errno = errno;
  ::close(fd);
  if (sent < 0) return fail(Error::from_errno(send_errno, "notify service manager at " + std::string(notify_socket)));
  if (static_cast<size_t>(sent) != state.size()) {
    return fail(Error{EMSGSIZE, "notify service manager at " + std::string(notify_socket) + ": datagram truncated"});
  }
  return {};
}

Result<bool> notify_service_manager(std::string_view state) {
  const char* notify_socket = std::getenv("NOTIFY_SOCKET");
  if (notify_socket == nullptr || *notify_socket == '\0') return false;
  if (auto sent = notify_service_manager(notify_socket, state); !sent) return fail(std::move(sent.error()));
  return true;
}

}  // namespace nhiguard
