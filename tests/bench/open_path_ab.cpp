// open_path_ab: what the sensor's openat program costs an open, measured interleaved in one process.
//
// A benchmark, never a test (see tests/bench/README.md). run_open_bench.sh starts whole tools one
// after another, so the drift of a virtual machine between scenarios (often 10%) is as large as the
// effect it measures. Here the benchmark attaches and detaches the programs itself and alternates,
// window by window, between:
//   none        nothing attached
//   floor       an empty program on sys_exit_openat (the feature probe's probe_syscall_tracepoint):
//               what any syscall-exit sensor costs before it does any work
//   direct      sensor_exit_openat_direct: the opened file read with plain loads (bpf_rdonly_cast)
//   probe_read  sensor_exit_openat: the same, one bpf_probe_read_kernel call per field
// on a non-credential file and on a credential, with the sensor's tables filled as the agent fills
// them (the built-in catalogue's candidate names, the credential's inode). It prints the median
// ns/op of every configuration over all windows, as a ratio to `none`, and with
// kernel.bpf_stats_enabled=1 each program's own time per run.
//
// The credential case is this process reading the same credential in a loop: after the first
// record, its opens are coalesced in the kernel (NHG_REPEAT_WINDOW_NS), as they would be under the
// agent; no consumer drains the ring buffer here, so what is measured is the program, not the agent.
//
// Usage (root): open_path_ab --plain FILE --credential FILE [--windows N] [--iterations N] [--cpu C]
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
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "catalogue/credential_catalogue.h"
#include "kernel/feature_probe.h"
#include "ab_support.h"
#include "nhiguard_abi.h"
#include "nhiguard_probe.skel.h"
#include "nhiguard_sensor.skel.h"

namespace {

struct Config {
  std::string name;
  bpf_program* program = nullptr;  // nullptr: nothing attached
  std::vector<double> plain_ns;
  std::vector<double> credential_ns;
};

double time_opens(const std::string& path, int iterations) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    const int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) {
      std::perror(path.c_str());
      std::exit(1);
    }
    close(fd);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::nano>(elapsed).count() / iterations;
}

// Fills the sensor's tables the way KernelSensor does: entries after their filter slots.
void fill_tables(nhiguard_sensor* skel, const std::string& credential) {
  nhiguard::bench::add_credential(bpf_map__fd(skel->maps.nhg_credential_filter),
                                  bpf_map__fd(skel->maps.nhg_credentials), credential);
  const uint32_t one = 1;

  auto catalogue = nhiguard::catalogue::CredentialCatalogue::create({});
  if (!catalogue) {
    std::fprintf(stderr, "open_path_ab: catalogue: %s\n", catalogue.error().message.c_str());
    std::exit(1);
  }
  size_t names = 0;
  for (const auto& rule : (*catalogue)->name_rules()) {
    if (rule.name.empty() || rule.name.size() >= NHG_NAME_LEN || rule.parent.size() >= NHG_NAME_LEN) continue;
    nhg_name_prefix_key prefix{.len = static_cast<uint32_t>(rule.name.size()), .pad = 0, .head = 0};
    std::memcpy(&prefix.head, rule.name.data(), std::min<size_t>(rule.name.size(), sizeof(prefix.head)));
    const uint32_t name_slot =
        nhg_candidate_filter_slot(prefix.len, static_cast<uint8_t>(static_cast<unsigned char>(rule.name[0])));
    char name_key[NHG_NAME_LEN] = {};
    std::memcpy(name_key, rule.name.data(), rule.name.size());
    const uint32_t flags = rule.parent.empty() ? NHG_NAME_ANY_PARENT : NHG_NAME_BY_PARENT;
    nhg_name_key pair{};
    std::memcpy(pair.parent, rule.parent.data(), rule.parent.size());
    std::memcpy(pair.name, rule.name.data(), rule.name.size());
    bpf_map_update_elem(bpf_map__fd(skel->maps.nhg_candidate_filter), &name_slot, &one, BPF_ANY);
    bpf_map_update_elem(bpf_map__fd(skel->maps.nhg_candidate_prefixes), &prefix, &one, BPF_ANY);
    bpf_map_update_elem(bpf_map__fd(skel->maps.nhg_candidate_names), name_key, &flags, BPF_ANY);
    if (!rule.parent.empty()) bpf_map_update_elem(bpf_map__fd(skel->maps.nhg_candidate_pairs), &pair, &one, BPF_ANY);
    ++names;
  }
  std::fprintf(stderr, "open_path_ab: tables: 1 credential inode, %zu candidate names from the built-in catalogue\n",
               names);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"open_path_ab: the sensor's openat program, interleaved with no program and an empty one"};
  std::string plain;
  std::string credential;
  int windows = 31;
  int iterations = 20000;
  int cpu = -1;
  app.add_option("--plain", plain, "a non-credential file")->required();
  app.add_option("--credential", credential, "a file to treat as a credential")->required();
  app.add_option("--windows", windows, "windows per configuration and file")->check(CLI::PositiveNumber);
  app.add_option("--iterations", iterations, "open+close pairs per window")->check(CLI::PositiveNumber);
  app.add_option("--cpu", cpu, "CPU to pin to (-1: none)");
  CLI11_PARSE(app, argc, argv);

  if (geteuid() != 0) {
    std::fprintf(stderr, "open_path_ab: run as root (loads BPF programs)\n");
    return 1;
  }
  nhiguard::bench::pin_to_cpu(cpu);
  const bool direct_supported = nhiguard::kernel::probe_kernel_features().supports("rdonly_cast");

  nhiguard_sensor* sensor = nhiguard_sensor__open();
  nhiguard_probe* probe = nhiguard_probe__open();
  if (!sensor || !probe) {
    std::fprintf(stderr, "open_path_ab: open BPF objects: %s\n", std::strerror(errno));
    return 1;
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, sensor->obj) {
    const std::string name = bpf_program__name(prog);
    bpf_program__set_autoload(
        prog, name == "sensor_exit_openat" || (direct_supported && name == "sensor_exit_openat_direct"));
  }
  bpf_object__for_each_program(prog, probe->obj) {
    bpf_program__set_autoload(prog, std::strcmp(bpf_program__name(prog), "probe_syscall_tracepoint") == 0);
  }
  if (int err = nhiguard_sensor__load(sensor); err != 0) {
    std::fprintf(stderr, "open_path_ab: load sensor programs: %s\n", std::strerror(-err));
    return 1;
  }
  if (int err = nhiguard_probe__load(probe); err != 0) {
    std::fprintf(stderr, "open_path_ab: load the empty program: %s\n", std::strerror(-err));
    return 1;
  }
  fill_tables(sensor, credential);
  std::fflush(stderr);

  std::vector<Config> configs;
  configs.push_back({.name = "none"});
  configs.push_back({.name = "floor", .program = probe->progs.probe_syscall_tracepoint});
  if (direct_supported) configs.push_back({.name = "direct", .program = sensor->progs.sensor_exit_openat_direct});
  configs.push_back({.name = "probe_read", .program = sensor->progs.sensor_exit_openat});
  if (!direct_supported) std::fprintf(stderr, "open_path_ab: no bpf_rdonly_cast on this kernel: direct not measured\n");

  // Warm the page cache, the dentry cache and the branch predictors before the first window.
  time_opens(plain, iterations);
  time_opens(credential, iterations);
  for (int w = 0; w < windows; ++w) {
    // Rotate the starting configuration so none is always measured right after another.
    for (size_t i = 0; i < configs.size(); ++i) {
      Config& config = configs[(i + w) % configs.size()];
      bpf_link* link = nullptr;
      if (config.program) {
        link = bpf_program__attach(config.program);
        if (!link) {
          std::fprintf(stderr, "open_path_ab: attach %s: %s\n", config.name.c_str(), std::strerror(errno));
          return 1;
        }
      }
      config.plain_ns.push_back(time_opens(plain, iterations));
      config.credential_ns.push_back(time_opens(credential, iterations));
      if (link) bpf_link__destroy(link);
    }
  }

  const double base_plain = nhiguard::bench::median(configs[0].plain_ns);
  const double base_credential = nhiguard::bench::median(configs[0].credential_ns);
  std::printf("open+close ns/op, median of %d interleaved windows of %d pairs each\n", windows, iterations);
  std::printf("%-12s %12s %8s %12s %8s %14s\n", "program", "non-cred", "ratio", "cred", "ratio", "own ns/run*");
  const bool stats = nhiguard::bench::stats_enabled();
  for (const auto& config : configs) {
    std::string own = "-";
    if (config.program && stats) {
      bpf_prog_info info{};
      uint32_t len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(config.program), &info, &len) == 0 && info.run_cnt > 0) {
        own = std::to_string(static_cast<long>(static_cast<double>(info.run_time_ns) / info.run_cnt));
      }
    }
    const double p = nhiguard::bench::median(config.plain_ns);
    const double c = nhiguard::bench::median(config.credential_ns);
    std::printf("%-12s %12.1f %8.3f %12.1f %8.3f %14s\n", config.name.c_str(), p, p / base_plain, c,
                c / base_credential, own.c_str());
  }
  std::printf(stats ? "* the program's own time per run over both files (bpf_stats adds ~2 clock reads)\n"
                    : "* own ns/run: run with kernel.bpf_stats_enabled=1\n");
  nhiguard_sensor__destroy(sensor);
  nhiguard_probe__destroy(probe);
  return 0;
}
