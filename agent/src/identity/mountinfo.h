// Parsing /proc/<pid>/mountinfo, and finding the mounts the agent depends on: the cgroup2
// hierarchy, bpffs and tracefs.
//
// Where cgroup2 lives varies by host: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid (systemd "hybrid" mode, cgroup v1 controllers beside an empty-controller v2 tree), absent
// on legacy-only hosts. Nothing here assumes a path; everything is read from mountinfo.
//
// The parsers are pure (text in, values out) and safe from any thread. find_cgroup2_mount reads the
// real file each call; callers that need it often should keep the answer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nhiguard::identity {

// One mountinfo line (proc(5)). String fields are unescaped: the kernel writes space, tab, newline
// and backslash in paths as \040, \011, \012 and \134.
struct MountEntry {
  uint32_t mount_id = 0;
  uint32_t parent_id = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::string root;         // the root of the mount within its filesystem ("/" for a whole fs)
  std::string mount_point;  // where it is mounted, relative to the reader's root
  std::string mount_options;
  std::vector<std::string> optional_fields;  // "shared:5", "master:1", ...
  std::string fs_type;                       // "cgroup2", "bpf", "tracefs", "ext4", ...
  std::string source;
  std::string super_options;
};

// Parses the whole text. Fails on the first malformed line with its line number: the kernel never
// writes one, so a failure means the input is not mountinfo, and guessing would hide that.
Result<std::vector<MountEntry>> parse_mountinfo(std::string_view text);

// Undoes the kernel's octal escapes (\ooo); other backslashes are kept as they are.
std::string unescape_mount_field(std::string_view field);

// All mounts of one filesystem type, in mountinfo order.
std::vector<MountEntry> mounts_of_type(const std::vector<MountEntry>& mounts, std::string_view fs_type);

// The cgroup2 mount that shows the whole hierarchy. Among several (bind mounts, container views),
// prefers one whose root is "/", then /sys/fs/cgroup, then /sys/fs/cgroup/unified, then the first.
// A later mount on the same mount point hides an earlier one, so only the last at each point counts.
// Fails with ENOENT when there is none (a legacy cgroup v1-only host).
Result<MountEntry> find_cgroup2(const std::vector<MountEntry>& mounts);

// The mount points of bpffs ("bpf") and tracefs mounts, in mountinfo order.
std::vector<std::string> bpffs_mount_points(const std::vector<MountEntry>& mounts);
std::vector<std::string> tracefs_mount_points(const std::vector<MountEntry>& mounts);

// Reads `mountinfo_path` and returns the cgroup2 mount point (find_cgroup2).
Result<std::string> find_cgroup2_mount(const std::string& mountinfo_path = "/proc/self/mountinfo");

}  // namespace nhiguard::identity
