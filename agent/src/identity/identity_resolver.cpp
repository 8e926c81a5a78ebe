#include "identity/identity_resolver.h"

#include <unistd.h>

#include <algorithm>
#include <array>

#include <spdlog/spdlog.h>

#include "identity/mountinfo.h"

namespace nhiguard::identity {
namespace {

std::string this_host() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
  return std::string(buf.data());
}

}  // namespace

IdentityResolver::IdentityResolver(Options options) : IdentityResolver(std::move(options), nullptr, nullptr) {
  std::string root = options_.cgroup_root;
  if (root.empty()) {
    if (auto mount = find_cgroup2_mount(); mount) {
      root = *mount;
    } else {
      // Identities still resolve from /proc's cgroup path; only processes already gone lose theirs.
      spdlog::warn("identity: no cgroup2 mount ({}); cgroup ids will not be resolved", mount.error().message);
    }
  }
  if (!root.empty()) {
    owned_cgroups_ = std::make_unique<CgroupIndex>(root);
    cgroups_ = owned_cgroups_.get();
  }
  if (options_.hash_executables) {
    ExeHashCache::Options hash_options;
    hash_options.max_file_size = options_.max_exe_hash_bytes;
    hash_options.proc_root = options_.proc_root;
    owned_hashes_ = std::make_unique<ExeHashCache>(hash_options);
    hashes_ = owned_hashes_.get();
  }
}

IdentityResolver::IdentityResolver(Options options, CgroupIndex* cgroups, ExeHashCache* hashes)
    : options_(std::move(options)),
      cgroups_(cgroups),
      hashes_(hashes),
      cache_(std::max<size_t>(options_.max_cached, 1)) {
  if (options_.host.empty()) options_.host = this_host();
  if (options_.max_cached == 0) options_.max_cached = 1;
  long ticks = options_.clock_ticks_per_second > 0 ? options_.clock_ticks_per_second : ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) ticks = 100;  // USER_HZ is 100 on every architecture the agent supports
  ns_per_tick_ = 1'000'000'000ull / static_cast<uint64_t>(ticks);
}

std::shared_ptr<const ResolvedIdentity> IdentityResolver::lookup_cache(const events::KernelProcess& process) {
  std::lock_guard lock(mu_);
  const Key key{process.tgid, process.start_ns};
  const Entry* entry = cache_.find(key);
  if (entry == nullptr) return nullptr;
  // Same key, different cgroup or comm: the process moved or exec'd since; resolve afresh.
  if ((process.cgroup_id != 0 && process.cgroup_id != entry->cgroup_id) ||
      (!process.comm.empty() && process.comm != entry->comm)) {
    cache_.erase(key);
    return nullptr;
  }
  ++stats_.hits;
  return entry->identity;
}

void IdentityResolver::store(const events::KernelProcess& process, std::shared_ptr<const ResolvedIdentity> identity) {
  std::lock_guard lock(mu_);
  cache_.put({process.tgid, process.start_ns}, Entry{std::move(identity), process.cgroup_id, process.comm});
}

WorkloadIdentity IdentityResolver::workload_for(const events::KernelProcess& process,
                                                const std::string& proc_cgroup_path,
                                                std::vector<std::string>& notes) const {
  std::string path;
  if (cgroups_ != nullptr && process.cgroup_id != 0) {
    if (auto p = cgroups_->path_of(process.cgroup_id); p) {
      path = std::move(*p);
    } else {
      notes.push_back("cgroup id " + std::to_string(process.cgroup_id) + ": " + p.error().message);
    }
  }
  // /proc's path is "now", the id is "at the event"; the path stands in only when the id fails.
  if (path.empty() && !proc_cgroup_path.empty()) path = proc_cgroup_path;
  return make_workload_identity(options_.trust_domain, options_.host, path, process.cgroup_id, process.uid);
}

ResolvedIdentity IdentityResolver::from_kernel_only(const events::KernelProcess& process, const std::string& exe,
                                                    std::string why) {
  ResolvedIdentity out;
  out.notes.push_back(std::move(why));
  out.workload = workload_for(process, "", out.notes);
  ProcessIdentity& p = out.process;
  p.pid = process.tgid;
  p.tid = process.tid;
  p.start_ns = process.start_ns;
  p.ppid = process.ppid;
  p.uid = process.uid;
  p.euid = process.euid;
  p.gid = process.gid;
  p.comm = process.comm;
  p.exe = exe;
  if (process.audit_session_id != UINT32_MAX) p.audit_session_id = process.audit_session_id;
  out.resolved_from_proc = false;
  std::lock_guard lock(mu_);
  ++stats_.from_kernel_only;
  return out;
}

ResolvedIdentity IdentityResolver::resolve(const events::KernelProcess& process, const std::string& exe_from_exec) {
  if (auto hit = lookup_cache(process)) {
    ResolvedIdentity copy = *hit;
    copy.process.tid = process.tid;  // the cache is per process; the thread is per event
    return copy;
  }

  const std::string pid_text = "pid " + std::to_string(process.tgid);
  if (process.start_ns == 0) {
    // Without a start time nothing proves /proc/PID is this process.
    return from_kernel_only(process, exe_from_exec, pid_text + ": no start time to verify /proc against");
  }
  auto dir = ProcessDir::open(options_.proc_root, static_cast<pid_t>(process.tgid));
  if (!dir) return from_kernel_only(process, exe_from_exec, pid_text + " gone: " + dir.error().message);
  auto info = dir->info();
  if (!info) return from_kernel_only(process, exe_from_exec, pid_text + " unreadable: " + info.error().message);

  // /proc reports the start in whole ticks, truncated; allow one tick either way for a start
  // taken from a slightly different clock read (a pid is never reused within 10 ms).
  const uint64_t expected = ns_to_ticks(process.start_ns);
  const uint64_t actual = info->start_time_ticks;
  if ((actual > expected ? actual - expected : expected - actual) > 1) {
    return from_kernel_only(process, exe_from_exec,
                            pid_text + " reused: /proc start " + std::to_string(actual) + " ticks, event start " +
                                std::to_string(expected) + " ticks");
  }

  auto out = std::make_shared<ResolvedIdentity>();
  out->workload = workload_for(process, info->cgroup_path, out->notes);
  ProcessIdentity& p = out->process;
  p.pid = process.tgid;
  p.tid = process.tid;
  p.start_ns = process.start_ns;
  p.ppid = process.ppid != 0 ? process.ppid : static_cast<uint32_t>(info->ppid);
  p.uid = process.uid;
  p.euid = process.euid;
  p.gid = process.gid;
  p.comm = process.comm.empty() ? info->comm : process.comm;
  p.exe = info->exe.empty() ? exe_from_exec : info->exe;
  p.exe_deleted = info->exe_deleted;
  p.cmdline_truncated = info->cmdline_truncated;
  if (options_.redactor) {
    p.cmdline = options_.redactor->redact(info->cmdline, info->cmdline_truncated);
    p.cmdline_redacted = true;
  } else {
    p.cmdline = std::move(info->cmdline);
  }
  p.session_id = info->session_id;
  p.audit_session_id = info->audit_session_id;
  if (!p.audit_session_id && process.audit_session_id != UINT32_MAX) p.audit_session_id = process.audit_session_id;
  p.login_uid = info->login_uid;
  if (options_.hash_executables && hashes_ != nullptr) {
    if (auto h = hashes_->hash_proc_dir(dir->fd(), dir->pid()); h) {
      p.exe_sha256 = h->sha256;
      p.exe_too_large = h->too_large;
    } else {
      out->notes.push_back("exe hash: " + h.error().message);
    }
  }
  p.ancestry =
      read_ancestry_from_parent(options_.proc_root, info->ppid, info->start_time_ticks, options_.ancestry_depth);
  if (options_.redactor) {
    // Every comm here is a name its process chose; the kernel's comm came redacted already.
    p.comm = options_.redactor->redact_comm(p.comm);
    for (auto& ancestor : p.ancestry) ancestor.comm = options_.redactor->redact_comm(ancestor.comm);
  }
  out->resolved_from_proc = true;

  // Reads through the directory fd fail once the process is reaped; a final stat through it
  // confirms it lived through all of the above, so nothing read belongs to a successor.
  if (auto again = dir->stat(); !again || again->start_time_ticks != actual) {
    return from_kernel_only(process, exe_from_exec, pid_text + " exited while being resolved");
  }

  {
    std::lock_guard lock(mu_);
    ++stats_.from_proc;
  }
  store(process, out);
  return *out;
}

Result<ResolvedIdentity> IdentityResolver::resolve_live(pid_t pid) {
  auto dir = ProcessDir::open(options_.proc_root, pid);
  if (!dir) return fail(std::move(dir.error()));
  auto info = dir->info();
  if (!info) return fail(std::move(info.error()));
  events::KernelProcess process;
  process.audit_session_id = UINT32_MAX;  // /proc's loginuid session is read by resolve()
  process.tgid = static_cast<uint32_t>(pid);
  process.tid = static_cast<uint32_t>(pid);
  // The tick's first ns: ns_to_ticks of it gives back the same tick.
  process.start_ns = info->start_time_ticks * ns_per_tick_;
  process.ppid = static_cast<uint32_t>(info->ppid);
  process.uid = info->uid;
  process.euid = info->euid;
  process.gid = info->gid;
  process.comm = info->comm;
  if (cgroups_ != nullptr && !info->cgroup_path.empty() && !info->cgroup_deleted) {
    if (auto id = cgroups_->id_of(info->cgroup_path); id) process.cgroup_id = *id;
  }
  return resolve(process);
}

void IdentityResolver::forget(uint32_t pid, uint64_t start_ns) {
  std::lock_guard lock(mu_);
  cache_.erase({pid, start_ns});
}

size_t IdentityResolver::cache_size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

IdentityResolver::Stats IdentityResolver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace nhiguard::identity
