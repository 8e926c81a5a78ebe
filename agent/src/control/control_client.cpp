#include "control/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "config/duration.h"

namespace nhiguard::control {
namespace {

using Clock = std::chrono::steady_clock;

// Owns one fd; closes it on every return path.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

std::string connect_hint(int err) {
  switch (err) {
    case ENOENT:
    case ECONNREFUSED:
      return " — is nhiguard-agent running?";
    case EACCES:
    case EPERM:
      return " — need root";
    case EAGAIN:
      return " — the agent is busy; try again";
    default:
      return "";
  }
}

// Milliseconds left until `deadline`, for poll(); 0 once it has passed.
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, INT32_MAX));
}

}  // namespace

ControlClient::ControlClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<std::string> ControlClient::exchange_line(std::string_view request_line) {
  const auto deadline = Clock::now() + timeout_;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.empty() || socket_path_.size() >= sizeof(address.sun_path)) {
    return fail(Error{ENAMETOOLONG, fmt::format("cannot connect to {}: the path must be 1 to {} bytes long",
                                                socket_path_, sizeof(address.sun_path) - 1)});
  }
  std::copy(socket_path_.begin(), socket_path_.end(), address.sun_path);

  Fd sock{socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (sock.fd < 0) return fail(Error::from_current_errno("socket"));
  // A unix connect never waits for a handshake: it succeeds, or fails at once (EAGAIN when the
  // listener's backlog is full).
  if (connect(sock.fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    int err = errno;
    return fail(
        Error{err, fmt::format("cannot connect to {}: {}{}", socket_path_, std::strerror(err), connect_hint(err))});
  }

  const std::string timeout_text = config::format_duration(timeout_);
  auto timed_out = [&](std::string_view doing) {
    return fail(Error{
        ETIMEDOUT, fmt::format("no response from the agent on {} within {} ({})", socket_path_, timeout_text, doing)});
  };

  std::string out(request_line);
  out.push_back('\n');
  size_t sent = 0;
  while (sent < out.size()) {
    ssize_t n = send(sock.fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{sock.fd, POLLOUT, 0};
      if (poll(&p, 1, remaining_ms(deadline)) == 0) return timed_out("sending the request");
      continue;
    }
    // EPIPE / ECONNRESET: the agent closed early, typically after answering with an error (a
    // refused peer, an oversized request). That answer is still readable: go and read it.
    break;
  }

  std::string in;
  char buffer[16 * 1024];
  for (;;) {
    size_t newline = in.find('\n');
    if (newline != std::string::npos) {
      in.resize(newline);
      return in;
    }
    if (in.size() > kMaxResponseLineBytes) {
      return fail(Error{
          EPROTO, fmt::format("response from the agent on {} exceeds {} bytes", socket_path_, kMaxResponseLineBytes)});
    }
    ssize_t n = recv(sock.fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      in.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return fail(
          Error{ECONNRESET, fmt::format("the agent on {} closed the connection without a response", socket_path_)});
    }
    if (errno == EINTR) continue;
    pollfd p{sock.fd, POLLIN, 0};
    int ready = poll(&p, 1, remaining_ms(deadline));
    if (ready == 0) return timed_out("waiting for the response");
    if (ready < 0 && errno != EINTR) return fail(Error::from_current_errno("poll " + socket_path_));
  }
}

Result<Response> ControlClient::call(Method method, const nlohmann::json& params) {
  const uint64_t id = next_id_++;
  std::string request = to_line(make_request(id, method, params));
  request.pop_back();  // exchange_line adds the '\n'
  auto line = exchange_line(request);
  if (!line) return fail(line.error());
  auto response = parse_response(*line);
  if (!response) return fail(response.error());
  // A null id is legitimate only on errors about the request line itself.
  if (response->id && *response->id != id) {
    return fail(Error{EPROTO, fmt::format("response from the agent carries id {}, expected {}", *response->id, id)});
  }
  return response;
}

}  // namespace nhiguard::control
