#include "identity/cgroup_classifier.h"

#include <vector>

#include "common/enum_names.h"

namespace nhiguard::identity {
namespace {

constexpr std::string_view kService = ".service";
constexpr std::string_view kScope = ".scope";
constexpr std::string_view kSlice = ".slice";

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return !s.empty();
}

bool is_digits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty() && s.size() <= 10;
}

std::optional<uint32_t> parse_uid(std::string_view s) {
  if (!is_digits(s)) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) v = v * 10 + static_cast<uint64_t>(c - '0');
  if (v > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::string_view strip_suffix(std::string_view s, std::string_view suffix) {
  return s.ends_with(suffix) ? s.substr(0, s.size() - suffix.size()) : s;
}

// The systemd driver writes pod uids with '_' for '-', because '-' separates slice levels in a
// slice name; report the uid as the API server knows it.
std::optional<std::string> normalize_pod_uid(std::string_view raw) {
  std::string uid(raw);
  for (char& c : uid) {
    if (c == '_') c = '-';
  }
  if (uid.size() == 32 && is_lower_hex(uid)) return uid;  // static (mirror) pods: a hash, no dashes
  if (uid.size() != 36) return std::nullopt;
  for (size_t i = 0; i < uid.size(); ++i) {
    const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_here != (uid[i] == '-')) return std::nullopt;
    if (!dash_here && !is_lower_hex(std::string_view(&uid[i], 1))) return std::nullopt;
  }
  return uid;
}

struct Pod {
  std::string uid;
  std::string qos;
};

std::string qos_from_name(std::string_view level) {
  if (level == "burstable") return "burstable";
  if (level == "besteffort") return "besteffort";
  return "guaranteed";
}

// "kubepods-burstable-pod<uid>.slice", "kubepods-pod<uid>.slice", and prefixed variants such as
// kind's "kubelet-kubepods-burstable-pod<uid>.slice".
std::optional<Pod> match_systemd_pod(std::string_view component) {
  if (!component.ends_with(kSlice)) return std::nullopt;
  const std::string_view stem = strip_suffix(component, kSlice);
  const size_t pos = stem.rfind("-pod");
  if (pos == std::string_view::npos) return std::nullopt;
  const std::string_view prefix = stem.substr(0, pos);
  if (!prefix.starts_with("kubepods") && prefix.find("-kubepods") == std::string_view::npos) return std::nullopt;
  auto uid = normalize_pod_uid(stem.substr(pos + 4));
  if (!uid) return std::nullopt;
  std::string qos = "guaranteed";
  if (prefix.ends_with("-burstable")) qos = "burstable";
  if (prefix.ends_with("-besteffort")) qos = "besteffort";
  return Pod{std::move(*uid), std::move(qos)};
}

// "pod<uid>" below a "kubepods" cgroup, with the QoS level (if any) as its parent.
std::optional<Pod> match_cgroupfs_pod(const std::vector<std::string_view>& parts, size_t i) {
  const std::string_view component = parts[i];
  if (!component.starts_with("pod")) return std::nullopt;
  bool below_kubepods = false;
  for (size_t j = 0; j < i; ++j) {
    if (parts[j].starts_with("kubepods")) below_kubepods = true;
  }
  if (!below_kubepods) return std::nullopt;
  auto uid = normalize_pod_uid(component.substr(3));
  if (!uid) return std::nullopt;
  return Pod{std::move(*uid), i > 0 ? qos_from_name(parts[i - 1]) : "guaranteed"};
}

struct Container {
  std::string runtime;
  std::string id;
};

std::string runtime_from_prefix(std::string_view prefix) {
  if (prefix == "docker") return "docker";
  if (prefix == "cri-containerd" || prefix == "nerdctl") return "containerd";
  if (prefix == "crio") return "crio";
  if (prefix == "libpod") return "podman";
  return {};
}

// A bare 64-hex cgroup name is a container only below a cgroup that tells whose it is (docker's
// and containerd's cgroupfs parents) or inside a pod; elsewhere it is just a hex-named directory.
std::string runtime_from_ancestors(const std::vector<std::string_view>& parts, size_t i) {
  for (size_t j = i; j-- > 0;) {
    const std::string_view p = parts[j];
    if (p == "docker" || p == "docker.service") return "docker";
    if (p == "containerd" || p == "containerd.service") return "containerd";
    if (p == "crio" || p == "crio.service") return "crio";
    if (p == "libpod_parent") return "podman";
  }
  return {};
}

std::optional<Container> match_container(const std::vector<std::string_view>& parts, size_t i, bool in_pod) {
  const std::string_view component = parts[i];
  // "<prefix>-<id>.scope" (systemd drivers) or "<prefix>-<id>" (cri-o and podman cgroupfs drivers).
  // "crio-conmon-<id>" and "libpod-conmon-<id>" fail the id check below: "conmon-<id>" is not hex.
  const std::string_view stem = strip_suffix(component, kScope);
  if (const size_t dash = stem.rfind('-'); dash != std::string_view::npos) {
    const std::string_view id = stem.substr(dash + 1);
    std::string runtime = runtime_from_prefix(stem.substr(0, dash));
    if (!runtime.empty() && is_container_id(id)) return Container{std::move(runtime), std::string(id)};
  }
  if (is_container_id(component)) {
    // Inside a pod the cgroupfs driver names containers by bare id whatever the runtime, and the
    // cgroups above the pod may belong to an outer runtime (a kind node is a docker container).
    if (in_pod) return Container{"", std::string(component)};
    std::string runtime = runtime_from_ancestors(parts, i);
    if (!runtime.empty()) return Container{std::move(runtime), std::string(component)};
  }
  return std::nullopt;
}

// The systemd cgroup-parent notation "<slice>:<prefix>:<id>" taken literally as a directory name,
// which happens when the runtime and kubelet disagree on the cgroup driver.
bool match_colon_form(std::string_view component, std::optional<Pod>& pod, std::optional<Container>& container) {
  const size_t first = component.find(':');
  if (first == std::string_view::npos) return false;
  const size_t second = component.find(':', first + 1);
  if (second == std::string_view::npos || component.find(':', second + 1) != std::string_view::npos) return false;
  const std::string_view slice = component.substr(0, first);
  const std::string_view prefix = component.substr(first + 1, second - first - 1);
  const std::string_view id = component.substr(second + 1);
  std::string runtime = runtime_from_prefix(prefix);
  if (runtime.empty() || !is_container_id(id)) return false;
  pod = match_systemd_pod(slice);
  container = Container{std::move(runtime), std::string(id)};
  return true;
}

bool is_session_scope(std::string_view component) {
  return component.starts_with("session-") && component.ends_with(kScope) &&
         component.size() > std::string_view("session-.scope").size();
}

std::optional<uint32_t> user_slice_uid(std::string_view component) {
  if (!component.starts_with("user-") || !component.ends_with(kSlice)) return std::nullopt;
  return parse_uid(strip_suffix(component, kSlice).substr(5));
}

std::optional<uint32_t> user_manager_uid(std::string_view component) {
  if (!component.starts_with("user@") || !component.ends_with(kService)) return std::nullopt;
  return parse_uid(strip_suffix(component, kService).substr(5));
}

struct SplitPath {
  std::vector<std::string_view> parts;
  bool climbs = false;  // had ".." components: not anchored at the cgroup2 root
};

SplitPath split_path(std::string_view path) {
  SplitPath out;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    const std::string_view part = path.substr(pos, next - pos);
    // ".." appears when the reader sits in another cgroup namespace ("/../../x.service"); the
    // names that follow are still the workload's, but their place below the root is unknown.
    if (part == "..") out.climbs = true;
    if (!part.empty() && part != "." && part != "..") out.parts.push_back(part);
    pos = next + 1;
  }
  return out;
}

bool is_unit_component(std::string_view component) {
  return (component.ends_with(kService) && component.size() > kService.size()) ||
         (component.ends_with(kScope) && component.size() > kScope.size());
}

// Index of the first component at or after `from` that is not a slice, or parts.size().
size_t first_non_slice(const std::vector<std::string_view>& parts, size_t from) {
  while (from < parts.size() && is_slice_name(parts[from])) ++from;
  return from;
}

// Rule 4: the index of the system unit component, when the path is in one.
std::optional<size_t> system_unit_index(const SplitPath& path) {
  if (path.climbs) return std::nullopt;
  const size_t i = first_non_slice(path.parts, 0);
  if (i < path.parts.size() && is_unit_component(path.parts[i])) return i;
  return std::nullopt;
}

}  // namespace

bool is_container_id(std::string_view s) {
  return s.size() == 64 && is_lower_hex(s);
}

bool is_slice_name(std::string_view component) {
  return component.size() > kSlice.size() && component.ends_with(kSlice);
}

std::string_view system_unit_cgroup_name(std::string_view cgroup_path) {
  const SplitPath path = split_path(cgroup_path);
  if (path.climbs || path.parts.empty()) return {};
  const std::string_view last = path.parts.back();
  if (first_non_slice(path.parts, 0) < path.parts.size() - 1) return {};
  return is_unit_component(last) || is_slice_name(last) ? last : std::string_view{};
}

constexpr auto kWorkloadKinds = enum_names<WorkloadKind>({{WorkloadKind::bare_process, "process"},
                                                          {WorkloadKind::systemd_service, "systemd"},
                                                          {WorkloadKind::container, "container"},
                                                          {WorkloadKind::kubernetes_pod, "k8s_pod"},
                                                          {WorkloadKind::user_session, "user_session"}});

// An unknown value is named as the least trusted kind, never as one a policy may single out.
std::string_view to_string(WorkloadKind kind) {
  return kWorkloadKinds.name(kind, "process");
}

std::optional<WorkloadKind> workload_kind_from_string(std::string_view name) {
  return kWorkloadKinds.parse(name);
}

CgroupWorkload classify_cgroup_path(std::string_view cgroup_path) {
  const SplitPath split = split_path(cgroup_path);
  const std::vector<std::string_view>& parts = split.parts;

  // One pass collects the container and pod candidates; precedence is applied after, so the order
  // of components in exotic nestings (a kind node inside docker, podman inside a user session)
  // does not matter. Sessions and units are recognised by their place from the root, below.
  std::optional<Pod> pod;
  size_t pod_index = 0;
  std::optional<Container> pod_container;
  std::optional<Container> container;

  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    std::optional<Pod> colon_pod;
    std::optional<Container> colon_container;
    if (match_colon_form(part, colon_pod, colon_container)) {
      if (colon_pod) {
        pod = std::move(colon_pod);
        pod_index = i;
        pod_container = colon_container;
      }
      container = std::move(colon_container);
      continue;
    }
    if (auto p = match_systemd_pod(part); p) {
      pod = std::move(p);
      pod_index = i;
      pod_container.reset();
      continue;
    }
    if (auto p = match_cgroupfs_pod(parts, i); p) {
      pod = std::move(p);
      pod_index = i;
      pod_container.reset();
      continue;
    }
    const bool directly_in_pod = pod && !pod_container && pod_index + 1 == i;
    if (auto c = match_container(parts, i, directly_in_pod); c) {
      if (directly_in_pod) pod_container = c;
      container = std::move(c);
    }
  }

  // Rule 3's places: /user.slice/user-<uid>.slice/{session-<N>.scope, user@<uid>.service}.
  std::optional<uint32_t> owner;
  bool in_session = false, in_manager = false;
  if (!split.climbs && parts.size() >= 3 && parts[0] == "user.slice") {
    owner = user_slice_uid(parts[1]);
    if (owner && is_session_scope(parts[2])) in_session = true;
    if (owner && user_manager_uid(parts[2]) == owner) in_manager = true;
  }

  CgroupWorkload out;
  if (auto unit = system_unit_index(split)) out.unit = std::string(parts[*unit]);

  if (pod) {
    out.kind = WorkloadKind::kubernetes_pod;
    out.pod_uid = pod->uid;
    out.qos_class = pod->qos;
    out.name = pod->uid;
    out.id = pod->uid;
    if (pod_container) {
      out.container_id = pod_container->id;
      out.runtime = pod_container->runtime;
    }
    return out;
  }
  if (container) {
    out.kind = WorkloadKind::container;
    out.runtime = container->runtime;
    out.container_id = container->id;
    out.id = container->id;
    out.name = container->id.substr(0, 12);
    return out;
  }
  if (in_session || in_manager) {
    out.kind = WorkloadKind::user_session;
    out.session_uid = owner;
    if (in_session) {
      out.session = std::string(parts[2]);
      out.name = out.session;
    } else {
      // The user unit is placed like a system unit, with the manager's cgroup as its root.
      const size_t i = first_non_slice(parts, 3);
      if (i < parts.size() && is_unit_component(parts[i])) out.user_unit = std::string(parts[i]);
      out.name = out.user_unit.empty() ? std::string(parts[2]) : out.user_unit;
    }
    out.id = out.name;
    return out;
  }
  if (!out.unit.empty()) {
    out.kind = WorkloadKind::systemd_service;
    out.name = out.unit;
    out.id = out.unit;
  }
  return out;
}

}  // namespace nhiguard::identity
