#include "kernel/host_prerequisites.h"

#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <utility>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace nhiguard::kernel {
namespace {

constexpr int64_t kBpfFsMagic = 0xcafe4a11;
constexpr int64_t kTraceFsMagic = 0x74726163;

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

bool has_effective_cap(const __user_cap_data_struct (&data)[2], int cap) {
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

Result<bool> ensure_fs(const std::string& path, const char* fstype, int64_t magic) {
  struct statfs fs{};
  if (statfs(path.c_str(), &fs) != 0) {
    if (errno != ENOENT) return fail(Error::from_current_errno("statfs " + path));
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail(Error::from_current_errno("mkdir " + path));
    }
  } else if (static_cast<int64_t>(fs.f_type) == magic) {
    return false;
  }
  if (mount(fstype, path.c_str(), fstype, 0, nullptr) != 0) {
    return fail(Error::from_current_errno(fmt::format("mount -t {} {}", fstype, path)));
  }
  if (statfs(path.c_str(), &fs) != 0 || static_cast<int64_t>(fs.f_type) != magic) {
    return fail(Error::plain(fmt::format("mounted {} at {} but statfs does not show it", fstype, path)));
  }
  spdlog::info("mounted {} at {} (it was not mounted)", fstype, path);
  return true;
}

}  // namespace

PrivilegeReport check_privileges() {
  PrivilegeReport report;
  report.is_root = geteuid() == 0;
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) {
    report.missing.push_back("capget failed: " + std::string(strerror(errno)));
    return report;
  }
  // Since 5.8, CAP_BPF + CAP_PERFMON load and attach the tracing programs and CAP_NET_ADMIN the
  // cgroup (egress) ones; CAP_SYS_ADMIN alone covers all three, and is the only way before 5.8.
  if (!has_effective_cap(data, CAP_SYS_ADMIN)) {
    for (auto [cap, name] : {std::pair{CAP_BPF, "CAP_BPF"}, std::pair{CAP_PERFMON, "CAP_PERFMON"},
                             std::pair{CAP_NET_ADMIN, "CAP_NET_ADMIN"}}) {
      if (!has_effective_cap(data, cap)) report.missing.push_back(std::string(name) + " (or CAP_SYS_ADMIN)");
    }
  }
  if (!has_effective_cap(data, CAP_DAC_READ_SEARCH)) report.missing.push_back("CAP_DAC_READ_SEARCH");
  if (!has_effective_cap(data, CAP_SYS_PTRACE)) report.missing.push_back("CAP_SYS_PTRACE");
  return report;
}

Result<void> check_kernel_btf(const std::string& path) {
  if (access(path.c_str(), R_OK) != 0) {
    return fail(
        Error::from_current_errno("kernel BTF " + path + " (the kernel must be built with CONFIG_DEBUG_INFO_BTF=y)"));
  }
  return {};
}

Result<bool> ensure_bpffs(const std::string& path) {
  return ensure_fs(path, "bpf", kBpfFsMagic);
}
Result<bool> ensure_tracefs(const std::string& path) {
  return ensure_fs(path, "tracefs", kTraceFsMagic);
}

}  // namespace nhiguard::kernel
