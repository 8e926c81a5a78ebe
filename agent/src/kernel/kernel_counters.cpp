#include "kernel/kernel_counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <vector>

#include <fmt/format.h>

#include "kernel/bpf_map_ops.h"

namespace nhiguard::kernel {

Result<SensorCounters> KernelCounters::counters() const {
  const int fd = fd_;
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return fail(libbpf_error(cpus, "count possible CPUs"));
  std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
  SensorCounters out;
  for (uint32_t i = 0; i < NHG_CTR__COUNT; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) {
      return fail(Error::from_current_errno(fmt::format("read counter {} of nhg_counters", i)));
    }
    for (uint64_t v : per_cpu) out.values[i] += v;
  }
  return out;
}

Result<uint32_t> KernelCounters::counters_map_id() const {
  bpf_map_info info{};
  uint32_t length = sizeof(info);
  if (int err = bpf_obj_get_info_by_fd(fd_, &info, &length); err != 0) {
    return fail(libbpf_error(err, "read the id of nhg_counters"));
  }
  return info.id;
}

}  // namespace nhiguard::kernel
