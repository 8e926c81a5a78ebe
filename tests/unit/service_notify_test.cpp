// notify_service_manager against real AF_UNIX datagram sockets (a path in a temporary directory
// and an abstract name), the way systemd listens for sd_notify messages. Runs as any user.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/service_notify.h"

using namespace nhiguard;

namespace {

// A bound datagram socket standing in for the service manager's notify socket.
class NotifyListener {
 public:
  explicit NotifyListener(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, name.data(), name.size());
    const bool abstract = name.starts_with('@');
    if (abstract) address.sun_path[0] = '\0';
    const auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 0 : 1));
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) != 0) throw std::runtime_error("bind " + name);
    timeval timeout{.tv_sec = 5, .tv_usec = 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifyListener() { ::close(fd_); }

  std::string receive() {
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n < 0 ? std::string("<recv failed>") : std::string(buffer, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
};

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("nhiguard-notify-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    const char* saved = std::getenv("NOTIFY_SOCKET");
    saved_ = saved ? std::optional<std::string>(saved) : std::nullopt;
  }
  void TearDown() override {
    if (saved_)
      setenv("NOTIFY_SOCKET", saved_->c_str(), 1);
    else
      unsetenv("NOTIFY_SOCKET");
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::optional<std::string> saved_;
};

TEST_F(ServiceNotifyTest, SendsTheStateToAPathSocket) {
  const std::string path = (dir_ / "notify").string();
  NotifyListener listener(path);
  ASSERT_TRUE(notify_service_manager(path, "READY=1\nSTATUS=sensor attached").has_value());
  EXPECT_EQ(listener.receive(), "READY=1\nSTATUS=sensor attached");
}

TEST_F(ServiceNotifyTest, SendsTheStateToAnAbstractSocket) {
  const std::string name = "@nhiguard-notify-test-" + std::to_string(getpid());
  NotifyListener listener(name);
  ASSERT_TRUE(notify_service_manager(name, "STOPPING=1").has_value());
  EXPECT_EQ(listener.receive(), "STOPPING=1");
}

TEST_F(ServiceNotifyTest, UsesNotifySocketFromTheEnvironment) {
  const std::string path = (dir_ / "env-notify").string();
  NotifyListener listener(path);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  auto sent = notify_service_manager("READY=1");
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  EXPECT_TRUE(*sent);
  EXPECT_EQ(listener.receive(), "READY=1");
}

TEST_F(ServiceNotifyTest, DoesNothingWithoutNotifySocket) {
  unsetenv("NOTIFY_SOCKET");
  auto sent = notify_service_manager("READY=1");
  ASSERT_TRUE(sent.has_value());
  EXPECT_FALSE(*sent);
  setenv("NOTIFY_SOCKET", "", 1);
  sent = notify_service_manager("READY=1");
  ASSERT_TRUE(sent.has_value());
  EXPECT_FALSE(*sent);
}

TEST_F(ServiceNotifyTest, NamesTheSocketWhenNobodyListens) {
  const std::string path = (dir_ / "nobody").string();
  auto sent = notify_service_manager(path, "READY=1");
  ASSERT_FALSE(sent.has_value());
  EXPECT_EQ(sent.error().code, ENOENT);
  EXPECT_NE(sent.error().message.find(path), std::string::npos) << sent.error().message;
}

TEST_F(ServiceNotifyTest, RejectsMalformedSocketNames) {
  for (const std::string& bad : std::vector<std::string>{"relative/notify", "@", "x", std::string(200, '/')}) {
    auto sent = notify_service_manager(bad, "READY=1");
    ASSERT_FALSE(sent.has_value()) << bad;
    EXPECT_TRUE(sent.error().code == EINVAL || sent.error().code == ENAMETOOLONG)
        << bad << ": " << sent.error().message;
  }
}

}  // namespace
