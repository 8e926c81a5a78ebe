// Ring-buffer drops split by who could have read them: the kernel's drop counters (nhg_counters)
// are pinned, so they count across agent lifetimes and also while no agent runs, when the pinned
// detection programs keep writing into a ring buffer nobody reads. The agent keeps a snapshot of
// the counters it has accounted for in <state_dir>/kernel_counters.json (a checked state file,
// common/state_file.h): written at start, whenever a check finds new drops (they are reported as
// they happen), and at a clean stop. At the next start the difference between the counters and
// that snapshot is one **downtime gap**: the drops while no agent read the ring, from the
// snapshot's time (the previous agent's stop, or its last check when it did not stop cleanly) to
// this start. Drops after the start are the running agent's (`ringbuf_drops` in status).
//
// A snapshot applies only to the same counter map: it names the boot (boot_id) and the map's
// kernel id. After a reboot, or once the pins were removed, the counters started from zero with the
// map, and all of them are the gap (since the map was made, time unknown).
//
// Thread-safety: plain values and functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "kernel/kernel_counters.h"

namespace nhiguard::daemon {

struct DropSnapshot {
  std::string boot_id;  // /proc/sys/kernel/random/boot_id
  uint32_t counters_map_id = 0;
  uint64_t file = 0;        // NHG_CTR_RINGBUF_DROP_FILE
  uint64_t process = 0;     // NHG_CTR_RINGBUF_DROP_PROCESS
  uint64_t egress = 0;      // NHG_CTR_RINGBUF_DROP_EGRESS
  int64_t taken_at_ns = 0;  // CLOCK_REALTIME
  bool clean_stop = false;  // written by a stopping agent (else: by a running one)

  uint64_t total() const { return file + process + egress; }
  static DropSnapshot of(const kernel::SensorCounters& counters, std::string boot_id, uint32_t map_id,
                         int64_t taken_at_ns, bool clean_stop);
  nlohmann::json to_json() const;
  static Result<DropSnapshot> from_json(const nlohmann::json& json);  // EUCLEAN on a bad field
};

struct DowntimeGap {
  uint64_t file = 0;
  uint64_t process = 0;
  uint64_t egress = 0;
  std::optional<int64_t> since_ns;  // CLOCK_REALTIME; none when unknown (no comparable snapshot)
  int64_t until_ns = 0;
  std::string since_what;  // what `since` is: "the previous agent's stop", ...

  uint64_t total() const { return file + process + egress; }
  nlohmann::json to_json() const;
  std::string describe() const;  // one sentence for the log and the alert
};

// The drops between `last` (the previous agent's snapshot, when there is one) and `now`.
DowntimeGap downtime_gap(const std::optional<DropSnapshot>& last, const DropSnapshot& now);

// This boot's id, or "" when it cannot be read.
std::string current_boot_id();

}  // namespace nhiguard::daemon
