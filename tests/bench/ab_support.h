// Shared by the interleaved A/B benchmarks (open_path_ab, read_path_ab): medians, bpf_stats, CPU
// pinning, and a credential added to the sensor's tables as the agent adds it.
#pragma once

#include <bpf/bpf.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "nhiguard_abi.h"

namespace nhiguard::bench {

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

// kernel.bpf_stats_enabled: the programs' run time is counted (own ns per run).
inline bool stats_enabled() {
  std::ifstream in("/proc/sys/kernel/bpf_stats_enabled");
  int value = 0;
  in >> value;
  return value == 1;
}

// cpu < 0: no pinning.
inline void pin_to_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) std::perror("sched_setaffinity");
}

// The file at `path` becomes credential 1: its filter slot first, then the table entry. Exits when
// the file cannot be read.
inline void add_credential(int filter_fd, int credentials_fd, const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  const nhg_inode_key key{.dev = (static_cast<uint64_t>(major(st.st_dev)) << 20) | minor(st.st_dev), .ino = st.st_ino};
  const nhg_credential_value value{.credential_id = 1, .class_id = 1};
  const uint32_t one = 1;
  const uint32_t slot = nhg_credential_filter_slot(key.dev, key.ino);
  bpf_map_update_elem(filter_fd, &slot, &one, BPF_ANY);
  bpf_map_update_elem(credentials_fd, &key, &value, BPF_ANY);
}

}  // namespace nhiguard::bench
