#include "daemon/kernel_counter_watch.h"

#include <time.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/filesystem.h"
#include "common/state_file.h"
#include "nhiguard_abi.h"

namespace nhiguard::daemon {

KernelCounterWatch::KernelCounterWatch(CounterSources sources, std::string snapshot_path, uint32_t ringbuf_bytes,
                                       AlertSink alerts)
    : sources_(std::move(sources)),
      snapshot_path_(std::move(snapshot_path)),
      ringbuf_bytes_(ringbuf_bytes),
      alerts_(std::move(alerts)) {}

std::optional<StateNotice> KernelCounterWatch::start() {
  if (auto counters = sources_.counters(); counters) {
    reported_counters_ = *counters;
  } else {
    spdlog::warn("cannot read the kernel counters at start ({}): drops and refusals count from zero",
                 counters.error().message);
  }
  start_counters_ = reported_counters_;

  std::optional<DropSnapshot> last;
  std::string problem;
  if (auto loaded = load_state_file(snapshot_path_); !loaded) {
    problem = loaded.error().message;
  } else if (loaded->file) {
    if (auto parsed = DropSnapshot::from_json(loaded->file->content); parsed) {
      last = *parsed;
    } else {
      auto moved = quarantine_file(snapshot_path_);
      problem = fmt::format("{} is damaged ({}); kept as {}", snapshot_path_, parsed.error().message,
                            moved ? *moved : moved.error().message);
    }
  } else if (!loaded->damage.empty()) {
    problem = fmt::format("{}; kept as {}", loaded->damage, loaded->quarantined_as);
  }
  if (!problem.empty()) spdlog::error("{}: drops before this start are counted since the counters were made", problem);
  auto map_id = sources_.counters_map_id();
  const auto now = DropSnapshot::of(reported_counters_, current_boot_id(), map_id ? *map_id : 0,
                                    static_cast<int64_t>(clock_ns(CLOCK_REALTIME)), false);
  downtime_gap_ = downtime_gap(last, now);
  std::optional<StateNotice> notice;
  if (downtime_gap_.total() > 0) {
    const std::string message = downtime_gap_.describe() + "; raise bpf.ringbuf_bytes or keep the agent running";
    spdlog::error("{}", message);
    notice = StateNotice{"ringbuf_drops_downtime", message, downtime_gap_.total()};
  }
  save_snapshot(false);
  return notice;
}

void KernelCounterWatch::check() {
  auto counters = sources_.counters();
  if (!counters) {
    spdlog::warn("cannot read drop counters: {}", counters.error().message);
    return;
  }
  auto delta = [&](nhg_counter c) { return counters->values[c] - reported_counters_.values[c]; };
  const uint64_t new_drops = counters->ringbuf_drops() - reported_counters_.ringbuf_drops();
  if (new_drops > 0) {
    const std::string message = fmt::format(
        "{} kernel event(s) dropped since the last check ({} file, {} lifecycle, {} egress): the ring buffer ({} "
        "bytes) was full; raise bpf.ringbuf_bytes",
        new_drops, delta(NHG_CTR_RINGBUF_DROP_FILE), delta(NHG_CTR_RINGBUF_DROP_PROCESS),
        delta(NHG_CTR_RINGBUF_DROP_EGRESS), ringbuf_bytes_);
    spdlog::error("{}", message);
    alerts_("ringbuf_drops", message, new_drops);
  }
  if (const uint64_t taint_full = delta(NHG_CTR_TAINT_MAP_FULL); taint_full > 0) {
    const std::string message = fmt::format(
        "{} credential read(s) or fork(s) could not record taint: nhg_taint ({} processes) is full; the egress of "
        "those processes is not tied to the credential they read",
        taint_full, NHG_TAINT_MAX_ENTRIES);
    spdlog::error("{}", message);
    alerts_("taint_map_full", message, taint_full);
  }
  if (const uint64_t follow_full = delta(NHG_CTR_FOLLOW_MAP_FULL); follow_full > 0) {
    const std::string message = fmt::format(
        "{} fork(s) of contained processes not followed: nhg_followed ({} processes) is full; those children stay "
        "contained while they stay in the contained cgroup, not if they move out of it",
        follow_full, NHG_FOLLOW_MAX_ENTRIES);
    spdlog::error("{}", message);
    alerts_("follow_map_full", message, follow_full);
  }
  if (const uint64_t deeper = delta(NHG_CTR_CGROUP_DEPTH_EXCEEDED); deeper > 0) {
    const std::string message = fmt::format(
        "{} enforcement check(s) by processes in cgroups deeper than {} levels: a block or deny below level {} "
        "cannot match them (the agent refuses such targets; this counts processes that sit that deep)",
        deeper, NHG_MAX_CGROUP_DEPTH, NHG_MAX_CGROUP_DEPTH);
    spdlog::warn("{}", message);
    alerts_("cgroup_depth_exceeded", message, deeper);
  }
  if (const uint64_t doomed_full = delta(NHG_CTR_DOOMED_FILES_FULL); doomed_full > 0) {
    const std::string message = fmt::format(
        "{} credential-deny kill(s) could not record the killed reader's fd table: nhg_doomed_files is full; a "
        "process sharing that table (clone(CLONE_FILES)) from a cgroup the deny does not cover is not killed on its "
        "read",
        doomed_full);
    spdlog::error("{}", message);
    alerts_("doomed_files_full", message, doomed_full);
  }
  if (const uint64_t full = sources_.enforcement_map_full(); full > reported_enforcement_full_) {
    const std::string message = fmt::format(
        "{} containment(s) refused by the kernel since the last check: an enforcement map (credential denies, egress "
        "blocks or their destinations) is full; each such action is recorded failed",
        full - reported_enforcement_full_);
    spdlog::error("{}", message);
    alerts_("enforcement_map_full", message, full - reported_enforcement_full_);
    reported_enforcement_full_ = full;
  }
  if (const uint64_t fd_failures = delta(NHG_CTR_FD_LOOKUP_FAILED); fd_failures > 0) {
    spdlog::warn("{} open(s) whose file the sensor could not read from the fd table", fd_failures);
  }
  reported_counters_ = *counters;
  // Drops reported now are no longer the next start's downtime gap.
  if (new_drops > 0) save_snapshot(false);
}

void KernelCounterWatch::stop() {
  check();
  save_snapshot(true);
}

void KernelCounterWatch::save_snapshot(bool clean_stop) {
  auto map_id = sources_.counters_map_id();
  if (!map_id) {
    spdlog::warn("{}: the next start cannot tell downtime drops from these", map_id.error().message);
    return;
  }
  const auto snapshot = DropSnapshot::of(reported_counters_, current_boot_id(), *map_id,
                                         static_cast<int64_t>(clock_ns(CLOCK_REALTIME)), clean_stop);
  if (auto written = write_state_file(snapshot_path_, snapshot.to_json()); !written) {
    spdlog::warn("{}: the next start counts drops since an older snapshot as downtime", written.error().message);
  }
}

nlohmann::json KernelCounterWatch::status_json() const {
  nlohmann::json out = nlohmann::json::object();
  auto c = sources_.counters();
  if (!c) return out;
  auto since_start = [&](nhg_counter i) { return c->values[i] - start_counters_.values[i]; };
  // Drops while this agent runs; those before its start are the downtime gap.
  out["ringbuf_drops"] = c->ringbuf_drops() - start_counters_.ringbuf_drops();
  out["ringbuf_drops_file"] = since_start(NHG_CTR_RINGBUF_DROP_FILE);
  out["ringbuf_drops_process"] = since_start(NHG_CTR_RINGBUF_DROP_PROCESS);
  out["ringbuf_drops_egress"] = since_start(NHG_CTR_RINGBUF_DROP_EGRESS);
  out["ringbuf_drops_access"] = since_start(NHG_CTR_RINGBUF_DROP_ACCESS);
  out["ringbuf_drops_downtime"] = downtime_gap_.total();
  out["ringbuf_drops_since_pinned"] = c->ringbuf_drops();
  out["taint_map_full"] = since_start(NHG_CTR_TAINT_MAP_FULL);
  out["taint_map_full_since_pinned"] = c->values[NHG_CTR_TAINT_MAP_FULL];
  out["doomed_files_full"] = since_start(NHG_CTR_DOOMED_FILES_FULL);
  out["enforcement_map_full"] = sources_.enforcement_map_full();
  out["downtime_gap"] = downtime_gap_.to_json();
  out["credential_opens"] = c->values[NHG_CTR_CREDENTIAL_OPENS];
  out["credential_opens_coalesced"] = c->values[NHG_CTR_CREDENTIAL_OPENS_COALESCED];
  out["egress_denied"] = c->values[NHG_CTR_EGRESS_DENIED];
  out["credential_denied"] = c->values[NHG_CTR_CREDENTIAL_DENIED];
  out["follow_map_full"] = c->values[NHG_CTR_FOLLOW_MAP_FULL];
  out["cgroup_depth_exceeded"] = c->values[NHG_CTR_CGROUP_DEPTH_EXCEEDED];
  out["lsm_refused"] = c->values[NHG_CTR_LSM_REFUSED];
  return out;
}

}  // namespace nhiguard::daemon
