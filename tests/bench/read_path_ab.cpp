// read_path_ab: what the sensor's read-path programs (bpf/readpath.bpf.h) cost a read, measured
// interleaved in one process, as open_path_ab does for the open path (see its header and
// tests/bench/README.md). A benchmark, never a test. It alternates, window by window, between:
//   none        nothing attached
//   floor       an empty program on sys_enter_read and sys_enter_pread64: what any syscall-entry
//               sensor costs before it does any work
//   direct      readpath_enter_read_direct + readpath_enter_pread64_direct (plain loads)
//   probe_read  readpath_enter_read + readpath_enter_pread64 (bpf_probe_read_kernel per field)
// over three loops: read(2) of 64 bytes from /dev/zero, pread(2) of 64 bytes of a non-credential
// file, and pread(2) of a credential this process holds an fd of (after its first read, every read
// is the known-reader lookup of the slow path). It prints the median ns/op of every configuration
// over all windows, as a ratio to `none` and to `floor` (the bound: a read loop on a
// non-credential fd within 2% of the floor), and with kernel.bpf_stats_enabled=1 each program's
// own time per run.
//
// Usage (root): read_path_ab --plain FILE --credential FILE [--windows N] [--iterations N] [--cpu C]
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "kernel/feature_probe.h"
#include "ab_support.h"
#include "nhiguard_abi.h"
#include "nhiguard_probe.skel.h"
#include "nhiguard_sensor.skel.h"

namespace {

constexpr int kLoops = 3;
constexpr const char* kLoopNames[kLoops] = {"read /dev/zero", "pread file", "pread cred"};

struct Config {
  std::string name;
  std::vector<bpf_program*> programs;  // empty: nothing attached
  std::vector<bpf_program*> attached_to_pread;
  std::vector<double> ns[kLoops];
  uint64_t own_time_ns[kLoops] = {};  // with bpf_stats: the programs' run time during each loop
  uint64_t own_runs[kLoops] = {};
};

// The programs' summed run time and run count so far (bpf_stats).
std::pair<uint64_t, uint64_t> program_stats(const Config& config) {
  uint64_t time = 0;
  uint64_t runs = 0;
  for (const auto* list : {&config.programs, &config.attached_to_pread}) {
    for (bpf_program* program : *list) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &len) == 0) {
        time += info.run_time_ns;
        runs += info.run_cnt;
      }
    }
  }
  return {time, runs};
}

double time_loop(const std::function<ssize_t()>& op, int iterations) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    if (op() < 0) {
      std::perror("read_path_ab: read");
      std::exit(1);
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"read_path_ab: the sensor's read-path programs, interleaved with no program and an empty one"};
  std::string plain;
  std::string credential;
  int windows = 31;
  int iterations = 50000;
  int cpu = -1;
  app.add_option("--plain", plain, "a non-credential file")->required();
  app.add_option("--credential", credential, "a file to treat as a credential")->required();
  app.add_option("--windows", windows, "windows per configuration")->check(CLI::PositiveNumber);
  app.add_option("--iterations", iterations, "reads per loop and window")->check(CLI::PositiveNumber);
  app.add_option("--cpu", cpu, "CPU to pin to (-1: none)");
  CLI11_PARSE(app, argc, argv);

  if (geteuid() != 0) {
    std::fprintf(stderr, "read_path_ab: run as root (loads BPF programs)\n");
    return 1;
  }
  nhiguard::bench::pin_to_cpu(cpu);
  const bool direct_supported = nhiguard::kernel::probe_kernel_features().supports("rdonly_cast");

  nhiguard_sensor* sensor = nhiguard_sensor__open();
  nhiguard_probe* probe = nhiguard_probe__open();
  if (!sensor || !probe) {
    std::fprintf(stderr, "read_path_ab: open BPF objects: %s\n", std::strerror(errno));
    return 1;
  }
  const std::vector<std::string> wanted = {"readpath_enter_read", "readpath_enter_pread64"};
  bpf_program* prog;
  bpf_object__for_each_program(prog, sensor->obj) {
    const std::string name = bpf_program__name(prog);
    bool load = false;
    for (const auto& base : wanted) load |= name == base || (direct_supported && name == base + "_direct");
    bpf_program__set_autoload(prog, load);
  }
  bpf_object__for_each_program(prog, probe->obj) {
    bpf_program__set_autoload(prog, std::strcmp(bpf_program__name(prog), "probe_syscall_tracepoint") == 0);
  }
  if (int err = nhiguard_sensor__load(sensor); err != 0) {
    std::fprintf(stderr, "read_path_ab: load sensor programs: %s\n", std::strerror(-err));
    return 1;
  }
  if (int err = nhiguard_probe__load(probe); err != 0) {
    std::fprintf(stderr, "read_path_ab: load the empty program: %s\n", std::strerror(-err));
    return 1;
  }
  nhiguard::bench::add_credential(bpf_map__fd(sensor->maps.nhg_credential_filter),
                                  bpf_map__fd(sensor->maps.nhg_credentials), credential);

  std::vector<Config> configs;
  configs.push_back({.name = "none"});
  // The empty program, attached to both tracepoints (a tracepoint program attaches to any one).
  configs.push_back({.name = "floor",
                     .programs = {probe->progs.probe_syscall_tracepoint},
                     .attached_to_pread = {probe->progs.probe_syscall_tracepoint}});
  if (direct_supported) {
    configs.push_back({.name = "direct",
                       .programs = {sensor->progs.readpath_enter_read_direct},
                       .attached_to_pread = {sensor->progs.readpath_enter_pread64_direct}});
  } else {
    std::fprintf(stderr, "read_path_ab: no bpf_rdonly_cast on this kernel: direct not measured\n");
  }
  configs.push_back({.name = "probe_read",
                     .programs = {sensor->progs.readpath_enter_read},
                     .attached_to_pread = {sensor->progs.readpath_enter_pread64}});

  const int zero_fd = open("/dev/zero", O_RDONLY);
  const int plain_fd = open(plain.c_str(), O_RDONLY);
  const int credential_fd = open(credential.c_str(), O_RDONLY);  // no open program runs: a non-opener
  if (zero_fd < 0 || plain_fd < 0 || credential_fd < 0) {
    std::perror("read_path_ab: open");
    return 1;
  }
  char buffer[64];
  const std::function<ssize_t()> loops[kLoops] = {
      [&] { return read(zero_fd, buffer, sizeof(buffer)); },
      [&] { return pread(plain_fd, buffer, sizeof(buffer), 0); },
      [&] { return pread(credential_fd, buffer, sizeof(buffer), 0); },
  };
  for (const auto& loop : loops) time_loop(loop, iterations);  // warm caches and predictors

  for (int w = 0; w < windows; ++w) {
    // Rotate the starting configuration so none is always measured right after another.
    for (size_t i = 0; i < configs.size(); ++i) {
      Config& config = configs[(i + w) % configs.size()];
      std::vector<bpf_link*> links;
      for (bpf_program* program : config.programs) {
        links.push_back(bpf_program__attach_tracepoint(program, "syscalls", "sys_enter_read"));
      }
      for (bpf_program* program : config.attached_to_pread) {
        links.push_back(bpf_program__attach_tracepoint(program, "syscalls", "sys_enter_pread64"));
      }
      for (bpf_link* link : links) {
        if (!link) {
          std::fprintf(stderr, "read_path_ab: attach %s: %s\n", config.name.c_str(), std::strerror(errno));
          return 1;
        }
      }
      for (int l = 0; l < kLoops; ++l) {
        const auto before = program_stats(config);
        config.ns[l].push_back(time_loop(loops[l], iterations));
        const auto after = program_stats(config);
        config.own_time_ns[l] += after.first - before.first;
        config.own_runs[l] += after.second - before.second;
      }
      for (bpf_link* link : links) bpf_link__destroy(link);
    }
  }

  double base[kLoops];
  double floor[kLoops];
  for (int l = 0; l < kLoops; ++l) {
    base[l] = nhiguard::bench::median(configs[0].ns[l]);
    floor[l] = nhiguard::bench::median(configs[1].ns[l]);
  }
  std::printf("ns/op, median of %d interleaved windows of %d reads each; ratios to none / to floor\n", windows,
              iterations);
  std::printf("%-12s", "program");
  for (const char* name : kLoopNames) std::printf(" %16s %6s %6s %5s", name, "/none", "/floor", "own*");
  std::printf("\n");
  const bool stats = nhiguard::bench::stats_enabled();
  for (const auto& config : configs) {
    std::printf("%-12s", config.name.c_str());
    for (int l = 0; l < kLoops; ++l) {
      const double m = nhiguard::bench::median(config.ns[l]);
      const std::string own = stats && config.own_runs[l] > 0
                                  ? std::to_string(config.own_time_ns[l] / config.own_runs[l])
                                  : std::string("-");
      std::printf(" %16.1f %6.3f %6.3f %5s", m, m / base[l], m / floor[l], own.c_str());
    }
    std::printf("\n");
  }
  std::printf(stats ? "* own: the programs' own ns per run in that loop (bpf_stats adds ~2 clock reads per run; "
                      "run once without it for the ratios)\n"
                    : "* own ns/run: run with kernel.bpf_stats_enabled=1\n");
  close(zero_fd);
  close(plain_fd);
  close(credential_fd);
  nhiguard_sensor__destroy(sensor);
  nhiguard_probe__destroy(probe);
  return 0;
}
