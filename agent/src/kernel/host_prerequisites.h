// What the host must offer before any BPF program loads, checked and (where an agent may) fixed:
// privileges, kernel BTF, and the bpffs and tracefs mounts.
//
// A production host may boot without bpffs or tracefs mounted; the agent mounts them itself at
// their standard places rather than asking the operator to, and says so in the log.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace nhiguard::kernel {

// The capabilities the agent needs, and which of them the process lacks: CAP_BPF, CAP_PERFMON and
// CAP_NET_ADMIN (or CAP_SYS_ADMIN, which covers the three and is the only way before 5.8),
// CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE. Root without a bounding set restriction has all of them;
// under systemd the unit grants exactly the 5.8+ set.
struct PrivilegeReport {
  bool is_root = false;
  std::vector<std::string> missing;  // e.g. "CAP_BPF"
  bool ok() const { return missing.empty(); }
};
PrivilegeReport check_privileges();

// Ok when /sys/kernel/btf/vmlinux exists and is readable (CO-RE needs it).
Result<void> check_kernel_btf(const std::string& path = "/sys/kernel/btf/vmlinux");

// Mounts a filesystem of `fstype` at `path` unless one of that type is already there (checked with
// statfs magic, so an unrelated mount at the same path is detected as an error, not reused).
// Returns true when this call mounted it.
Result<bool> ensure_bpffs(const std::string& path = "/sys/fs/bpf");
Result<bool> ensure_tracefs(const std::string& path = "/sys/kernel/tracing");

}  // namespace nhiguard::kernel
