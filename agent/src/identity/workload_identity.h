// WorkloadIdentity: the workload a process belongs to, and its stable URI.
//
// The URI names the workload, not the process: it never contains a pid, so every process of
// payments.service — across restarts — shares one identity, and policy, taint and reports key on it.
//
//   systemd          spiffe://<td>/host/<host>/systemd/<unit>
//   Kubernetes pod   spiffe://<td>/host/<host>/k8s/pod/<pod uid>[/container/<container id>]
//   container        spiffe://<td>/host/<host>/container/<runtime|unknown>/<container id>
//   user session     spiffe://<td>/host/<host>/user/<uid>/session/<scope or user unit>
//   bare process     spiffe://<td>/host/<host>/uid/<uid>/process
//
// Only a system unit (cgroup_classifier.h rule 4: below the root's slices) is ".../systemd/<unit>".
// A user unit is ".../user/<uid>/session/<unit>", named by its manager's uid, and a cgroup that
// merely carries a unit's name elsewhere ("/nhiguard-test-1/sshd.service") is a bare process: no
// workload can take a system unit's URI, and the policy that names it, by naming a directory.
//
// Each segment is percent-encoded: bytes outside [A-Za-z0-9._~-] become %XX (uppercase hex), so a
// unit name like "getty@tty1.service" or a '/' in a hostile name cannot change the URI's shape.
//
// Pure functions and plain values: safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "identity/cgroup_classifier.h"

namespace nhiguard::identity {

struct WorkloadIdentity {
  WorkloadKind kind = WorkloadKind::bare_process;
  std::string name;
  std::string id;
  std::string runtime;
  std::string pod_uid;
  std::string container_id;
  std::string qos_class;
  std::string unit;                     // the system unit the cgroup is in (CgroupWorkload::unit)
  std::string user_unit;                // user_session below a user manager: the user unit
  std::string session;                  // user_session, login session: its scope
  std::optional<uint32_t> session_uid;  // user_session: the owner named by the path
  std::string cgroup_path;              // relative to the cgroup2 root; empty when unknown
  uint64_t cgroup_id = 0;               // 0 when unknown
  std::string uri;

  bool operator==(const WorkloadIdentity&) const = default;
};

// Percent-encodes every byte outside [A-Za-z0-9._~-].
std::string percent_encode(std::string_view segment);

// The URI of a classified workload. `uid` is the process's uid, used for bare processes, and for
// user sessions whose cgroup path does not name the user (user-<uid>.slice wins when it does: the
// session belongs to that user even when a process in it switched uid).
std::string workload_uri(std::string_view trust_domain, std::string_view host, const CgroupWorkload& workload,
                         uint32_t uid);

// Classifies `cgroup_path` and fills a WorkloadIdentity, URI included.
WorkloadIdentity make_workload_identity(std::string_view trust_domain, std::string_view host,
                                        std::string_view cgroup_path, uint64_t cgroup_id, uint32_t uid);

}  // namespace nhiguard::identity
