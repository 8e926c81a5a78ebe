// KernelCounters: the sensor's per-CPU counters (nhg_counters, pinned: they count across agent
// lifetimes, also while no agent runs), summed over CPUs. The descriptor comes from the SensorLoader,
// which must outlive this. Thread-safety: any thread (each read is a few bpf syscalls).
#pragma once

#include <array>
#include <cstdint>

#include "common/result.h"
#include "nhiguard_abi.h"

namespace nhiguard::kernel {

struct SensorCounters {
  std::array<uint64_t, NHG_CTR__COUNT> values{};  // summed over CPUs, indexed by enum nhg_counter
  // Every ring-buffer reservation failure: file, lifecycle, egress and memory-access/block-device
  // records.
  uint64_t ringbuf_drops() const {
    return values[NHG_CTR_RINGBUF_DROP_FILE] + values[NHG_CTR_RINGBUF_DROP_PROCESS] +
           values[NHG_CTR_RINGBUF_DROP_EGRESS] + values[NHG_CTR_RINGBUF_DROP_ACCESS];
  }
};

class KernelCounters {
 public:
  explicit KernelCounters(int counters_fd) : fd_(counters_fd) {}

  Result<SensorCounters> counters() const;
  // The kernel's id of the counter map: it changes when the map is made anew (reboot, pins removed),
  // so a saved snapshot of the counters is comparable only while it is the same.
  Result<uint32_t> counters_map_id() const;

 private:
  int fd_;
};

}  // namespace nhiguard::kernel
