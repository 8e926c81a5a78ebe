#include "daemon/drop_accounting.h"

#include <fstream>

#include <fmt/format.h>

#include "common/clock.h"

namespace nhiguard::daemon {

DropSnapshot DropSnapshot::of(const kernel::SensorCounters& counters, std::string boot_id, uint32_t map_id,
                              int64_t taken_at_ns, bool clean_stop) {
  return DropSnapshot{
      .boot_id = std::move(boot_id),
      .counters_map_id = map_id,
      .file = counters.values[NHG_CTR_RINGBUF_DROP_FILE],
      .process = counters.values[NHG_CTR_RINGBUF_DROP_PROCESS],
      .egress = counters.values[NHG_CTR_RINGBUF_DROP_EGRESS],
      .taken_at_ns = taken_at_ns,
      .clean_stop = clean_stop,
  };
}

nlohmann::json DropSnapshot::to_json() const {
  return {
      {"boot_id", boot_id},
      {"counters_map_id", counters_map_id},
      {"ringbuf_drops_file", file},
      {"ringbuf_drops_process", process},
      {"ringbuf_drops_egress", egress},
      {"taken_at", format_rfc3339_ns(static_cast<uint64_t>(taken_at_ns))},
      {"taken_at_ns", taken_at_ns},
      {"clean_stop", clean_stop},
  };
}

Result<DropSnapshot> DropSnapshot::from_json(const nlohmann::json& json) {
  try {
    return DropSnapshot{
        .boot_id = json.at("boot_id").get<std::string>(),
        .counters_map_id = json.at("counters_map_id").get<uint32_t>(),
        .file = json.at("ringbuf_drops_file").get<uint64_t>(),
        .process = json.at("ringbuf_drops_process").get<uint64_t>(),
        .egress = json.at("ringbuf_drops_egress").get<uint64_t>(),
        .taken_at_ns = json.at("taken_at_ns").get<int64_t>(),
        .clean_stop = json.at("clean_stop").get<bool>(),
    };
  } catch (const nlohmann::json::exception& e) {
    return fail(Error{EUCLEAN, std::string("counter snapshot: ") + e.what()});
  }
}

nlohmann::json DowntimeGap::to_json() const {
  return {
      {"drops", total()},
      {"file", file},
      {"process", process},
      {"egress", egress},
      {"since", since_ns ? nlohmann::json(format_rfc3339_ns(static_cast<uint64_t>(*since_ns))) : nlohmann::json()},
      {"until", format_rfc3339_ns(static_cast<uint64_t>(until_ns))},
      {"since_what", since_what},
  };
}

std::string DowntimeGap::describe() const {
  return fmt::format(
      "{} kernel event(s) dropped while no agent read the ring buffer ({} file, {} lifecycle, {} "
      "egress), from {} ({}) to this start at {}",
      total(), file, process, egress,
      since_ns ? format_rfc3339_ns(static_cast<uint64_t>(*since_ns)) : std::string("an unknown time"), since_what,
      format_rfc3339_ns(static_cast<uint64_t>(until_ns)));
}

DowntimeGap downtime_gap(const std::optional<DropSnapshot>& last, const DropSnapshot& now) {
  DowntimeGap gap{.until_ns = now.taken_at_ns};
  const bool comparable = last && !now.boot_id.empty() && last->boot_id == now.boot_id &&
                          last->counters_map_id == now.counters_map_id && last->file <= now.file &&
                          last->process <= now.process && last->egress <= now.egress;
  if (comparable) {
    gap.file = now.file - last->file;
    gap.process = now.process - last->process;
    gap.egress = now.egress - last->egress;
    gap.since_ns = last->taken_at_ns;
    gap.since_what =
        last->clean_stop ? "the previous agent's stop" : "the previous agent's last check; it did not stop cleanly";
    return gap;
  }
  gap.file = now.file;
  gap.process = now.process;
  gap.egress = now.egress;
  gap.since_what = !last                          ? "the counters were made; no earlier snapshot"
                   : last->boot_id != now.boot_id ? "the counters were made after a reboot"
                                                  : "the counters were made anew (pins removed)";
  return gap;
}

std::string current_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace nhiguard::daemon
