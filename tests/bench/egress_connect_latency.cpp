// connect() and sendto() latency as the cgroup egress hooks see them: a loopback TCP listener (a
// thread that accepts and closes) and N timed connect() calls on fresh sockets, or N timed
// unconnected UDP sendto() calls (the sendmsg4 hook). Prints one key=value line of percentiles in
// ns. Usage: egress_connect_latency [--mode tcp|udp] [--iterations N] [--cpu C]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t percentile(std::vector<uint64_t>& sorted, double p) {
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = "tcp";
  size_t iterations = 20000;
  int cpu = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mode"))
      mode = argv[i + 1];
    else if (!std::strcmp(argv[i], "--iterations"))
      iterations = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--cpu"))
      cpu = std::atoi(argv[i + 1]);
  }
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
  }
  const int type = mode == "udp" ? SOCK_DGRAM : SOCK_STREAM;
  int server = socket(AF_INET, type, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(server, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(server, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("bind");
    return 1;
  }
  std::atomic<bool> stop{false};
  std::thread acceptor;
  if (type == SOCK_STREAM) {
    listen(server, 4096);
    acceptor = std::thread([&] {
      while (!stop.load()) {
        int c = accept(server, nullptr, nullptr);
        if (c >= 0) close(c);
      }
    });
  }
  std::vector<uint64_t> samples;
  samples.reserve(iterations);
  int udp = type == SOCK_DGRAM ? socket(AF_INET, SOCK_DGRAM, 0) : -1;
  char drain[64];
  for (size_t i = 0; i < iterations + iterations / 10; ++i) {  // the first 10% warm up
    uint64_t took;
    if (type == SOCK_STREAM) {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      const uint64_t t0 = now_ns();
      if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        std::perror("connect");
        return 1;
      }
      took = now_ns() - t0;
      close(fd);
    } else {
      const uint64_t t0 = now_ns();
      if (sendto(udp, "x", 1, 0, reinterpret_cast<sockaddr*>(&addr), len) != 1) {
        std::perror("sendto");
        return 1;
      }
      took = now_ns() - t0;
      (void)!recv(server, drain, sizeof(drain), MSG_DONTWAIT);
    }
    if (i >= iterations / 10) samples.push_back(took);
  }
  stop.store(true);
  if (acceptor.joinable()) {
    int poke = socket(AF_INET, SOCK_STREAM, 0);  // wake the acceptor
    (void)!connect(poke, reinterpret_cast<sockaddr*>(&addr), len);
    close(poke);
    acceptor.join();
  }
  std::sort(samples.begin(), samples.end());
  uint64_t sum = 0;
  for (uint64_t s : samples) sum += s;
  std::printf("mode=%s iterations=%zu p50_ns=%lu p90_ns=%lu p99_ns=%lu p999_ns=%lu mean_ns=%lu\n", mode.c_str(),
              samples.size(), percentile(samples, 0.5), percentile(samples, 0.9), percentile(samples, 0.99),
              percentile(samples, 0.999), sum / samples.size());
  return 0;
}
