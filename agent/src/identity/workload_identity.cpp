#include "identity/workload_identity.h"

namespace nhiguard::identity {

std::string percent_encode(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (const char ch : segment) {
    const auto c = static_cast<unsigned char>(ch);
    const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                            c == '_' || c == '~' || c == '-';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string workload_uri(std::string_view trust_domain, std::string_view host, const CgroupWorkload& workload,
                         uint32_t uid) {
  std::string uri = "spiffe://" + percent_encode(trust_domain) + "/host/" + percent_encode(host) + "/";
  switch (workload.kind) {
    case WorkloadKind::systemd_service:
      uri += "systemd/" + percent_encode(workload.name);
      break;
    case WorkloadKind::kubernetes_pod:
      uri += "k8s/pod/" + percent_encode(workload.pod_uid);
      if (!workload.container_id.empty()) uri += "/container/" + percent_encode(workload.container_id);
      break;
    case WorkloadKind::container:
      uri += "container/" + percent_encode(workload.runtime.empty() ? "unknown" : workload.runtime) + "/" +
             percent_encode(workload.container_id);
      break;
    case WorkloadKind::user_session:
      uri += "user/" + std::to_string(workload.session_uid.value_or(uid)) + "/session/" + percent_encode(workload.name);
      break;
    case WorkloadKind::bare_process:
      uri += "uid/" + std::to_string(uid) + "/process";
      break;
  }
  return uri;
}

WorkloadIdentity make_workload_identity(std::string_view trust_domain, std::string_view host,
                                        std::string_view cgroup_path, uint64_t cgroup_id, uint32_t uid) {
  const CgroupWorkload w = classify_cgroup_path(cgroup_path);
  WorkloadIdentity id;
  id.kind = w.kind;
  id.name = w.name;
  id.id = w.id;
  id.runtime = w.runtime;
  id.pod_uid = w.pod_uid;
  id.container_id = w.container_id;
  id.qos_class = w.qos_class;
  id.unit = w.unit;
  id.user_unit = w.user_unit;
  id.session = w.session;
  id.session_uid = w.session_uid;
  id.cgroup_path = std::string(cgroup_path);
  id.cgroup_id = cgroup_id;
  id.uri = workload_uri(trust_domain, host, w, uid);
  return id;
}

}  // namespace nhiguard::identity
