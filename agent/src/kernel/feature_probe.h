// Which BPF facilities this kernel accepts, found by loading (and where harmless, attaching) one
// tiny program per facility from bpf/feature_probe.bpf.c. The result picks the sensor's code paths,
// is logged once at start and printed by `nhiguard-agent --check`.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nhiguard::kernel {

struct FeatureResult {
  std::string name;         // probe program name without the "probe_" prefix, e.g. "lsm_file_open"
  std::string description;  // what the facility is for
  bool required = false;    // the agent cannot run without it
  bool supported = false;
  std::string error;  // why not, when !supported (libbpf's errno text and stage)
};

struct FeatureReport {
  std::vector<FeatureResult> features;
  bool supports(const std::string& name) const;
  bool all_required_supported() const;
  // name -> supported, as status shows it.
  nlohmann::json to_json() const;
};

// Which layer enforces deny_credential and egress blocks, and why; printed by --check and status.
//   lsm:                 BPF LSM (bpf/lsm.bpf.c) refuses the open / fd / socket call; the tracepoint
//                        and cgroup paths stay loaded beside it.
//   tracepoint+sigkill:  the open tracepoints SIGKILL a denied reader on return from open; the
//                        cgroup hooks refuse blocked egress.
struct EnforcementPath {
  bool lsm = false;
  std::string reason;  // the probe's result, or what failed to load or attach
  std::string name() const { return lsm ? "lsm" : "tracepoint+sigkill"; }
};

// BPF LSM where the probe loaded and attached an lsm/file_open program and the kernel runs BPF
// among its LSMs (/sys/kernel/security/lsm lists bpf); the tracepoint path otherwise.
EnforcementPath choose_enforcement(const FeatureReport& report);

// Loads each probe program in its own BPF object. Needs the privileges of the agent; without them
// every probe reports EPERM, which is the honest answer.
FeatureReport probe_kernel_features();

}  // namespace nhiguard::kernel
