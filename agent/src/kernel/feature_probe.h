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

// Loads each probe program in its own BPF object. Needs the privileges of the agent; without them
// every probe reports EPERM, which is the honest answer.
FeatureReport probe_kernel_features();

}  // namespace nhiguard::kernel
