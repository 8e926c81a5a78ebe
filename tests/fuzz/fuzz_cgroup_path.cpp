// libFuzzer target: arbitrary bytes as a /proc/PID/cgroup path through classify_cgroup_path and
// system_unit_cgroup_name. Both are total (never crash, hang or throw), and the rule that keeps a
// name from claiming a unit holds for every input: a system unit is only ever read from a path
// whose components above it are all slices, and never from a path with "..".
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "identity/cgroup_classifier.h"

namespace {

bool all_slices_above_unit(std::string_view path, std::string_view unit) {
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    const std::string_view part = path.substr(pos, next - pos);
    pos = next + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return false;
    if (part == unit) return true;
    if (!nhiguard::identity::is_slice_name(part)) return false;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nhiguard::identity;
  const std::string path(reinterpret_cast<const char*>(data), size);
  const CgroupWorkload w = classify_cgroup_path(path);
  if (!w.unit.empty() && !all_slices_above_unit(path, w.unit)) std::abort();
  if (w.kind == WorkloadKind::systemd_service && (w.unit.empty() || w.name != w.unit)) std::abort();
  if (!w.user_unit.empty() && (w.kind != WorkloadKind::user_session || !w.session_uid)) std::abort();
  const std::string_view own = system_unit_cgroup_name(path);
  if (!own.empty() && !own.ends_with(".slice") && w.kind == WorkloadKind::systemd_service && w.unit != own) {
    std::abort();
  }
  return 0;
}
