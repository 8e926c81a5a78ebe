#include "containment/target_resolver.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "containment/protected_targets.h"
#include "identity/cgroup_classifier.h"
#include "identity/mountinfo.h"
#include "identity/process_info.h"

namespace nhiguard::containment {
namespace {

constexpr size_t kMaxWalkDepth = 64;

std::string strip_trailing_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

uint64_t ns_per_clock_tick() {
  static const uint64_t value = [] {
    const long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? 1'000'000'000ULL / static_cast<uint64_t>(hz) : 10'000'000ULL;
  }();
  return value;
}

uint64_t start_ticks_to_ns(uint64_t ticks) {
  return ticks * ns_per_clock_tick();
}

bool same_start(uint64_t a_ns, uint64_t b_ns) {
  return a_ns / ns_per_clock_tick() == b_ns / ns_per_clock_tick();
}

Result<void> walk_directories(const std::string& top, const std::function<void(const std::string&)>& visit,
                              size_t max_depth) {
  struct Pending {
    std::string relative;
    size_t depth;
  };
  const int top_fd = ::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top_fd < 0) return fail(Error::from_current_errno("open " + top));
  ::close(top_fd);
  std::vector<Pending> stack{{"", 0}};
  while (!stack.empty()) {
    Pending cur = std::move(stack.back());
    stack.pop_back();
    const std::string path = cur.relative.empty() ? top : top + "/" + cur.relative;
    DIR* dir = ::opendir(path.c_str());
    if (!dir) continue;  // removed meanwhile, or unreadable: nothing to find there
    std::vector<std::string> children;
    while (const dirent* ent = ::readdir(dir)) {
      const std::string_view name(ent->d_name);
      if (name == "." || name == "..") continue;
      bool is_dir = ent->d_type == DT_DIR;
      if (ent->d_type == DT_UNKNOWN) {
        struct stat st{};
        is_dir = ::fstatat(::dirfd(dir), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
      }
      if (is_dir) children.emplace_back(name);
    }
    ::closedir(dir);
    std::sort(children.begin(), children.end(), std::greater<>());  // popped in name order
    for (auto& child : children) {
      std::string rel = cur.relative.empty() ? child : cur.relative + "/" + child;
      visit(rel);
      if (cur.depth + 1 < max_depth) stack.push_back({std::move(rel), cur.depth + 1});
    }
  }
  return {};
}

TargetResolver::TargetResolver(std::string cgroup2_root, std::string proc_root)
    : root_(strip_trailing_slashes(std::move(cgroup2_root))), proc_root_(std::move(proc_root)) {}

Result<TargetResolver> TargetResolver::open_host() {
  auto root = identity::find_cgroup2_mount();
  if (!root) return fail(root.error());
  return TargetResolver(*root);
}

bool TargetResolver::is_unit_name(std::string_view name) {
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..") return false;
  for (std::string_view suffix : {".service", ".scope", ".slice"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) return true;
  }
  return false;
}

Result<std::string> TargetResolver::normalize_cgroup_input(std::string_view input, std::string_view root) {
  if (input.empty()) return fail(Error{EINVAL, "empty cgroup path"});
  if (input.find('\0') != std::string_view::npos) return fail(Error{EINVAL, "cgroup path contains a NUL byte"});
  std::string_view rel = input;
  const std::string root_norm = strip_trailing_slashes(std::string(root));
  // An absolute path spelled with the mount point: strip it. Otherwise a leading '/' means the
  // cgroup2 root, like a /proc/PID/cgroup line.
  if (root_norm != "/" && rel.starts_with(root_norm) &&
      (rel.size() == root_norm.size() || rel[root_norm.size()] == '/')) {
    rel.remove_prefix(root_norm.size());
  }
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos < rel.size()) {
    while (pos < rel.size() && rel[pos] == '/') ++pos;
    size_t end = rel.find('/', pos);
    if (end == std::string_view::npos) end = rel.size();
    const std::string_view part = rel.substr(pos, end - pos);
    pos = end;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) {
        return fail(Error{EINVAL, fmt::format("cgroup path {} escapes the cgroup2 root {}", input, root_norm)});
      }
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  if (parts.empty()) return std::string("/");
  std::string out;
  for (auto p : parts) {
    out += '/';
    out += p;
  }
  return out;
}

Result<uint64_t> TargetResolver::cgroup_id_of(const std::string& relative) const {
  const std::string path = relative == "/" ? root_ : root_ + relative;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return fail(Error::from_current_errno("stat " + path));
  if (!S_ISDIR(st.st_mode)) return fail(Error{ENOTDIR, fmt::format("{} is not a cgroup (not a directory)", path)});
  return static_cast<uint64_t>(st.st_ino);
}

Result<ActionTarget> TargetResolver::resolve_cgroup(std::string_view input) const {
  auto rel = normalize_cgroup_input(input, root_);
  if (!rel) return fail(rel.error());
  const std::string abs = *rel == "/" ? root_ : root_ + *rel;
  auto id = cgroup_id_of(*rel);
  if (!id) {
    if (id.error().code == ENOENT) {
      return fail(Error{ENOENT, fmt::format("unknown cgroup {}: no directory {} under {}", input, *rel, root_)});
    }
    return fail(id.error());
  }
  // Lexically inside is not enough if a component is a symlink (not on cgroupfs, but the root
  // may be any tree): the real location must be inside the real root too.
  char real_root[PATH_MAX], real_path[PATH_MAX];
  if (::realpath(root_.c_str(), real_root) == nullptr) return fail(Error::from_current_errno("realpath " + root_));
  if (::realpath(abs.c_str(), real_path) == nullptr) return fail(Error::from_current_errno("realpath " + abs));
  const std::string_view rr(real_root), rp(real_path);
  if (!(rp == rr || (rp.starts_with(rr) && (rr == "/" || rp[rr.size()] == '/')))) {
    return fail(
        Error{EINVAL, fmt::format("cgroup path {} resolves to {}, outside the cgroup2 root {}", input, rp, rr)});
  }
  ActionTarget target;
  target.cgroup_path = *rel;
  target.cgroup_id = *id;
  return target;
}

Result<ActionTarget> TargetResolver::resolve_unit(std::string_view name) const {
  if (!is_unit_name(name)) {
    return fail(
        Error{EINVAL, fmt::format("{} is not a unit name (expected NAME.service, NAME.scope or NAME.slice)", name)});
  }
  std::vector<std::string> matches;
  auto walked = walk_directories(
      root_,
      [&](const std::string& rel) {
        const std::string path = "/" + rel;
        if (identity::system_unit_cgroup_name(path) == name) matches.push_back(path);
      },
      kMaxWalkDepth);
  if (!walked) return fail(walked.error());
  if (matches.empty()) {
    return fail(Error{ENOENT, fmt::format("unknown unit {}: no system unit cgroup of that name under {} (a unit's "
                                          "cgroup lies below slices only, e.g. /system.slice/{}; name any other "
                                          "cgroup with --cgroup)",
                                          name, root_, name)});
  }
  if (matches.size() > 1) {
    std::sort(matches.begin(), matches.end());
    return fail(Error{ENOTUNIQ, fmt::format("unit {} matches several cgroups under {}: {}; name one with --cgroup",
                                            name, root_, fmt::join(matches, ", "))});
  }
  auto target = resolve_cgroup(matches.front());
  if (!target) return fail(target.error());
  target->unit = std::string(name);
  return target;
}

Result<ActionTarget> TargetResolver::resolve_pid(pid_t pid) const {
  if (pid <= 0) return fail(Error{EINVAL, fmt::format("invalid pid {}", pid)});
  auto dir = identity::ProcessDir::open(proc_root_, pid);
  if (!dir) {
    return fail(Error{ESRCH, fmt::format("no process {}: {}", pid, dir.error().message)});
  }
  auto info = dir->info();
  if (!info) return fail(Error{ESRCH, fmt::format("process {}: {}", pid, info.error().message)});
  ActionTarget target;
  target.pid = static_cast<uint32_t>(pid);
  target.pid_start_ns = start_ticks_to_ns(info->start_time_ticks);
  target.session_id = info->session_id;
  if (!info->cgroup_path.empty()) {
    target.cgroup_path = normalize_cgroup_relpath(info->cgroup_path);
    // A removed cgroup (or one of another namespace's view) has no id here; the pid is the key.
    if (!info->cgroup_deleted) {
      if (auto id = cgroup_id_of(target.cgroup_path)) target.cgroup_id = *id;
    }
  }
  return target;
}

Result<ActionTarget> TargetResolver::resolve(const TargetRequest& request) const {
  const int given = !request.unit.empty() + !request.cgroup.empty() + (request.pid != 0);
  if (given != 1) {
    return fail(Error{EINVAL, given == 0 ? "no target: give one of --unit, --cgroup, --pid"
                                         : "several targets: give only one of --unit, --cgroup, --pid"});
  }
  if (!request.unit.empty()) return resolve_unit(request.unit);
  if (!request.cgroup.empty()) return resolve_cgroup(request.cgroup);
  return resolve_pid(request.pid);
}

}  // namespace nhiguard::containment
