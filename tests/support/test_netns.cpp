#include "test_netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <thread>
#include <vector>

namespace nhiguard::testing {

void run_command(const std::string& command) {
  const std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen " + command);
  std::string output;
  char buffer[256];
  while (fgets(buffer, sizeof(buffer), pipe)) output += buffer;
  const int status = pclose(pipe);
  if (status != 0) throw std::runtime_error("'" + command + "' failed: " + output);
}

TestNetns::TestNetns() {
  const int n = static_cast<int>(getpid() % 200) + 20;
  name_ = "nhg-test-" + std::to_string(getpid());
  host_if_ = "nhgh" + std::to_string(getpid());
  const std::string peer_if = "nhgn" + std::to_string(getpid());
  remote_v4_ = "10.201." + std::to_string(n) + ".2";
  remote_v6_ = "fd00:6e68:" + std::to_string(n) + "::2";
  run_command("ip netns add " + name_);
  run_command("ip link add " + host_if_ + " type veth peer name " + peer_if);
  run_command("ip link set " + peer_if + " netns " + name_);
  run_command("ip addr add 10.201." + std::to_string(n) + ".1/24 dev " + host_if_);
  run_command("ip -6 addr add fd00:6e68:" + std::to_string(n) + "::1/64 dev " + host_if_ + " nodad");
  run_command("ip link set " + host_if_ + " up");
  run_command("ip -n " + name_ + " addr add " + remote_v4_ + "/24 dev " + peer_if);
  run_command("ip -n " + name_ + " -6 addr add " + remote_v6_ + "/64 dev " + peer_if + " nodad");
  run_command("ip -n " + name_ + " link set " + peer_if + " up");
  run_command("ip -n " + name_ + " link set lo up");
}

TestNetns::~TestNetns() {
  // Deleting the namespace removes its veth end, which removes the host end with it.
  std::system(("ip netns del " + name_ + " >/dev/null 2>&1").c_str());
  std::system(("ip link del " + host_if_ + " >/dev/null 2>&1").c_str());
}

namespace {

[[noreturn]] void listen_forever(const std::string& netns, uint16_t port, std::atomic<uint64_t>* tcp,
                                 std::atomic<uint64_t>* udp, std::atomic<int>* ready) {
  const std::string path = "/run/netns/" + netns;
  int ns = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) _exit(90);
  std::vector<pollfd> fds;
  std::vector<bool> is_listener;
  for (int family : {AF_INET, AF_INET6}) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      int fd = socket(family, type | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
      sockaddr_storage addr{};
      socklen_t len;
      if (family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&addr);
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        len = sizeof(*a);
      } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        len = sizeof(*a);
      }
      if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) _exit(91);
      if (type == SOCK_STREAM && listen(fd, 16) != 0) _exit(92);
      fds.push_back({fd, POLLIN, 0});
      is_listener.push_back(type == SOCK_STREAM);
    }
  }
  std::vector<bool> is_udp = {false, true, false, true};
  ready->store(1);
  char buffer[65536];
  for (;;) {
    if (poll(fds.data(), fds.size(), -1) < 0) continue;
    const size_t count = fds.size();
    for (size_t i = 0; i < count; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
      if (is_listener[i]) {
        int conn = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn >= 0) {
          fds.push_back({conn, POLLIN, 0});
          is_listener.push_back(false);
          is_udp.push_back(false);
        }
        continue;
      }
      ssize_t n = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      if (n > 0) {
        (is_udp[i] ? udp : tcp)->fetch_add(static_cast<uint64_t>(n));
      } else if (!is_udp[i]) {
        close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores negative fds
      }
    }
  }
}

}  // namespace

TestListener::TestListener(const TestNetns& netns, uint16_t port) : port_(port) {
  void* shared = mmap(nullptr, sizeof(Counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) throw std::runtime_error("mmap");
  counters_ = new (shared) Counters{};
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork");
  if (pid_ == 0) listen_forever(netns.name(), port, &counters_->tcp, &counters_->udp, &counters_->ready);
  for (int i = 0; i < 500 && counters_->ready.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (counters_->ready.load() == 0) throw std::runtime_error("listener did not start");
}

TestListener::~TestListener() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (counters_) munmap(counters_, sizeof(Counters));
}

uint64_t TestListener::tcp_bytes() const {
  return counters_->tcp.load();
}
uint64_t TestListener::udp_bytes() const {
  return counters_->udp.load();
}

}  // namespace nhiguard::testing
