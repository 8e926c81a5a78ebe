// ControlServer and ControlClient over a real unix socket in a temporary directory, with real
// threads; only the handler behind the server is a fake. Runs as any user: the allowed uid set is
// the test's own uid (or, for the refusal test, a set that excludes it).
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/control_client.h"
#include "control/control_server.h"

using namespace nhiguard;
using namespace nhiguard::control;
using nlohmann::json;

namespace {

constexpr const char* kHandle = "rb_01ARZ3NDEKTSV4RRFFQ69G5FAV";

containment::RollbackHandle make_handle(std::string id, containment::ActionKind kind, std::string reason) {
  containment::RollbackHandle h;
  h.handle = std::move(id);
  h.action = kind;
  h.state = containment::ActionState::active;
  h.target.unit = "payments.service";
  h.target.cgroup_path = "/system.slice/payments.service";
  h.rule = "manual";
  h.reason = std::move(reason);
  h.created_at_ns = 1'700'000'000'000'000'000;
  h.expires_at_ns = h.created_at_ns + 900'000'000'000;
  h.updated_at_ns = h.created_at_ns;
  return h;
}

// Records what the server asked for; answers from canned values. Called on the server thread,
// read by the test thread: hence the mutex.
class FakeHandler : public ControlHandler {
 public:
  Result<json> status() override {
    std::lock_guard lock(mutex_);
    ++calls_;
    return json{{"version", "test"}, {"mode", "enforce"}};
  }
  Result<std::vector<containment::RollbackHandle>> actions(const ActionsRequest& request) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    last_actions_ = request;
    return std::vector{make_handle(kHandle, containment::ActionKind::freeze, "first")};
  }
  Result<containment::RollbackHandle> contain(const ContainRequest& request) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    last_contain_ = request;
    if (request.target.unit == "protected.service") return fail(Error{EPERM, "protected.service is protected"});
    if (request.target.unit == "throws.service") throw std::runtime_error("boom");
    return make_handle(kHandle, request.action, request.reason);
  }
  Result<containment::RollbackHandle> rollback(std::string_view handle) override {
    std::lock_guard lock(mutex_);
    ++calls_;
    if (handle != kHandle) return fail(Error{ENOENT, "no action with handle " + std::string(handle)});
    auto h = make_handle(std::string(handle), containment::ActionKind::block_egress, "first");
    h.state = containment::ActionState::rolled_back;
    return h;
  }

  int calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  ContainRequest last_contain() {
    std::lock_guard lock(mutex_);
    return last_contain_;
  }
  ActionsRequest last_actions() {
    std::lock_guard lock(mutex_);
    return last_actions_;
  }

 private:
  std::mutex mutex_;
  int calls_ = 0;
  ContainRequest last_contain_;
  ActionsRequest last_actions_;
};

// A raw client socket, for what ControlClient deliberately cannot do (partial lines, pipelining).
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::copy(path.begin(), path.end(), address.sun_path);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    timeval tv{5, 0};  // a broken server fails the test instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConnection() { close(); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // The next line, or nullopt on EOF / error / timeout.
  std::optional<std::string> read_line() {
    for (;;) {
      auto newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      char chunk[4096];
      ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  json read_response() {
    auto line = read_line();
    if (!line) return json();
    return json::parse(*line, nullptr, false);
  }
  // True when the server closed the connection (EOF, or a reset after its last line).
  bool at_eof() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

class ControlServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/nhg-ctl-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    // A parent that does not exist yet: start() must create it 0700.
    socket_path_ = dir_ + "/run/agent.sock";
  }
  void TearDown() override {
    if (server_) server_->stop();
    std::filesystem::remove_all(dir_);
  }

  ControlServer& start_server(std::vector<uid_t> allowed = {getuid()}) {
    ControlServerOptions options;
    options.socket_path = socket_path_;
    options.allowed_uids = std::move(allowed);
    server_ = std::make_unique<ControlServer>(options, handler_);
    auto started = server_->start();
    EXPECT_TRUE(started.has_value()) << started.error().message;
    return *server_;
  }

  ControlClient client() { return ControlClient(socket_path_, std::chrono::seconds(5)); }

  std::string dir_;
  std::string socket_path_;
  FakeHandler handler_;
  std::unique_ptr<ControlServer> server_;
};

std::string request_line(uint64_t id, std::string_view method, json params = nullptr) {
  json request = {{"id", id}, {"method", method}};
  if (!params.is_null()) request["params"] = std::move(params);
  return request.dump() + "\n";
}

}  // namespace

TEST_F(ControlServerTest, SocketIsRootOnlyFileInPrivateDirectory) {
  start_server();
  struct stat st{};
  ASSERT_EQ(stat(socket_path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((dir_ + "/run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  server_->stop();
  EXPECT_FALSE(std::filesystem::exists(socket_path_)) << "stop() removes its socket";
  server_->stop();  // idempotent
}

TEST_F(ControlServerTest, StatusActionsContainRollbackThroughTheClient) {
  start_server();
  auto c = client();

  auto status = c.call(Method::status);
  ASSERT_TRUE(status.has_value()) << status.error().message;
  ASSERT_TRUE(status->ok);
  EXPECT_EQ(status->result["mode"], "enforce");

  auto actions = c.call(Method::actions, to_params(ActionsRequest{containment::ActionState::active, 7}));
  ASSERT_TRUE(actions.has_value()) << actions.error().message;
  ASSERT_TRUE(actions->ok) << actions->error.message;
  ASSERT_EQ(actions->result["actions"].size(), 1u);
  // The contract's action object, with every field it promises.
  const json& a = actions->result["actions"][0];
  for (const char* field : {"handle", "action", "state", "target", "rule", "reason", "created_at", "expires_at"}) {
    EXPECT_TRUE(a.contains(field)) << field;
  }
  EXPECT_EQ(handler_.last_actions().state, containment::ActionState::active);
  EXPECT_EQ(handler_.last_actions().limit, 7u);

  ContainRequest request;
  request.action = containment::ActionKind::block_egress;
  request.target.unit = "payments.service";
  request.target.destinations = {"192.0.2.0/24:443"};
  request.ttl = std::chrono::minutes(5);
  request.reason = "token replay";
  auto contained = c.call(Method::contain, to_params(request));
  ASSERT_TRUE(contained.has_value()) << contained.error().message;
  ASSERT_TRUE(contained->ok) << contained->error.message;
  EXPECT_EQ(contained->result["action"]["handle"], kHandle);
  EXPECT_EQ(contained->result["action"]["action"], "block_egress");
  const ContainRequest seen = handler_.last_contain();
  EXPECT_EQ(seen.target.unit, "payments.service");
  EXPECT_EQ(seen.target.destinations, request.target.destinations);
  EXPECT_EQ(seen.ttl, std::chrono::minutes(5));
  EXPECT_EQ(seen.reason, "token replay");

  auto rolled_back = c.call(Method::rollback, to_params(HandleRequest{kHandle}));
  ASSERT_TRUE(rolled_back.has_value()) << rolled_back.error().message;
  ASSERT_TRUE(rolled_back->ok);
  EXPECT_EQ(rolled_back->result["action"]["state"], "rolled_back");
  EXPECT_EQ(server_->requests_served(), 4u);
}

TEST_F(ControlServerTest, HandlerErrorsBecomeProtocolCodes) {
  start_server();
  auto c = client();

  auto missing = c.call(Method::rollback, to_params(HandleRequest{"rb_01ARZ3NDEKTSV4RRFFQ69G5FAW"}));
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->ok);
  EXPECT_EQ(missing->error.code, ErrorCode::not_found);
  EXPECT_EQ(missing->error.message, "no action with handle rb_01ARZ3NDEKTSV4RRFFQ69G5FAW");

  ContainRequest request;
  request.action = containment::ActionKind::freeze;
  request.target.unit = "protected.service";
  request.ttl = std::chrono::minutes(1);
  request.reason = "r";
  auto refused = c.call(Method::contain, to_params(request));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->error.code, ErrorCode::refused);

  request.target.unit = "throws.service";
  auto thrown = c.call(Method::contain, to_params(request));
  ASSERT_TRUE(thrown.has_value());
  EXPECT_EQ(thrown->error.code, ErrorCode::internal);
  EXPECT_EQ(thrown->error.message, "contain failed: boom");

  // approve/reject are not implemented by this handler: the base class answers unavailable.
  auto approve = c.call(Method::approve, to_params(HandleRequest{kHandle}));
  ASSERT_TRUE(approve.has_value());
  EXPECT_EQ(approve->error.code, ErrorCode::unavailable);

  // Invalid requests never reach the handler.
  const int before = handler_.calls();
  auto bad = c.call(Method::rollback, json{{"handle", "rb_nope"}});
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->error.code, ErrorCode::invalid_argument);
  EXPECT_EQ(handler_.calls(), before);

  // And the server is still fine after all of it.
  auto status = c.call(Method::status);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->ok);
}

TEST_F(ControlServerTest, ManyRequestsOnOneConnectionAnsweredInOrder) {
  start_server();
  RawConnection raw(socket_path_);
  ASSERT_TRUE(raw.connected());
  // Pipelined in one write, plus a blank line and a CRLF line, which are tolerated.
  std::string batch;
  for (uint64_t id = 1; id <= 20; ++id) batch += request_line(id, id % 2 ? "status" : "actions");
  batch += "\n";
  batch += R"({"id": 21, "method": "status"})"
           "\r\n";
  ASSERT_TRUE(raw.send_all(batch));
  for (uint64_t id = 1; id <= 21; ++id) {
    json response = raw.read_response();
    ASSERT_TRUE(response.is_object()) << id;
    EXPECT_EQ(response["id"], id);
    EXPECT_EQ(response["ok"], true) << response.dump();
  }
  // Then one more, after the others were answered.
  ASSERT_TRUE(raw.send_all(request_line(22, "status")));
  EXPECT_EQ(raw.read_response()["id"], 22);
}

TEST_F(ControlServerTest, SeveralConnectionsOneAfterAnother) {
  start_server();
  for (int i = 0; i < 10; ++i) {
    auto c = client();
    auto response = c.call(Method::status);
    ASSERT_TRUE(response.has_value()) << i << ": " << response.error().message;
    EXPECT_TRUE(response->ok);
  }
  EXPECT_EQ(handler_.calls(), 10);
}

TEST_F(ControlServerTest, UnknownMethodIsAnErrorWithTheId) {
  start_server();
  auto line = client().exchange_line(R"({"id": 41, "method": "frobnicate"})");
  ASSERT_TRUE(line.has_value()) << line.error().message;
  json response = json::parse(*line);
  EXPECT_EQ(response["id"], 41);
  EXPECT_EQ(response["ok"], false);
  EXPECT_EQ(response["error"]["code"], "invalid_argument");
  EXPECT_EQ(response["error"]["message"], "unknown method 'frobnicate'");
}

TEST_F(ControlServerTest, MalformedJsonIsAnsweredAndServingGoesOn) {
  start_server();
  {
    RawConnection raw(socket_path_);
    ASSERT_TRUE(raw.send_all("{\"id\": 1, \"method\": \n"));
    json response = raw.read_response();
    EXPECT_TRUE(response["id"].is_null());
    EXPECT_EQ(response["error"]["code"], "invalid_argument");
    EXPECT_EQ(response["error"]["message"], "request is not valid JSON");
    // Same connection, next request: still served.
    ASSERT_TRUE(raw.send_all(request_line(2, "status")));
    EXPECT_EQ(raw.read_response()["ok"], true);
  }
  // And a new connection.
  auto response = client().call(Method::status);
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_TRUE(response->ok);
}

TEST_F(ControlServerTest, OversizedLineGetsAnErrorAndTheConnectionCloses) {
  start_server();
  {
    RawConnection raw(socket_path_);
    // Over the limit with no newline at all: the server must not wait for one.
    ASSERT_TRUE(raw.send_all(std::string(kMaxRequestLineBytes + 100, 'a')));
    json response = raw.read_response();
    EXPECT_EQ(response["ok"], false);
    EXPECT_EQ(response["error"]["code"], "invalid_argument");
    EXPECT_EQ(response["error"]["message"], "request line exceeds 65536 bytes");
    EXPECT_TRUE(raw.at_eof());
  }
  {
    // Over the limit with a newline, through the client: the answer is still readable even though
    // the server closed while the client was sending.
    std::string huge = R"({"id": 1, "method": "status", "pad": ")" + std::string(200 * 1024, 'x') + "\"}";
    auto line = client().exchange_line(huge);
    ASSERT_TRUE(line.has_value()) << line.error().message;
    EXPECT_EQ(json::parse(*line)["error"]["message"], "request line exceeds 65536 bytes");
  }
  auto response = client().call(Method::status);
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_TRUE(response->ok);
}

TEST_F(ControlServerTest, ClientLeavingMidLineDoesNotDisturbOthers) {
  start_server();
  RawConnection steady(socket_path_);
  ASSERT_TRUE(steady.connected());
  {
    RawConnection leaver(socket_path_);
    ASSERT_TRUE(leaver.send_all(R"({"id": 1, "meth)"));
  }  // closed mid-line
  RawConnection stalled(socket_path_);
  ASSERT_TRUE(stalled.send_all(R"({"id": 5, "method": "sta)"));  // and never finishes

  ASSERT_TRUE(steady.send_all(request_line(3, "status")));
  json response = steady.read_response();
  EXPECT_EQ(response["id"], 3);
  EXPECT_EQ(response["ok"], true);
  auto other = client().call(Method::status);
  ASSERT_TRUE(other.has_value()) << other.error().message;
  EXPECT_TRUE(other->ok);
  EXPECT_EQ(handler_.calls(), 2) << "the partial lines were never dispatched";
}

TEST_F(ControlServerTest, PeerWithUidOutsideTheAllowedSetIsRefused) {
  start_server({getuid() + 1});
  auto response = client().call(Method::status);
  ASSERT_TRUE(response.has_value()) << response.error().message;
  EXPECT_FALSE(response->ok);
  EXPECT_EQ(response->error.code, ErrorCode::refused);
  EXPECT_NE(response->error.message.find("uid " + std::to_string(getuid())), std::string::npos)
      << response->error.message;
  EXPECT_EQ(handler_.calls(), 0);
}

TEST_F(ControlServerTest, StopWhileAClientIsConnected) {
  start_server();
  RawConnection idle(socket_path_);
  ASSERT_TRUE(idle.connected());
  ASSERT_TRUE(idle.send_all(request_line(1, "status")));
  EXPECT_EQ(idle.read_response()["ok"], true);
  RawConnection partial(socket_path_);
  ASSERT_TRUE(partial.send_all("{\"id\":"));

  auto begin = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(2));
  EXPECT_FALSE(server_->running());
  EXPECT_TRUE(idle.at_eof());
  EXPECT_TRUE(partial.at_eof());

  auto after = client().call(Method::status);
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code, ENOENT);
}

TEST_F(ControlServerTest, StaleSocketIsReplacedButALiveOneOrAFileIsNot) {
  // A socket file left by a dead agent: bound, then closed.
  std::filesystem::create_directories(dir_ + "/run");
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::copy(socket_path_.begin(), socket_path_.end(), address.sun_path);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    close(fd);
  }
  ASSERT_TRUE(std::filesystem::exists(socket_path_));
  start_server();
  EXPECT_TRUE(client().call(Method::status).has_value());

  // A second server on the same path while the first is alive.
  ControlServerOptions options;
  options.socket_path = socket_path_;
  options.allowed_uids = {getuid()};
  ControlServer second(options, handler_);
  auto started = second.start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, EADDRINUSE);
  EXPECT_TRUE(client().call(Method::status).has_value()) << "the first server is untouched";

  // A regular file at the path is never deleted.
  const std::string file_path = dir_ + "/not-a-socket";
  {
    std::FILE* f = std::fopen(file_path.c_str(), "w");
    std::fclose(f);
  }
  options.socket_path = file_path;
  ControlServer third(options, handler_);
  auto refused = third.start();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, EEXIST);
  EXPECT_TRUE(std::filesystem::exists(file_path));
}

TEST_F(ControlServerTest, ClientErrorsSayWhatToDo) {
  auto missing = client().call(Method::status);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_EQ(missing.error().message,
            "cannot connect to " + socket_path_ + ": No such file or directory — is nhiguard-agent running?");

  // A listener that never answers: the client gives up at its deadline.
  std::filesystem::create_directories(dir_ + "/run");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::copy(socket_path_.begin(), socket_path_.end(), address.sun_path);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  ControlClient slow(socket_path_, std::chrono::milliseconds(200));
  auto begin = std::chrono::steady_clock::now();
  auto timed_out = slow.call(Method::status);
  auto took = std::chrono::steady_clock::now() - begin;
  close(fd);
  ASSERT_FALSE(timed_out.has_value());
  EXPECT_EQ(timed_out.error().code, ETIMEDOUT);
  EXPECT_NE(timed_out.error().message.find("within 200ms"), std::string::npos) << timed_out.error().message;
  EXPECT_GE(took, std::chrono::milliseconds(150));
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(ControlDispatch, HandleRequestLineWithoutASocket) {
  FakeHandler handler;
  json ok = handle_request_line(handler, R"({"id": 8, "method": "actions", "params": {"limit": 2}})");
  EXPECT_EQ(ok["id"], 8);
  EXPECT_EQ(ok["ok"], true);
  EXPECT_EQ(ok["result"]["actions"][0]["action"], "freeze");
  json bad = handle_request_line(handler, "42");
  EXPECT_EQ(bad["ok"], false);
  EXPECT_EQ(bad["error"]["message"], "request must be an object, not an integer");
}
