#include "kernel/feature_probe.h"

#include <bpf/libbpf.h>

#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <sstream>

#include "nhiguard_probe.skel.h"

namespace nhiguard::kernel {
namespace {

struct ProbeSpec {
  const char* program;
  const char* description;
  bool required;
  bool attach;  // attach after load (skipped where attaching needs a target or touches the host)
};

constexpr ProbeSpec kProbes[] = {
    {"probe_syscall_tracepoint", "syscall tracepoints (credential opens)", true, true},
    {"probe_tp_btf", "BTF-typed tracepoints (process exec/fork)", true, true},
    {"probe_ringbuf_output", "BPF ring buffer", true, false},
    {"probe_task_pt_regs", "bpf_task_pt_regs (path and flags of an open, read on syscall exit)", false, false},
    {"probe_rdonly_cast", "bpf_rdonly_cast (opened file read with plain loads; kernel 6.2+, else helper reads)", false,
     false},
    {"probe_cgroup_connect4", "cgroup connect hooks (egress control)", false, false},
    {"probe_uprobe", "uprobes (SSL_write plaintext)", false, false},
    {"probe_fentry", "fentry/fexit trampolines (optional upgrade)", false, true},
    {"probe_lsm_file_open", "BPF LSM file_open (in-kernel refusal of denied opens, fds and sockets)", false, true},
};

constexpr const char* kLsmList = "/sys/kernel/security/lsm";

// An LSM program loads and attaches on a kernel built with CONFIG_BPF_LSM whether or not BPF is
// among the active LSMs; only then are its hooks called. Empty when listed, else why not.
std::string bpf_lsm_inactive_reason() {
  std::ifstream in(kLsmList);
  if (!in) return fmt::format("{} cannot be read (securityfs not mounted?)", kLsmList);
  std::string list;
  std::getline(in, list);
  std::stringstream names(list);
  for (std::string name; std::getline(names, name, ',');) {
    if (name == "bpf") return {};
  }
  return fmt::format("BPF LSM not active: {} lacks bpf ({}); boot with lsm=...,bpf", kLsmList, list);
}

struct SkeletonDeleter {
  void operator()(nhiguard_probe* skel) const { nhiguard_probe__destroy(skel); }
};

FeatureResult run_probe(const ProbeSpec& spec) {
  FeatureResult result{.name = std::string(spec.program).substr(std::strlen("probe_")),
                       .description = spec.description,
                       .required = spec.required};
  std::unique_ptr<nhiguard_probe, SkeletonDeleter> skel(nhiguard_probe__open());
  if (!skel) {
    result.error = fmt::format("open: {}", std::strerror(errno));
    return result;
  }
  bpf_program* target = nullptr;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel->obj) {
    const bool is_target = std::strcmp(bpf_program__name(prog), spec.program) == 0;
    bpf_program__set_autoload(prog, is_target);
    if (is_target) target = prog;
  }
  if (!target) {
    result.error = "probe program missing from the object";
    return result;
  }
  if (int err = nhiguard_probe__load(skel.get()); err != 0) {
    result.error = fmt::format("load: {}", std::strerror(-err));
    return result;
  }
  if (spec.attach) {
    bpf_link* link = bpf_program__attach(target);
    if (!link) {
      result.error = fmt::format("attach: {}", std::strerror(errno));
      return result;
    }
    bpf_link__destroy(link);
  }
  if (std::strcmp(spec.program, "probe_lsm_file_open") == 0) {
    result.error = bpf_lsm_inactive_reason();
    if (!result.error.empty()) return result;
  }
  result.supported = true;
  return result;
}

}  // namespace

bool FeatureReport::supports(const std::string& name) const {
  for (const auto& f : features) {
    if (f.name == name) return f.supported;
  }
  return false;
}

bool FeatureReport::all_required_supported() const {
  for (const auto& f : features) {
    if (f.required && !f.supported) return false;
  }
  return true;
}

EnforcementPath choose_enforcement(const FeatureReport& report) {
  for (const auto& f : report.features) {
    if (f.name != "lsm_file_open") continue;
    if (f.supported) {
      return {.lsm = true,
              .reason = fmt::format("BPF LSM active (the lsm_file_open probe attached, {} lists bpf)", kLsmList)};
    }
    return {.lsm = false, .reason = "lsm_file_open unsupported: " + f.error};
  }
  return {.lsm = false, .reason = "lsm_file_open was not probed"};
}

FeatureReport probe_kernel_features() {
  FeatureReport report;
  // Probes that fail are expected on some kernels; keep libbpf's verifier dumps out of the log.
  libbpf_print_fn_t previous = libbpf_set_print(nullptr);
  for (const auto& spec : kProbes) report.features.push_back(run_probe(spec));
  libbpf_set_print(previous);
  return report;
}

nlohmann::json FeatureReport::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& f : features) out[f.name] = f.supported;
  return out;
}

}  // namespace nhiguard::kernel
