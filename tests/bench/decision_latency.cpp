// Time from a triggering credential read (the kernel's timestamp of the open) to an agent-decided
// block_egress being in effect, measured from inside the contained service.
//
// Each iteration makes a service cgroup of its own (<parent>/reader-<i>.service: the agent
// deliberately does not decide twice on the same identity and credential within its dedup window)
// and forks a reader into it. The reader opens the credential (the
// trigger: the running agent's policy makes it an unexpected reader and decides block_egress), then
// watches the pinned egress-block map for its cgroup (a map lookup is no egress, so the reader adds
// no events of its own while it waits); once the entry is there it sends UDP datagrams to a
// loopback port until the kernel refuses one with EPERM, and reports that CLOCK_BOOTTIME instant:
// the block is in effect for the service's next packet, not merely written. The bench finds the reader's
// credential_access event in the agent's event log (its `time` is the kernel's CLOCK_BOOTTIME stamp put on the wall
// clock), the decision record that cites it, and rolls the handle back through nhiguardctl before the next iteration.
// Both instants go through the same boot-to-wall conversion as the agent's.
//
// Printed: p50/p90/p99/max of trigger -> enforced, and its two parts (trigger -> decision record,
// decision record -> enforced), plus how many datagrams left before the block held.
//
// Usage: decision_latency --cgroup-parent DIR --credential PATH --events FILE --ctl NHIGUARDCTL
//                         --socket AGENT_SOCKET --blocks-map PINNED_MAP [--iterations N] [--timeout-ms MS]
// Run through tests/bench/run_decision_bench.sh, which sets the agent, policy and cgroup up.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "nhiguard_abi.h"

namespace {

struct ReaderResult {
  uint64_t enforced_boot_ns = 0;  // 0: the block never held within the timeout
  uint64_t datagrams_sent = 0;    // datagrams the kernel let out after the map entry, before the first EPERM
};

// What the reader needs to know; set up before the fork.
struct ReaderSetup {
  std::string cgroup;
  uint64_t cgroup_id = 0;
  std::string credential;
  int blocks_map_fd = -1;
  uint16_t port = 0;
  std::chrono::milliseconds timeout{5000};
};

// "2026-11-22T07:53:01.123456789Z" -> ns since the epoch; nullopt when malformed.
std::optional<uint64_t> parse_rfc3339_ns(const std::string& text) {
  tm parts{};
  unsigned long fraction = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%9lu%c", &parts.tm_year, &parts.tm_mon, &parts.tm_mday,
                  &parts.tm_hour, &parts.tm_min, &parts.tm_sec, &fraction, &z) != 8 ||
      z != 'Z') {
    return std::nullopt;
  }
  parts.tm_year -= 1900;
  parts.tm_mon -= 1;
  return static_cast<uint64_t>(timegm(&parts)) * 1'000'000'000ull + fraction;
}

// The reader: joins the cgroup, reads the credential, waits for the block entry, then sends until refused.
[[noreturn]] void run_reader(const ReaderSetup& setup, int report_fd) {
  ReaderResult result;
  {
    std::ofstream procs(setup.cgroup + "/cgroup.procs");
    procs << getpid() << std::flush;
    if (!procs) _exit(3);
  }
  const int sock = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(setup.port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int fd = open(setup.credential.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || sock < 0) _exit(4);
  close(fd);
  const uint64_t deadline =
      nhiguard::clock_ns(CLOCK_BOOTTIME) + static_cast<uint64_t>(setup.timeout.count()) * 1'000'000ull;
  const char byte = 'x';
  bool entry_seen = false;
  while (nhiguard::clock_ns(CLOCK_BOOTTIME) < deadline) {
    if (!entry_seen) {
      nhg_egress_block block{};
      entry_seen = bpf_map_lookup_elem(setup.blocks_map_fd, &setup.cgroup_id, &block) == 0;
      if (!entry_seen) continue;
    }
    if (sendto(sock, &byte, 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) < 0) {
      if (errno == EPERM) {
        result.enforced_boot_ns = nhiguard::clock_ns(CLOCK_BOOTTIME);
        break;
      }
    } else {
      ++result.datagrams_sent;
    }
  }
  (void)!write(report_fd, &result, sizeof(result));
  _exit(0);
}

// Follows the agent's event log from where the last call stopped.
class EventLogTail {
 public:
  explicit EventLogTail(std::string path) : path_(std::move(path)) {}

  // The first new record matching `pred` within `timeout`.
  template <typename Pred>
  std::optional<nlohmann::json> wait_for(Pred pred, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      std::ifstream in(path_);
      in.seekg(static_cast<std::streamoff>(offset_));
      std::string line;
      while (std::getline(in, line)) {
        if (in.eof()) break;  // a line still being written
        offset_ += line.size() + 1;
        auto record = nlohmann::json::parse(line, nullptr, false);
        if (!record.is_discarded()) pending_.push_back(std::move(record));
      }
      for (auto it = pending_.begin(); it != pending_.end(); ++it) {
        if (pred(*it)) {
          nlohmann::json found = std::move(*it);
          pending_.erase(it);
          return found;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

  void skip_to_end() {
    std::ifstream in(path_, std::ios::ate);
    if (in) offset_ = static_cast<uint64_t>(in.tellg());
    pending_.clear();
  }

 private:
  std::string path_;
  uint64_t offset_ = 0;
  std::vector<nlohmann::json> pending_;
};

double ms(uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

void print_row(const char* name, std::vector<uint64_t> values) {
  if (values.empty()) return;
  std::sort(values.begin(), values.end());
  auto at = [&](double p) { return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))]; };
  std::printf("%-34s %9.3f %9.3f %9.3f %9.3f\n", name, ms(at(0.50)), ms(at(0.90)), ms(at(0.99)), ms(values.back()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trigger -> enforcement latency of agent-decided block_egress"};
  ReaderSetup setup;
  std::string events, ctl, socket_path, blocks_map;
  size_t iterations = 50;
  int timeout_ms = 5000;
  std::string cgroup_parent;
  app.add_option("--cgroup-parent", cgroup_parent, "absolute cgroup directory to make the services in")->required();
  app.add_option("--credential", setup.credential, "credential file the policy protects")->required();
  app.add_option("--blocks-map", blocks_map, "the agent's pinned nhg_egress_blocks map")->required();
  app.add_option("--events", events, "the agent's event log")->required();
  app.add_option("--ctl", ctl, "nhiguardctl")->required();
  app.add_option("--socket", socket_path, "the agent's control socket")->required();
  app.add_option("--iterations", iterations, "triggers to measure");
  app.add_option("--timeout-ms", timeout_ms, "per trigger, how long the reader waits for the block");
  CLI11_PARSE(app, argc, argv);
  setup.timeout = std::chrono::milliseconds(timeout_ms);
  setup.blocks_map_fd = bpf_obj_get(blocks_map.c_str());
  if (setup.blocks_map_fd < 0) {
    std::fprintf(stderr, "decision_latency: %s: %s\n", blocks_map.c_str(), std::strerror(errno));
    return 1;
  }

  // A sink for the datagrams that get out before the block: they must go somewhere real.
  const int sink = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (sink < 0 || bind(sink, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(sink, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("decision_latency: loopback sink");
    return 1;
  }
  setup.port = ntohs(addr.sin_port);
  std::thread([sink] {
    std::array<char, 64> buf{};
    while (recv(sink, buf.data(), buf.size(), 0) >= 0) {
    }
  }).detach();

  EventLogTail log(events);
  log.skip_to_end();
  std::vector<uint64_t> total, to_decision, to_enforced, leaked;
  size_t failed = 0;
  for (size_t i = 0; i < iterations; ++i) {
    setup.cgroup = cgroup_parent + "/reader-" + std::to_string(i) + ".service";
    struct stat cg{};
    if (mkdir(setup.cgroup.c_str(), 0755) != 0 || stat(setup.cgroup.c_str(), &cg) != 0) {
      std::perror(("decision_latency: " + setup.cgroup).c_str());
      return 1;
    }
    setup.cgroup_id = cg.st_ino;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return 1;
    const pid_t reader = fork();
    if (reader == 0) {
      close(pipe_fds[0]);
      run_reader(setup, pipe_fds[1]);
    }
    close(pipe_fds[1]);
    ReaderResult result;
    const bool got = read(pipe_fds[0], &result, sizeof(result)) == static_cast<ssize_t>(sizeof(result));
    close(pipe_fds[0]);
    int status = 0;
    waitpid(reader, &status, 0);
    const uint64_t enforced_wall =
        got && result.enforced_boot_ns ? nhiguard::boot_to_wall_ns(result.enforced_boot_ns) : 0;

    auto access = log.wait_for(
        [&](const nlohmann::json& r) {
          return r.value("type", "") == "credential_access" && r.contains("process") &&
                 r["process"].value("pid", 0) == reader;
        },
        std::chrono::seconds(5));
    std::optional<nlohmann::json> decision;
    if (access) {
      const std::string event_id = access->value("event_id", "");
      decision = log.wait_for(
          [&](const nlohmann::json& r) {
            if (r.value("type", "") != "decision" || !r.contains("trigger")) return false;
            for (const auto& id : r["trigger"].value("event_ids", nlohmann::json::array()))
              if (id == event_id) return true;
            return false;
          },
          std::chrono::seconds(5));
    }
    // 0 = not found; a real wall-clock instant is never 0.
    const uint64_t trigger_wall = access ? parse_rfc3339_ns(access->value("time", "")).value_or(0) : 0;
    const uint64_t decision_wall = decision ? parse_rfc3339_ns(decision->value("time", "")).value_or(0) : 0;
    std::string handle;
    if (decision && decision->contains("handle") && (*decision)["handle"].is_object())
      handle = (*decision)["handle"].value("handle", "");

    if (!enforced_wall || !trigger_wall || !decision_wall || handle.empty() || enforced_wall < trigger_wall) {
      ++failed;
      std::fprintf(stderr, "[bench] iteration %zu: %s%s%s%s\n", i,
                   enforced_wall ? "" : "block never seen by the reader; ",
                   trigger_wall ? "" : "no credential_access event; ", decision_wall ? "" : "no decision record; ",
                   handle.empty() ? "no handle" : "");
    } else {
      total.push_back(enforced_wall - trigger_wall);
      to_decision.push_back(decision_wall > trigger_wall ? decision_wall - trigger_wall : 0);
      to_enforced.push_back(enforced_wall > decision_wall ? enforced_wall - decision_wall : 0);
      leaked.push_back(result.datagrams_sent);
    }
    if (!handle.empty()) {
      const std::string cmd = ctl + " --socket " + socket_path + " rollback " + handle + " > /dev/null";
      if (std::system(cmd.c_str()) != 0) {
        std::fprintf(stderr, "[bench] rollback of %s failed; stopping\n", handle.c_str());
        break;
      }
    }
    rmdir(setup.cgroup.c_str());  // the reader has exited and been reaped
  }

  std::printf("agent-decided block_egress, %zu triggers (%zu failed), milliseconds\n", total.size(), failed);
  std::printf("%-34s %9s %9s %9s %9s\n", "interval", "p50", "p90", "p99", "max");
  print_row("trigger (kernel) -> enforced", total);
  print_row("trigger (kernel) -> decision record", to_decision);
  print_row("decision record -> enforced", to_enforced);
  std::sort(leaked.begin(), leaked.end());
  if (!leaked.empty()) {
    std::printf("datagrams let out after the map entry appeared, before EPERM: p50 %llu, max %llu\n",
                static_cast<unsigned long long>(leaked[leaked.size() / 2]),
                static_cast<unsigned long long>(leaked.back()));
  }
  return failed == 0 ? 0 : 1;
}
