// The verifier's cost of every program the sensor loads (sensor and egress objects, and the LSM
// object where BPF LSM is active), printed per
// kernel: name, type, instructions the verifier processed (verified_insns, 5.16+) and the
// translated length. In the kernel matrix (ctest -L kernel) this is the benchmark of the programs on
// each kernel; here it checks that each one went through this kernel's verifier. Needs root.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/feature_probe.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"

namespace fs = std::filesystem;

namespace {

struct LoadedProgram {
  uint32_t id = 0;
  std::string name;
  uint32_t type = 0;
  uint32_t verified_insns = 0;
  uint32_t xlated_insns = 0;
};

// The kernel keeps 15 bytes of a program's name; its BTF keeps the whole function name.
std::string full_name(int fd, const bpf_prog_info& info) {
  std::string name = info.name;
  if (info.btf_id == 0 || info.nr_func_info == 0) return name;
  std::vector<bpf_func_info> funcs(info.nr_func_info);
  bpf_prog_info again{};
  again.nr_func_info = info.nr_func_info;
  again.func_info_rec_size = sizeof(bpf_func_info);
  again.func_info = reinterpret_cast<uintptr_t>(funcs.data());
  uint32_t len = sizeof(again);
  if (bpf_obj_get_info_by_fd(fd, &again, &len) != 0) return name;
  btf* types = btf__load_from_kernel_by_id(info.btf_id);
  if (!types) return name;
  if (const btf_type* func = btf__type_by_id(types, funcs[0].type_id))
    name = btf__name_by_offset(types, func->name_off);
  btf__free(types);
  return name;
}

std::vector<LoadedProgram> programs_after(uint32_t after_id) {
  std::vector<LoadedProgram> out;
  uint32_t id = after_id;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;  // unloaded between the two calls
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      out.push_back({.id = id,
                     .name = full_name(fd, info),
                     .type = info.type,
                     .verified_insns = info.verified_insns,
                     .xlated_insns = info.xlated_prog_len / 8});
    }
    close(fd);
  }
  return out;
}

uint32_t last_program_id() {
  uint32_t id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
  }
  return id;
}

TEST(VerifierReport, EveryProgramIsVerifiedAndItsCostPrinted) {
  ASSERT_EQ(geteuid(), 0) << "the bpf tier needs root";
  ASSERT_TRUE(nhiguard::kernel::check_kernel_btf().has_value());
  ASSERT_TRUE(nhiguard::kernel::ensure_bpffs().has_value());
  ASSERT_TRUE(nhiguard::kernel::ensure_tracefs().has_value());
  const std::string pin_dir = "/sys/fs/bpf/nhiguard-test-verifier-" + std::to_string(getpid());
  const bool lsm = nhiguard::kernel::choose_enforcement(nhiguard::kernel::probe_kernel_features()).lsm;
  const uint32_t before = last_program_id();
  auto sensor = nhiguard::kernel::KernelSensor::start(
      {.pin_dir = pin_dir, .ringbuf_bytes = 1u << 20, .lsm_enforcement = lsm}, [](std::span<const std::byte>) {});
  ASSERT_TRUE(sensor.has_value()) << sensor.error().message;
  // Programs loaded after `before` by this process; the bpf tier runs alone (the kernel-tests lock,
  // or a guest with nothing else loaded), so they are the sensor's.
  const auto programs = programs_after(before);
  (*sensor).reset();
  fs::remove_all(pin_dir);

  utsname uts{};
  uname(&uts);
  std::printf("verifier report on %s: %zu programs\n", uts.release, programs.size());
  std::printf("%-36s %5s %14s %12s\n", "program", "type", "verified_insns", "xlated_insns");
  std::set<uint32_t> types;
  uint64_t total = 0;
  for (const auto& p : programs) {
    std::printf("%-36s %5u %14u %12u\n", p.name.c_str(), p.type, p.verified_insns, p.xlated_insns);
    EXPECT_GT(p.xlated_insns, 0u) << p.name;
    EXPECT_GT(p.verified_insns, 0u) << p.name << ": the verifier reports no instructions processed";
    types.insert(p.type);
    total += p.verified_insns;
  }
  std::printf("verifier report on %s: %llu instructions verified in all\n", uts.release,
              static_cast<unsigned long long>(total));
  // The credential opens (syscall tracepoints), process lifecycle (BTF tracepoints) and egress
  // (cgroup socket address hooks and cgroup_skb) are all part of what loads.
  EXPECT_TRUE(types.count(BPF_PROG_TYPE_TRACEPOINT)) << "no syscall tracepoint program loaded";
  EXPECT_TRUE(types.count(BPF_PROG_TYPE_TRACING)) << "no BTF tracepoint program loaded";
  EXPECT_TRUE(types.count(BPF_PROG_TYPE_CGROUP_SOCK_ADDR)) << "no cgroup connect/sendmsg program loaded";
  EXPECT_TRUE(types.count(BPF_PROG_TYPE_CGROUP_SKB)) << "no cgroup_skb program loaded";
  EXPECT_EQ(types.count(BPF_PROG_TYPE_LSM), lsm ? 1u : 0u) << "BPF LSM programs where BPF LSM is active";
}

}  // namespace
