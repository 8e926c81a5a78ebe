// classify_cgroup_path: what kind of workload a cgroup v2 path belongs to, from the path alone.
//
// The input is a path relative to the cgroup2 root, as in a /proc/PID/cgroup "0::" line
// ("/system.slice/payments.service"). The classifier is pure (no I/O, no globals) and total: any
// string, however malformed, yields a CgroupWorkload, at worst WorkloadKind::bare_process.
//
// Layouts recognised, by precedence (first match wins):
//   1. Kubernetes pod — a pod cgroup anywhere in the path:
//        systemd driver  .../kubepods[-<qos>]-pod<uid with '_'>.slice[/<container>.scope]
//        cgroupfs driver .../kubepods[/<qos>]/pod<uid>[/<container id>]
//        misconfigured   .../kubepods-...-pod<uid>.slice:cri-containerd:<id> (one component)
//      QoS is "burstable" or "besteffort" when a QoS level is named, else "guaranteed".
//      The container is the first container-shaped component below the pod (the pause/sandbox
//      container is a container like any other at this level: the path cannot tell them apart).
//   2. Container — the innermost container-shaped component:
//        docker-<id>.scope, cri-containerd-<id>.scope, nerdctl-<id>.scope, crio-<id>.scope,
//        libpod-<id>.scope (systemd drivers) and /docker/<id>, /libpod_parent/libpod-<id>,
//        crio-<id>, or a bare <id> below a runtime's cgroup (cgroupfs drivers).
//      crio-conmon-<id>.scope and libpod-conmon-<id>.scope hold the runtime monitor, not the
//      container, and are never taken as one.
//   3. User session — a session-<N>.scope (login session), or anything below user@<uid>.service
//      (the user's own systemd manager and its units).
//   4. systemd unit — the innermost component ending in ".service"; failing that, the innermost
//      ".scope" (init.scope, transient scopes). Placement does not matter:
//      "/nhiguard-test-1234/payments.service" is the service "payments.service".
//   5. Anything else is a bare process.
//
// Container ids must be exactly 64 lowercase hex digits; pod uids must be an RFC 4122 shaped uuid
// (8-4-4-4-12 hex) or 32 hex digits (static pods, whose uid is a hash). Anything else is not an id,
// so a crafted cgroup name cannot pose as a container.
//
// Thread-safety: pure function, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nhiguard::identity {

enum class WorkloadKind : uint8_t {
  bare_process = 0,
  systemd_service = 1,
  container = 2,
  kubernetes_pod = 3,
  user_session = 4,
};

// "process", "systemd", "container", "k8s_pod", "user_session": stable, used in URIs and reports.
std::string_view to_string(WorkloadKind kind);
// Inverse of to_string; nullopt for an unknown name.
std::optional<WorkloadKind> workload_kind_from_string(std::string_view name);

// What a cgroup path says about its workload. Fields that do not apply are empty.
struct CgroupWorkload {
  WorkloadKind kind = WorkloadKind::bare_process;
  // Human-facing name: the unit name ("payments.service"), the 12-digit short container id, the
  // pod uid, or the session scope ("session-3.scope"). Empty for a bare process.
  std::string name;
  // The full unique id: unit name, 64-hex container id, pod uid, scope (or user unit) name.
  // Empty for a bare process.
  std::string id;
  std::string runtime;       // containers and pods: "docker", "containerd", "crio", "podman"; "" when the layout does not say
  std::string pod_uid;       // kubernetes_pod: dashed uuid (or 32-hex static pod hash)
  std::string container_id;  // container, and kubernetes_pod when the path reaches a container: 64 hex
  std::string qos_class;     // kubernetes_pod: "guaranteed", "burstable", "besteffort"
  std::string unit;          // the innermost systemd .service/.scope in the path, if any
  std::optional<uint32_t> session_uid;  // user_session: the uid named by user-<uid>.slice / user@<uid>.service

  bool operator==(const CgroupWorkload&) const = default;
};

CgroupWorkload classify_cgroup_path(std::string_view cgroup_path);

// True for exactly 64 lowercase hex digits: the id format docker, containerd, cri-o and podman use.
bool is_container_id(std::string_view s);

}  // namespace nhiguard::identity
