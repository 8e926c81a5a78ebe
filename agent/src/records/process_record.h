// The process and the workload behind an event, as the wire carries them (v1::Process,
// v1::Workload) and as the JSON lines render them ("process" and "workload" objects).
//
// One mapping: an identity becomes its wire messages here, and the JSON objects are rendered from
// those messages, so an event line and its report can never disagree on a field or its escaping.
// Strings that came from the kernel or /proc (comm, exe, cmdline, ancestry, workload name, id,
// unit and cgroup) are escaped once, in *_to_wire, with escape_bytes.
//
// JSON keys absent by design: exe_sha256 when not hashed, exe_deleted and cmdline_truncated when
// false, audit_session_id and login_uid when unknown, notes when there are none; a workload's
// runtime, pod_uid, container_id, qos_class and unit when not of its kind.
//
// Pure: no I/O; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "identity/identity_resolver.h"
#include "nhiguard/v1/types.pb.h"

namespace nhiguard::records {

v1::Process process_to_wire(const identity::ResolvedIdentity& identity);
v1::Workload workload_to_wire(const identity::WorkloadIdentity& workload);

nlohmann::json process_json(const v1::Process& process);
nlohmann::json workload_json(const v1::Workload& workload);

}  // namespace nhiguard::records
