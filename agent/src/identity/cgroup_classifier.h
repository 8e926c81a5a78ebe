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
//   3. User session — a login session /user.slice/user-<uid>.slice/session-<N>.scope, or the
//      user's own service manager /user.slice/user-<uid>.slice/user@<uid>.service and anything
//      below it (the manager's user units). Both are recognised only at that place, from the
//      root: a session-3.scope or user@0.service anywhere else is just a directory name.
//      Below the manager the workload is the user unit: the first component below
//      user@<uid>.service that is not a slice, when it is a .service or .scope
//      (".../user@1000.service/app.slice/dbus.service/sub" is the user unit dbus.service).
//   4. systemd (system) unit — the system service manager's own placement: a .service or
//      .scope whose ancestors, from the cgroup2 root, are all slices:
//        /system.slice/payments.service, /system.slice/system-getty.slice/getty@tty1.service,
//        /init.scope, /apps.slice/apps-billing.slice/billing.service (a unit with Slice=).
//      The unit is that first non-slice component; cgroups below it are the unit's own
//      (/system.slice/payments.service/worker is payments.service). Only root creates cgroups
//      among the slices, and systemd delegates subtrees (user@.service, Delegate=yes services,
//      container scopes) only below a unit, so no delegated owner can create a path that reads
//      as a system unit: "/nhiguard-test-1234/payments.service",
//      "/anything/app.slice/sshd.service" and "/system.slice/foo.service/sub/sshd.service" are
//      not the unit sshd.service or payments.service.
//   5. Anything else is a bare process: the cgroup names no workload that a path can vouch
//      for, including a .service or .scope outside the places above (a look-alike). Its identity
//      is its uid, and its cgroup path stays in the WorkloadIdentity (and the `cgroup` policy
//      selector), so it is still containable and selectable by path, never by the unit name.
//
// A path with ".." components (the reader sits in another cgroup namespace) cannot be anchored at
// the cgroup2 root, so it names no system unit, user manager or session; container ids and pod
// uids, which are globally unique, are still recognised.
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
  std::string
      runtime;  // containers and pods: "docker", "containerd", "crio", "podman"; "" when the layout does not say
  std::string pod_uid;       // kubernetes_pod: dashed uuid (or 32-hex static pod hash)
  std::string container_id;  // container, and kubernetes_pod when the path reaches a container: 64 hex
  std::string qos_class;     // kubernetes_pod: "guaranteed", "burstable", "besteffort"
  // The system unit whose cgroup this is or lies in (rule 4: the first non-slice component when
  // every component above it is a slice), whatever the kind: payments.service for
  // /system.slice/payments.service/worker, docker-<id>.scope for a container scope,
  // user@1000.service for everything of user 1000's manager, session-3.scope for a session.
  // Empty when the path is not in a system unit.
  std::string unit;
  // user_session below a user manager: the user unit (rule 3), e.g. "dbus.service"; empty for a
  // login session and for the manager's own cgroup.
  std::string user_unit;
  // user_session, login session: the session scope, e.g. "session-3.scope".
  std::string session;
  // user_session: the uid named by user-<uid>.slice / user@<uid>.service (the session's owner).
  std::optional<uint32_t> session_uid;

  bool operator==(const CgroupWorkload&) const = default;
};

CgroupWorkload classify_cgroup_path(std::string_view cgroup_path);

// True for exactly 64 lowercase hex digits: the id format docker, containerd, cri-o and podman use.
bool is_container_id(std::string_view s);

// True for "<something>.slice".
bool is_slice_name(std::string_view component);

// The name of the system unit or slice whose own cgroup `cgroup_path` is: its last component, when
// that is a .service, .scope or .slice and every component above it is a slice (rule 4), e.g.
// "/system.slice/system-getty.slice/getty@tty1.service" -> "getty@tty1.service", "/system.slice"
// -> "system.slice". Empty for any other path: a cgroup below a unit, a look-alike below a test
// cgroup, a path with "..". This is what `nhiguardctl contain --unit NAME` looks for.
std::string_view system_unit_cgroup_name(std::string_view cgroup_path);

}  // namespace nhiguard::identity
