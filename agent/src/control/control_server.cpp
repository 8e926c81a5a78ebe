#include "control/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/filesystem.h"
#include "control/control_peer.h"
#include "records/rollback_handle_record.h"

namespace nhiguard::control {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Responses queued for one connection beyond which the server stops reading its requests, so a
// client pipelining without reading cannot make the agent buffer without bound.
constexpr size_t kMaxPendingOutput = 1024 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(address.sun_path)) {
    return fail(Error{EINVAL, fmt::format("control socket path '{}' must be 1 to {} bytes long", path,
                                          sizeof(address.sun_path) - 1)});
  }
  std::copy(path.begin(), path.end(), address.sun_path);
  return address;
}

// A socket file already at `path`: leave a live agent's alone, remove a dead one's, and never
// remove something that is not a socket (a mistyped path must not delete a file).
Result<void> remove_stale_socket(const std::string& path, const sockaddr_un& address) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail(Error::from_current_errno("stat " + path));
  }
  if (!S_ISSOCK(st.st_mode)) return fail(Error{EEXIST, fmt::format("{} exists and is not a socket", path)});
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return fail(Error::from_current_errno("socket"));
  int rc = connect(probe, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  int err = errno;
  close(probe);
  if (rc == 0) {
    return fail(Error{EADDRINUSE, fmt::format("{} is in use: another nhiguard-agent is listening on it", path)});
  }
  if (err != ECONNREFUSED) return fail(Error::from_errno(err, "probe existing socket " + path));
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return fail(Error::from_current_errno("unlink stale " + path));
  spdlog::info("control: removed stale socket {}", path);
  return {};
}

ProtocolError handler_error(const Error& error) {
  return ProtocolError::from(error);
}

}  // namespace

struct ControlServer::Connection {
  int fd = -1;
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  bool allowed = false;
  std::optional<ledger::ControlPeer> peer;  // as described at accept; nullopt: /proc had nothing
  std::string in;                           // bytes received, not yet a complete line
  std::string out;                          // response bytes not yet sent
  bool closing = false;                     // answer what is queued, then close; read nothing more
  bool dead = false;                        // close now
  Clock::time_point last_activity = Clock::now();
};

Result<containment::RollbackHandle> ControlHandler::approve(std::string_view) {
  return fail(Error{ENOSYS, "approve is not offered here: this handler has no held actions"});
}

Result<containment::RollbackHandle> ControlHandler::reject(std::string_view) {
  return fail(Error{ENOSYS, "reject is not offered here: this handler has no held actions"});
}

Result<json> ControlHandler::learn(std::chrono::milliseconds) {
  return fail(Error{ENOSYS, "learn is not offered here"});
}

Result<json> ControlHandler::suggest() {
  return fail(Error{ENOSYS, "suggest is not offered here"});
}

Result<json> ControlHandler::set_mode(std::string_view) {
  return fail(Error{ENOSYS, "set_mode is not offered here"});
}

Result<json> ControlHandler::audit_trail() {
  return fail(Error{ENOSYS, "audit is not offered here"});
}

Result<void> ControlHandler::authorize(const Request&, const ledger::ControlPeer&) {
  return {};
}

void ControlHandler::audit(const Request&, const ledger::ControlPeer&, const json&) {}

namespace {
json dispatch_method(ControlHandler& handler, const Request& request);
}  // namespace

json dispatch_request(ControlHandler& handler, const Request& request, const ledger::ControlPeer* peer) {
  if (peer == nullptr || !changes_state(request.method)) return dispatch_method(handler, request);
  json response;
  try {
    if (auto allowed = handler.authorize(request, *peer); !allowed) {
      response = make_error_response(request.id, handler_error(allowed.error()));
    } else {
      ledger::ScopedControlPeer acting(*peer);
      response = dispatch_method(handler, request);
    }
  } catch (const std::exception& e) {
    response = make_error_response(
        request.id, {ErrorCode::internal, fmt::format("authorize {} failed: {}", to_string(request.method), e.what())});
  }
  try {
    handler.audit(request, *peer, response);
  } catch (const std::exception& e) {
    spdlog::error("control: audit of {} by {} failed: {}", to_string(request.method), describe(*peer), e.what());
  }
  return response;
}

namespace {
json dispatch_method(ControlHandler& handler, const Request& request) {
  auto action_result = [&](const Result<containment::RollbackHandle>& result) {
    if (!result) return make_error_response(request.id, handler_error(result.error()));
    return make_ok_response(request.id, {{"action", records::handle_to_json(*result)}});
  };
  auto object_result = [&](Result<json> result) {
    if (!result) return make_error_response(request.id, handler_error(result.error()));
    return make_ok_response(request.id, std::move(*result));
  };
  try {
    switch (request.method) {
      case Method::status: {
        auto result = handler.status();
        if (!result) return make_error_response(request.id, handler_error(result.error()));
        return make_ok_response(request.id, std::move(*result));
      }
      case Method::actions: {
        auto result = handler.actions(std::get<ActionsRequest>(request.params));
        if (!result) return make_error_response(request.id, handler_error(result.error()));
        json list = json::array();
        for (const auto& handle : *result) list.push_back(records::handle_to_json(handle));
        return make_ok_response(request.id, {{"actions", std::move(list)}});
      }
      case Method::contain:
        return action_result(handler.contain(std::get<ContainRequest>(request.params)));
      case Method::rollback:
        return action_result(handler.rollback(std::get<HandleRequest>(request.params).handle));
      case Method::approve:
        return action_result(handler.approve(std::get<HandleRequest>(request.params).handle));
      case Method::reject:
        return action_result(handler.reject(std::get<HandleRequest>(request.params).handle));
      case Method::learn:
        return object_result(handler.learn(std::get<LearnRequest>(request.params).duration));
      case Method::suggest:
        return object_result(handler.suggest());
      case Method::set_mode:
        return object_result(handler.set_mode(std::get<ModeRequest>(request.params).mode));
      case Method::audit:
        return object_result(handler.audit_trail());
    }
  } catch (const std::exception& e) {
    // The server thread must survive a handler bug; the client learns what happened.
    return make_error_response(
        request.id, {ErrorCode::internal, fmt::format("{} failed: {}", to_string(request.method), e.what())});
  }
  return make_error_response(request.id, {ErrorCode::internal, "unhandled method"});
}
}  // namespace

json handle_request_line(ControlHandler& handler, std::string_view line, const ledger::ControlPeer* peer) {
  auto request = parse_request(line);
  if (!request) return make_error_response(request.error().id, request.error().error);
  return dispatch_request(handler, *request, peer);
}

ControlServer::ControlServer(ControlServerOptions options, ControlHandler& handler)
    : options_(std::move(options)), handler_(handler) {}

ControlServer::~ControlServer() {
  stop();
}

Result<void> ControlServer::start() {
  if (running()) return fail(Error{EALREADY, "control server already started on " + options_.socket_path});
  auto address = unix_address(options_.socket_path);
  if (!address) return fail(address.error());

  const std::filesystem::path parent = std::filesystem::path(options_.socket_path).parent_path();
  if (!parent.empty()) {
    if (auto made = make_directories(parent.string(), 0700); !made) return fail(made.error());
  }
  if (auto removed = remove_stale_socket(options_.socket_path, *address); !removed) return fail(removed.error());

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(Error::from_current_errno("socket"));
  auto close_and_fail = [&](Error error) {
    close(fd);
    return fail(std::move(error));
  };
  if (bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof(*address)) != 0) {
    return close_and_fail(Error::from_current_errno("bind " + options_.socket_path));
  }
  // bind() applied the process umask; the socket is root-only whatever that was. The window between
  // the two calls is covered by the 0700 directory the agent creates.
  if (chmod(options_.socket_path.c_str(), 0600) != 0) {
    Error error = Error::from_current_errno("chmod 0600 " + options_.socket_path);
    unlink(options_.socket_path.c_str());
    return close_and_fail(std::move(error));
  }
  struct stat st{};
  if (stat(options_.socket_path.c_str(), &st) == 0) {
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
  }
  if (listen(fd, 16) != 0) {
    Error error = Error::from_current_errno("listen " + options_.socket_path);
    unlink(options_.socket_path.c_str());
    return close_and_fail(std::move(error));
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    Error error = Error::from_current_errno("eventfd");
    unlink(options_.socket_path.c_str());
    return close_and_fail(std::move(error));
  }
  listen_fd_ = fd;
  wake_fd_ = wake;
  thread_ = std::thread([this] { serve(); });
  spdlog::info("control: listening on {}", options_.socket_path);
  return {};
}

void ControlServer::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  // The eventfd counter cannot overflow from one write; a failure here would only mean the fd is
  // gone, which cannot happen while the thread runs.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
  struct stat st{};
  if (stat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_) {
    unlink(options_.socket_path.c_str());
  }
}

void ControlServer::serve() {
  std::vector<Connection> connections;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    auto now = Clock::now();
    auto next_deadline = Clock::time_point::max();
    for (auto& c : connections) {
      short events = 0;
      if (!c.closing && c.out.size() <= kMaxPendingOutput) events |= POLLIN;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd, events, 0});
      next_deadline = std::min(next_deadline, c.last_activity + options_.idle_timeout);
    }
    int timeout_ms = -1;
    if (next_deadline != Clock::time_point::max()) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(next_deadline - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(wait, 0, 60'000));
    }
    int ready = poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      spdlog::error("control: poll failed: {}", std::strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;  // stop()

    // Connections first (their pollfds are at 2.. in the same order), then new ones, so the
    // indices still match.
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      short revents = fds[i + 2].revents;
      if (revents & (POLLIN | POLLHUP | POLLERR)) read_from(c);
      if (!c.dead && (revents & POLLOUT)) flush(c);
      if (!c.dead) process_lines(c);                  // lines held back while output was full
      if (c.closing && c.out.empty()) c.dead = true;  // everything answered
      if (!c.dead && Clock::now() - c.last_activity >= options_.idle_timeout) {
        spdlog::debug("control: closing idle connection of pid {}", c.pid);
        c.dead = true;
      }
    }
    std::erase_if(connections, [](const Connection& c) {
      if (c.dead) close(c.fd);
      return c.dead;
    });
    if (fds[1].revents & POLLIN) accept_connections(connections);
  }
  for (auto& c : connections) close(c.fd);
}

void ControlServer::accept_connections(std::vector<Connection>& connections) {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (errno == ECONNABORTED) continue;
      // EMFILE and friends: leave the connection in the backlog and try again on the next round.
      spdlog::warn("control: accept on {} failed: {}", options_.socket_path, std::strerror(errno));
      return;
    }
    Connection c;
    c.fd = fd;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
      c.uid = cred.uid;
      c.gid = cred.gid;
      c.pid = cred.pid;
      c.allowed = std::find(options_.allowed_uids.begin(), options_.allowed_uids.end(), cred.uid) !=
                  options_.allowed_uids.end();
    } else {
      spdlog::warn("control: cannot read peer credentials: {}", std::strerror(errno));
    }
    if (connections.size() >= options_.max_connections) {
      // Best effort: one line the client can show, then close. The socket buffer is empty, so a
      // short line fits without blocking.
      std::string line = to_line(make_error_response(
          std::nullopt, {ErrorCode::unavailable, fmt::format("too many control connections (at most {}); try again",
                                                             options_.max_connections)}));
      [[maybe_unused]] ssize_t n = send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    if (!c.allowed) {
      spdlog::warn("control: refusing connection from uid {} pid {}", c.uid, c.pid);
    } else if (auto peer = describe_peer(c.pid, c.uid, c.gid); peer) {
      c.peer = std::move(*peer);
    } else {
      spdlog::warn("control: connection from uid {}: {} (state-changing requests on it are refused)", c.uid,
                   peer.error().message);
    }
    connections.push_back(std::move(c));
  }
}

void ControlServer::read_from(Connection& c) {
  char buffer[kReadChunk];
  for (;;) {
    if (c.closing || c.out.size() > kMaxPendingOutput) return;
    ssize_t n = recv(c.fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) {
      c.last_activity = Clock::now();
      c.in.append(buffer, static_cast<size_t>(n));
      process_lines(c);
      continue;
    }
    if (n == 0) {
      // The client is done sending (it may have half-closed and still wait for answers). A partial
      // last line is discarded: it was never a request.
      c.in.clear();
      c.closing = true;
      if (c.out.empty()) c.dead = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) c.dead = true;  // ECONNRESET and the like
    return;
  }
}

void ControlServer::process_lines(Connection& c) {
  while (!c.closing && !c.dead && c.out.size() <= kMaxPendingOutput) {
    size_t newline = c.in.find('\n');
    if (newline == std::string::npos) {
      if (c.in.size() > kMaxRequestLineBytes) {
        // No newline within the limit: answer and close rather than buffer further.
        respond(
            c, make_error_response(std::nullopt, {ErrorCode::invalid_argument,
                                                  fmt::format("request line exceeds {} bytes", kMaxRequestLineBytes)}));
        c.in.clear();
        c.closing = true;
      }
      return;
    }
    std::string line = c.in.substr(0, newline);
    c.in.erase(0, newline + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > kMaxRequestLineBytes) {
      respond(c,
              make_error_response(std::nullopt, {ErrorCode::invalid_argument,
                                                 fmt::format("request line exceeds {} bytes", kMaxRequestLineBytes)}));
      c.in.clear();
      c.closing = true;
      return;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are not requests

    if (!c.allowed) {
      // Parse only to echo the id; nothing is dispatched for a peer that is not allowed.
      auto request = parse_request(line);
      std::optional<uint64_t> id = request ? std::optional<uint64_t>(request->id) : request.error().id;
      respond(c, make_error_response(
                     id, {ErrorCode::refused, fmt::format("uid {} may not use the control socket (allowed: root only "
                                                          "unless configured)",
                                                          c.uid)}));
      c.in.clear();
      c.closing = true;
      return;
    }
    respond(c, serve_request(c, line));
  }
}

json ControlServer::serve_request(Connection& c, std::string_view line) {
  auto request = parse_request(line);
  if (!request) return make_error_response(request.error().id, request.error().error);
  if (!changes_state(request->method)) return dispatch_request(handler_, *request);
  // The peer as it is now: its cgroup may have changed since connect(), and a pid whose start time
  // differs is another process that took the number of one that exited.
  auto now = describe_peer(c.pid, c.uid, c.gid);
  std::string problem;
  if (!c.peer) {
    problem = fmt::format("pid {} could not be identified when it connected", c.pid);
  } else if (!now) {
    problem = now.error().message;
  } else if (now->start_time_ticks != c.peer->start_time_ticks) {
    problem = fmt::format("pid {} is no longer the process that connected", c.pid);
  }
  if (!problem.empty()) {
    ledger::ControlPeer unknown = c.peer.value_or(ledger::ControlPeer{
        .pid = static_cast<int32_t>(c.pid), .uid = static_cast<uint32_t>(c.uid), .gid = static_cast<uint32_t>(c.gid)});
    unknown.cgroup.clear();  // not known to be anywhere: the guard and the audit say so
    json response = make_error_response(
        request->id, {ErrorCode::refused, fmt::format("{} refused: the requesting process cannot be identified ({})",
                                                      to_string(request->method), problem)});
    handler_.audit(*request, unknown, response);
    return response;
  }
  return dispatch_request(handler_, *request, &*now);
}

void ControlServer::respond(Connection& c, const json& response) {
  requests_served_.fetch_add(1, std::memory_order_relaxed);
  c.out += to_line(response);
  c.last_activity = Clock::now();
  flush(c);
}

void ControlServer::flush(Connection& c) {
  while (!c.out.empty()) {
    ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      c.last_activity = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // POLLOUT will call again
    c.dead = true;                                                   // EPIPE / ECONNRESET: the client went away
    return;
  }
  if (c.closing) {
    // Everything answered: close. Unread request bytes make the kernel reset the peer, which is
    // fine: the client reads our line first.
    c.dead = true;
  }
}

}  // namespace nhiguard::control
