// KernelCounterWatch: the agent's side of the kernel's counters (nhg_counters) and of the
// enforcement maps' refusals. At start it takes the counters as this agent's baseline and accounts
// the downtime gap (daemon/drop_accounting.h); every housekeeping check turns what rose since the
// last check into a log line and an alert (ring-buffer drops, a full taint map, a full enforcement
// map, fd lookups that failed); at a clean stop it saves the snapshot the next start compares with.
// status_json() is the `kernel_counters` object of `nhiguardctl status`.
//
// It reads the kernel through the functions it is given, so a test drives it with plain values.
// Thread-safety: one thread (the event loop's); status_json() is called from the control thread
// but only reads values the loop thread writes between checks (counts, a torn read is harmless).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "daemon/drop_accounting.h"
#include "daemon/state_recovery.h"
#include "kernel/kernel_counters.h"

namespace nhiguard::daemon {

struct CounterSources {
  std::function<Result<kernel::SensorCounters>()> counters;
  std::function<Result<uint32_t>()> counters_map_id;  // see KernelCounters::counters_map_id
  std::function<uint64_t()> enforcement_map_full;     // refusals by a full enforcement map, since start
};

class KernelCounterWatch {
 public:
  // (kind, message, count): the alert a rise becomes (reporter::alert_report).
  using AlertSink = std::function<void(const std::string& kind, const std::string& message, uint64_t count)>;

  // snapshot_path: <state_dir>/kernel_counters.json. ringbuf_bytes: named in the drop alert's advice.
  KernelCounterWatch(CounterSources sources, std::string snapshot_path, uint32_t ringbuf_bytes, AlertSink alerts);

  // The baseline and the downtime gap; the notice (when drops fell while no agent ran) is reported
  // once the reporter runs.
  std::optional<StateNotice> start();
  // Alerts for every counter that rose since the last check.
  void check();
  // The last check, then the snapshot marked as a clean stop.
  void stop();

  nlohmann::json status_json() const;

 private:
  void save_snapshot(bool clean_stop);

  CounterSources sources_;
  std::string snapshot_path_;
  uint32_t ringbuf_bytes_;
  AlertSink alerts_;
  kernel::SensorCounters start_counters_;     // at this agent's start
  kernel::SensorCounters reported_counters_;  // what check() has reported
  uint64_t reported_enforcement_full_ = 0;
  DowntimeGap downtime_gap_;
};

}  // namespace nhiguard::daemon
