// SensorLoader: the one owner of the BPF skeletons (bpf/sensor.bpf.c, bpf/egress.bpf.c, and where
// asked and possible bpf/lsm.bpf.c). Nothing
// else includes a *.skel.h: the map writers, the ring-buffer source and the counters get the map
// descriptors this loader hands out, and the rest of the agent sees C++ types.
//
// Lifetime (RAII): load() opens, configures and loads both objects, pinning the maps under
// SensorOptions::pin_dir; attach() attaches every loaded program and pins its link; the destructor
// detaches and frees. Between load() and attach() the map writers adopt the pinned state (prefilters
// rebuilt, enforcement counts refreshed) while no program runs yet. The descriptors in maps() are
// valid for the loader's lifetime; everything that holds one must be destroyed before it.
//
// Pinned detection maps (credentials, candidate names, counters) are adopted by the next agent; a
// pinned map whose layout no longer matches this build is replaced (and logged), since the agent
// rebuilds detection state from its catalogue. Pinned links keep the programs attached, and
// enforcing, while no agent runs.
//
// The BPF LSM object is optional (SensorOptions::lsm_enforcement, chosen from the feature probe): it
// reuses the other two objects' maps, and when it fails to load or attach the loader logs what
// failed, drops it and carries on with the tracepoint and cgroup paths (enforcement_path() says
// which holds and why). Never fatal.
//
// Thread-safety: load and attach from one thread; maps() and attached_programs() are read-only after.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/feature_probe.h"

struct nhiguard_sensor;
struct nhiguard_egress;
struct nhiguard_lsm;
struct bpf_link;
struct bpf_program;

namespace nhiguard::kernel {

struct SensorOptions {
  std::string pin_dir = "/sys/fs/bpf/nhiguard";  // empty: no pinning (tests of unrelated parts)
  uint32_t ringbuf_bytes = 8u << 20;             // power of two, multiple of the page size
  uint32_t ignore_tgid = 0;                      // opens by this process are not reported
  bool read_syscall_args = true;                 // needs bpf_task_pt_regs (kernel 5.15+)
  bool direct_file_reads = true;                 // open programs use bpf_rdonly_cast (kernel 6.2+)
  bool report_all_egress = false;                // egress events for untainted, allowed processes too
  std::string cgroup2_root;                      // empty: found in /proc/self/mountinfo
  // Load bpf/lsm.bpf.c (needs BPF LSM active; the agent sets it from choose_enforcement). Off, the
  // pinned LSM links an earlier agent left are removed, so the tracepoint path alone enforces.
  bool lsm_enforcement = false;
};

// The loaded maps' descriptors, owned by the loader. The two objects share the ring buffer, the
// counters, the taint table and the enforcement counts.
struct SensorMapFds {
  int events = -1;              // nhg_events (ring buffer)
  int credentials = -1;         // nhg_credentials
  int credential_filter = -1;   // nhg_credential_filter
  int candidate_names = -1;     // nhg_candidate_names
  int candidate_pairs = -1;     // nhg_candidate_pairs
  int candidate_prefixes = -1;  // nhg_candidate_prefixes
  int candidate_filter = -1;    // nhg_candidate_filter
  int counters = -1;            // nhg_counters (per CPU)
  int taint = -1;               // nhg_taint
  int enforcement_counts = -1;  // nhg_enforcement_counts
  int credential_denies = -1;   // nhg_credential_denies
  int egress_blocks = -1;       // nhg_egress_blocks
  int egress_dests = -1;        // nhg_egress_dests
  int followed = -1;            // nhg_followed
};

class SensorLoader {
 public:
  static Result<std::unique_ptr<SensorLoader>> load(const SensorOptions& options);
  ~SensorLoader();
  SensorLoader(const SensorLoader&) = delete;
  SensorLoader& operator=(const SensorLoader&) = delete;

  Result<void> attach(const SensorOptions& options);

  const SensorMapFds& maps() const { return maps_; }
  // Names of the attached programs, for status output.
  std::vector<std::string> attached_programs() const { return attached_; }
  // Which layer enforces denies and blocks after load() and attach(), and why.
  const EnforcementPath& enforcement_path() const { return enforcement_; }

 private:
  SensorLoader() = default;
  Result<void> load_objects(const SensorOptions& options);
  Result<void> load_sensor_object(const SensorOptions& options, bool direct_file_reads);
  Result<void> load_egress(const SensorOptions& options);
  Result<void> load_lsm(const SensorOptions& options);
  void attach_lsm(const std::string& link_dir);
  void drop_lsm(const std::string& what_failed);
  void mark_lsm_active(bool active);
  Result<void> attach_pinned(bpf_program* prog, int cgroup_fd, const std::string& link_dir);

  nhiguard_sensor* skel_ = nullptr;
  nhiguard_egress* egress_ = nullptr;
  nhiguard_lsm* lsm_ = nullptr;
  EnforcementPath enforcement_;
  std::vector<bpf_link*> links_;
  std::vector<std::string> attached_;
  SensorMapFds maps_;
};

}  // namespace nhiguard::kernel
