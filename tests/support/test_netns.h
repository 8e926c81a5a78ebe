// A "remote" host for egress tests: a network namespace of the test's own, joined to the host by a
// veth pair (IPv4 10.201.N.0/24 and IPv6 fd00:6e68:N::/64), and a listener inside it that counts
// the TCP and UDP bytes it receives. Removed with everything in it when the objects die.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>

namespace nhiguard::testing {

class TestNetns {
 public:
  TestNetns();
  ~TestNetns();
  TestNetns(const TestNetns&) = delete;
  TestNetns& operator=(const TestNetns&) = delete;

  const std::string& name() const { return name_; }
  const std::string& remote_v4() const { return remote_v4_; }  // the namespace's address
  const std::string& remote_v6() const { return remote_v6_; }

 private:
  std::string name_;
  std::string host_if_;
  std::string remote_v4_;
  std::string remote_v6_;
};

// A child process inside the namespace: TCP (v4 and v6) accept loop and UDP (v4 and v6) sockets on
// `port`, adding every received byte to shared counters.
class TestListener {
 public:
  TestListener(const TestNetns& netns, uint16_t port);
  ~TestListener();
  TestListener(const TestListener&) = delete;
  TestListener& operator=(const TestListener&) = delete;

  uint64_t tcp_bytes() const;
  uint64_t udp_bytes() const;
  uint16_t port() const { return port_; }

 private:
  struct Counters {
    std::atomic<uint64_t> tcp;
    std::atomic<uint64_t> udp;
    std::atomic<int> ready;
  };
  Counters* counters_ = nullptr;
  pid_t pid_ = -1;
  uint16_t port_;
};

// Runs a shell command; throws with its output when it fails.
void run_command(const std::string& command);

}  // namespace nhiguard::testing
