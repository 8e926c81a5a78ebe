// KernelSensor: the one owner of the sensor skeleton (bpf/sensor.bpf.c). Nothing else includes a
// *.skel.h; the rest of the agent sees bytes (ring-buffer records) and these C++ methods.
//
// Lifetime: start() opens, configures, loads and attaches; the destructor detaches and frees. The
// detection maps (credentials, candidate names, counters) are pinned under SensorOptions::pin_dir
// and adopted by the next agent; a pinned map whose layout no longer matches this build is
// replaced (and logged), since the agent rebuilds detection state from its catalogue.
//
// Thread-safety: poll() from one thread; the map-update methods may run from any thread (each is a
// single bpf syscall).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "containment/egress_destination.h"
#include "nhiguard_abi.h"

struct nhiguard_sensor;
struct nhiguard_egress;
struct ring_buffer;
struct bpf_link;
struct bpf_program;
struct bpf_map;

namespace nhiguard::kernel {

struct SensorOptions {
  std::string pin_dir = "/sys/fs/bpf/nhiguard";  // empty: no pinning (tests of unrelated parts)
  uint32_t ringbuf_bytes = 8u << 20;              // power of two, multiple of the page size
  uint32_t ignore_tgid = 0;                       // opens by this process are not reported
  bool read_syscall_args = true;                  // needs bpf_task_pt_regs (kernel 5.15+)
  bool direct_file_reads = true;                  // open programs use bpf_rdonly_cast (kernel 6.2+)
  bool report_all_egress = false;                 // egress events for untainted, allowed processes too
  std::string cgroup2_root;                       // empty: found in /proc/self/mountinfo
};

// A (parent directory name, file name) pair for files that may appear later; parent "" = any.
struct CandidateName {
  std::string parent;
  std::string name;
};

// One egress block as the kernel holds it: a cgroup (and everything below it), until a CLOCK_BOOTTIME
// expiry, for all destinations or only the listed ones.
struct EgressBlockSpec {
  uint64_t cgroup_id = 0;
  uint64_t expires_at_boot_ns = 0;
  uint32_t rule_id = 0;
  std::vector<containment::EgressDestination> destinations;  // empty: all egress
};

struct SensorCounters {
  std::array<uint64_t, NHG_CTR__COUNT> values{};  // summed over CPUs, indexed by enum nhg_counter
  // Every ring-buffer reservation failure: file, lifecycle and egress records.
  uint64_t ringbuf_drops() const {
    return values[NHG_CTR_RINGBUF_DROP_FILE] + values[NHG_CTR_RINGBUF_DROP_PROCESS] +
           values[NHG_CTR_RINGBUF_DROP_EGRESS];
  }
};

class KernelSensor {
 public:
  // Called for every ring-buffer record with its bytes; the span is valid only during the call.
  using RecordHandler = std::function<void(std::span<const std::byte>)>;

  static Result<std::unique_ptr<KernelSensor>> start(const SensorOptions& options, RecordHandler handler);
  ~KernelSensor();
  KernelSensor(const KernelSensor&) = delete;
  KernelSensor& operator=(const KernelSensor&) = delete;

  // Consumes available records, waiting up to timeout_ms for a wake-up. Returns how many. Records
  // may arrive without a wake-up (rate-limited in the kernel): call this at least every ~50 ms.
  Result<int> poll(int timeout_ms);

  Result<void> upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value);
  Result<void> remove_credential(const nhg_inode_key& key);
  Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> credentials() const;

  // Replaces the candidate-name table with exactly these entries (names over 63 bytes are refused).
  Result<void> set_candidate_names(const std::vector<CandidateName>& names);

  // The kernel's counters (nhg_counters, pinned: they count across agent lifetimes, also while no
  // agent runs).
  Result<SensorCounters> counters() const;
  // The kernel's id of the counter map: it changes when the map is made anew (reboot, pins removed),
  // so a saved snapshot of the counters is comparable only while it is the same.
  Result<uint32_t> counters_map_id() const;
  // Enforcement entries (denies, egress blocks, listed destinations) the kernel refused because
  // their map was full (E2BIG), since this sensor started. The action fails and says so; this
  // counts them for status and alerts.
  uint64_t enforcement_map_full() const { return enforcement_map_full_.load(); }

  // Enforcement. Each write is visible to the programs at once and is pinned, so it outlives the
  // agent and expires in the kernel at its expiry.
  Result<void> apply_egress_block(const EgressBlockSpec& block);
  Result<void> remove_egress_block(uint64_t cgroup_id);  // and its listed destinations
  Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> egress_blocks() const;
  Result<void> apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value);
  Result<void> remove_credential_deny(const nhg_deny_key& key);
  Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> credential_denies() const;
  std::optional<nhg_taint> taint_of(uint32_t tgid) const;

  // Names of the attached programs, for status output.
  std::vector<std::string> attached_programs() const;

 private:
  KernelSensor() = default;
  Result<void> load(const SensorOptions& options);
  Result<void> load_sensor_object(const SensorOptions& options, bool direct_file_reads);
  Result<void> load_egress(const SensorOptions& options);
  Result<void> attach(const SensorOptions& options);
  Result<void> attach_pinned(bpf_program* prog, int cgroup_fd, const std::string& link_dir);
  Result<void> refresh_enforcement_counts();
  // Raises one count by one ahead of a new entry: a count above the truth only costs the programs
  // a walk, one below it would let them skip an entry that is already in force.
  Result<void> raise_enforcement_count(uint32_t slot);
  // The open path's prefilters (nhiguard_abi.h): rebuilt from the tables they guard at load (an
  // earlier agent's pinned tables, or an agent that predates a filter), then kept in step.
  Result<void> rebuild_filters();
  Result<void> write_filter(bpf_map* map, const std::vector<uint32_t>& values);
  Result<void> write_filter_slot(bpf_map* map, uint32_t slot, uint32_t value);

  // Error of a failed enforcement map update, counting a full map.
  Error enforcement_update_error(std::string what);

  std::atomic<uint64_t> enforcement_map_full_ = 0;
  nhiguard_sensor* skel_ = nullptr;
  nhiguard_egress* egress_ = nullptr;
  std::vector<bpf_link*> links_;
  ring_buffer* ring_ = nullptr;
  RecordHandler handler_;
  std::vector<std::string> attached_;
  // What the kernel's filter arrays hold, so updates write only the slots that change.
  std::vector<uint32_t> credential_filter_;                  // counts per slot
  std::set<std::pair<uint64_t, uint64_t>> credential_keys_;  // (dev, ino) counted in it
  std::vector<uint32_t> candidate_filter_;                   // 0/1 per slot
};

}  // namespace nhiguard::kernel
