#include "containment/protected_targets.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "containment/target_resolver.h"
#include "identity/cgroup_classifier.h"
#include "identity/process_info.h"

namespace nhiguard::containment {
namespace {

Error refused(std::string why) {
  return Error{EPERM, "refused: " + std::move(why)};
}

std::string describe(const ProtectedProcess& p) {
  return p.comm.empty() ? fmt::format("pid {}", p.pid) : fmt::format("pid {} ({})", p.pid, p.comm);
}

Result<ProtectedProcess> read_protected(const std::string& proc_root, pid_t pid) {
  auto facts = read_process_facts(proc_root, pid);
  if (!facts) return fail(facts.error());
  return ProtectedProcess{facts->pid, facts->start_ns, facts->cgroup_path, facts->comm};
}

}  // namespace

std::string normalize_cgroup_relpath(std::string_view path) {
  std::string out;
  size_t pos = 0;
  while (pos < path.size()) {
    while (pos < path.size() && path[pos] == '/') ++pos;
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    if (end > pos) {
      out += '/';
      out += path.substr(pos, end - pos);
    }
    pos = end;
  }
  return out.empty() ? "/" : out;
}

bool cgroup_is_or_contains(std::string_view ancestor, std::string_view path) {
  if (ancestor == "/" || ancestor == path) return true;
  return path.size() > ancestor.size() && path.starts_with(ancestor) && path[ancestor.size()] == '/';
}

std::vector<pid_t> read_cgroup_procs(const std::string& cgroup_dir) {
  std::vector<pid_t> pids;
  std::ifstream procs(cgroup_dir + "/cgroup.procs");
  std::string line;
  while (std::getline(procs, line)) {
    pid_t pid = 0;
    if (std::from_chars(line.data(), line.data() + line.size(), pid).ec == std::errc() && pid > 0) pids.push_back(pid);
  }
  return pids;
}

Result<ProcessFacts> read_process_facts(const std::string& proc_root, pid_t pid) {
  auto dir = identity::ProcessDir::open(proc_root, pid);
  if (!dir) return fail(Error{ESRCH, fmt::format("no process {}: {}", pid, dir.error().message)});
  auto info = dir->info();
  if (!info) return fail(Error{ESRCH, fmt::format("process {}: {}", pid, info.error().message)});
  ProcessFacts facts;
  facts.pid = info->pid;
  facts.ppid = info->ppid;
  facts.start_ns = start_ticks_to_ns(info->start_time_ticks);
  facts.uid = info->uid;
  facts.cgroup_path = info->cgroup_path.empty() ? "" : normalize_cgroup_relpath(info->cgroup_path);
  facts.comm = info->comm;
  return facts;
}

ProtectedTargets::ProtectedTargets(Snapshot snapshot, std::string proc_root)
    : snapshot_(std::move(snapshot)), proc_root_(std::move(proc_root)) {
  auto norm = [](std::string& p) {
    if (!p.empty()) p = normalize_cgroup_relpath(p);
  };
  norm(snapshot_.agent.cgroup_path);
  norm(snapshot_.init.cgroup_path);
  for (auto& a : snapshot_.ancestors) norm(a.cgroup_path);
  for (auto& c : snapshot_.break_glass.cgroups) norm(c);
}

Result<ProtectedTargets> ProtectedTargets::from_host(BreakGlass break_glass, const std::string& proc_root) {
  Snapshot snap;
  const pid_t self = getpid();
  auto agent = read_protected(proc_root, self);
  if (!agent) return fail(Error{agent.error().code, "the agent's own process: " + agent.error().message});
  snap.agent = std::move(*agent);
  if (self != 1) {
    auto init = read_protected(proc_root, 1);
    if (!init) return fail(Error{init.error().code, "PID 1: " + init.error().message});
    snap.init = std::move(*init);
  } else {
    snap.init = snap.agent;
  }
  for (const auto& a : identity::read_ancestry(proc_root, self)) {
    ProtectedProcess p{a.pid, start_ticks_to_ns(a.start_time_ticks), "", a.comm};
    if (auto facts = read_process_facts(proc_root, a.pid); facts && same_start(facts->start_ns, p.start_ns)) {
      p.cgroup_path = facts->cgroup_path;
    }
    snap.ancestors.push_back(std::move(p));
  }
  snap.break_glass = std::move(break_glass);
  return ProtectedTargets(std::move(snap), proc_root);
}

Result<void> ProtectedTargets::check_cgroup(const std::string& cgroup_path) const {
  const std::string path = normalize_cgroup_relpath(cgroup_path);
  if (path == "/") return fail(refused("the cgroup root / holds the whole host"));
  const auto& s = snapshot_;
  if (!s.agent.cgroup_path.empty() && cgroup_is_or_contains(path, s.agent.cgroup_path)) {
    return fail(
        refused(fmt::format("cgroup {} {} the agent's own cgroup {} ({})", path,
                            path == s.agent.cgroup_path ? "is" : "contains", s.agent.cgroup_path, describe(s.agent))));
  }
  if (!s.init.cgroup_path.empty() && cgroup_is_or_contains(path, s.init.cgroup_path)) {
    return fail(refused(fmt::format("cgroup {} {} PID 1's cgroup {}", path,
                                    path == s.init.cgroup_path ? "is" : "contains", s.init.cgroup_path)));
  }
  for (const auto& bg : s.break_glass.cgroups) {
    if (cgroup_is_or_contains(path, bg) || cgroup_is_or_contains(bg, path)) {
      return fail(
          refused(fmt::format("cgroup {} {} break-glass cgroup {}", path,
                              path == bg ? "is" : (cgroup_is_or_contains(path, bg) ? "contains" : "is inside"), bg)));
    }
  }
  if (const std::string unit = break_glass_unit_of(path); !unit.empty()) {
    return fail(refused(fmt::format("cgroup {} is or is inside break-glass unit {}", path, unit)));
  }
  return {};
}

std::string ProtectedTargets::break_glass_unit_of(const std::string& path) const {
  const auto& bg = snapshot_.break_glass;
  if (bg.units.empty() && bg.user_units.empty()) return {};
  const identity::CgroupWorkload w = identity::classify_cgroup_path(path);
  for (const auto& unit : bg.units) {
    if (!w.unit.empty() && w.unit == unit) return unit;
  }
  for (const auto& unit : bg.user_units) {
    if (!w.user_unit.empty() && w.user_unit == unit.name && w.session_uid == unit.uid) {
      return fmt::format("{} of uid {}", unit.name, unit.uid);
    }
  }
  return {};
}

Result<void> ProtectedTargets::check_cgroup_contents(const std::string& cgroup2_root,
                                                     const std::string& cgroup_path) const {
  if (auto r = check_cgroup(cgroup_path); !r) return r;
  namespace fs = std::filesystem;
  const std::string rel = normalize_cgroup_relpath(cgroup_path);
  const fs::path top = rel == "/" ? fs::path(cgroup2_root) : fs::path(cgroup2_root) / rel.substr(1);

  // Each directory of the subtree, the top included; one removed meanwhile holds nothing.
  std::vector<fs::path> dirs{top};
  std::string unit_found;
  auto walked = walk_directories(top.string(), [&](const std::string& below) {
    const fs::path dir = top / below;
    if (unit_found.empty()) {
      const std::string below_rel = (rel == "/" ? "" : rel) + "/" + below;
      if (std::string unit = break_glass_unit_of(below_rel); !unit.empty())
        unit_found = unit + " (" + dir.string() + ")";
    }
    dirs.push_back(dir);
  });
  if (!walked) return fail(walked.error());
  if (!unit_found.empty()) return fail(refused(fmt::format("cgroup {} contains break-glass unit {}", rel, unit_found)));
  for (const auto& dir : dirs) {
    for (pid_t pid : read_cgroup_procs(dir.string())) {
      auto facts = read_process_facts(proc_root_, pid);
      if (!facts) continue;  // exited meanwhile
      if (auto r = check_process(*facts); !r) {
        return fail(refused(fmt::format("cgroup {} holds a protected process: {}", rel,
                                        r.error().message.substr(std::string_view("refused: ").size()))));
      }
    }
  }
  return {};
}

Result<void> ProtectedTargets::check_process(const ProcessFacts& f) const {
  const auto& s = snapshot_;
  const std::string who = f.comm.empty() ? fmt::format("pid {}", f.pid) : fmt::format("pid {} ({})", f.pid, f.comm);
  if (f.pid == s.agent.pid && same_start(f.start_ns, s.agent.start_ns)) {
    return fail(refused(who + " is the agent itself"));
  }
  if (f.pid == 1) return fail(refused(who + " is PID 1"));
  if (f.pid == 2 || f.ppid == 2 || f.pid <= 0) return fail(refused(who + " is a kernel thread"));
  for (const auto& a : s.ancestors) {
    if (f.pid == a.pid && same_start(f.start_ns, a.start_ns)) {
      return fail(refused(who + " is an ancestor of the agent"));
    }
  }
  for (uint32_t uid : s.break_glass.uids) {
    if (f.uid == uid) return fail(refused(fmt::format("{} runs as break-glass uid {}", who, uid)));
  }
  if (!f.cgroup_path.empty()) {
    const std::string cg = normalize_cgroup_relpath(f.cgroup_path);
    // The root "/" is exempt here, see the header.
    if (cg != "/" && cg == s.agent.cgroup_path) {
      return fail(refused(fmt::format("{} is in the agent's own cgroup {}", who, cg)));
    }
    if (cg != "/" && cg == s.init.cgroup_path) {
      return fail(refused(fmt::format("{} is in PID 1's cgroup {}", who, cg)));
    }
    for (const auto& bg : s.break_glass.cgroups) {
      if (cgroup_is_or_contains(bg, cg)) {
        return fail(refused(fmt::format("{} is inside break-glass cgroup {}", who, bg)));
      }
    }
    if (const std::string unit = break_glass_unit_of(cg); !unit.empty()) {
      return fail(refused(fmt::format("{} is inside break-glass unit {} ({})", who, unit, cg)));
    }
  }
  return {};
}

Result<void> ProtectedTargets::check_process(pid_t pid, uint64_t expected_start_ns) const {
  auto facts = read_process_facts(proc_root_, pid);
  if (!facts) return fail(facts.error());
  if (!same_start(facts->start_ns, expected_start_ns)) {
    return fail(Error{ESRCH, fmt::format("pid {} is not the expected process: started at {} ns, expected {} ns "
                                         "(the pid was reused)",
                                         pid, facts->start_ns, expected_start_ns)});
  }
  return check_process(*facts);
}

}  // namespace nhiguard::containment
