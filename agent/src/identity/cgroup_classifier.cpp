#include "identity/cgroup_classifier.h"

#include <array>
#include <vector>

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

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    const std::string_view part = path.substr(pos, next - pos);
    // ".." appears when the reader sits in another cgroup namespace ("/../../x.service"); the
    // names that follow are still the workload's.
    if (!part.empty() && part != "." && part != "..") parts.push_back(part);
    pos = next + 1;
  }
  return parts;
}

}  // namespace

bool is_container_id(std::string_view s) { return s.size() == 64 && is_lower_hex(s); }

std::string_view to_string(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::bare_process: return "process";
    case WorkloadKind::systemd_service: return "systemd";
    case WorkloadKind::container: return "container";
    case WorkloadKind::kubernetes_pod: return "k8s_pod";
    case WorkloadKind::user_session: return "user_session";
  }
  return "process";
}

std::optional<WorkloadKind> workload_kind_from_string(std::string_view name) {
  constexpr std::array kinds{WorkloadKind::bare_process, WorkloadKind::systemd_service, WorkloadKind::container,
                             WorkloadKind::kubernetes_pod, WorkloadKind::user_session};
  for (WorkloadKind kind : kinds) {
    if (to_string(kind) == name) return kind;
  }
  return std::nullopt;
}

CgroupWorkload classify_cgroup_path(std::string_view cgroup_path) {
  const std::vector<std::string_view> parts = split_path(cgroup_path);

  // One pass collects every candidate; precedence is applied after, so the order of components
  // in exotic nestings (a kind node inside docker, podman inside a user session) does not matter.
  std::optional<Pod> pod;
  size_t pod_index = 0;
  std::optional<Container> pod_container;
  std::optional<Container> container;
  std::optional<size_t> session_scope, user_manager, innermost_service, innermost_scope;
  std::optional<uint32_t> session_uid;

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
      continue;
    }
    if (auto uid = user_slice_uid(part); uid) session_uid = uid;
    if (auto uid = user_manager_uid(part); uid) {
      session_uid = uid;
      user_manager = i;
    }
    if (is_session_scope(part)) session_scope = i;
    if (part.ends_with(kService)) innermost_service = i;
    if (part.ends_with(kScope)) innermost_scope = i;
  }

  CgroupWorkload out;
  // The innermost unit of any kind, container scopes included, for "which unit is this in".
  for (size_t i = parts.size(); i-- > 0;) {
    if (parts[i].ends_with(kService) || parts[i].ends_with(kScope)) {
      out.unit = std::string(parts[i]);
      break;
    }
  }

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
  if (session_scope || user_manager) {
    out.kind = WorkloadKind::user_session;
    out.session_uid = session_uid;
    // A login session is named by its scope; below the user manager, by the innermost user unit
    // (or the manager itself when the process sits in it directly).
    std::string_view name;
    if (session_scope && (!user_manager || *session_scope > *user_manager)) {
      name = parts[*session_scope];
    } else {
      name = parts[*user_manager];
      for (size_t i = parts.size(); i-- > *user_manager + 1;) {
        if (parts[i].ends_with(kService) || parts[i].ends_with(kScope)) {
          name = parts[i];
          break;
        }
      }
    }
    out.name = std::string(name);
    out.id = out.name;
    return out;
  }
  if (innermost_service || innermost_scope) {
    out.kind = WorkloadKind::systemd_service;
    out.name = std::string(parts[innermost_service ? *innermost_service : *innermost_scope]);
    out.id = out.name;
    out.unit = out.name;
    return out;
  }
  return out;
}

}  // namespace nhiguard::identity
