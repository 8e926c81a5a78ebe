// IdentityResolver: from what the kernel said about a process to who it is.
//
// Input is the kernel's view at the probe (pid, start time, cgroup id, uid, comm); output is a
// ResolvedIdentity: the workload (classified from the cgroup path, with its URI) plus what /proc
// adds — exe and its SHA-256, cmdline, sessions, ancestry.
//
// Never the wrong process: a pid is reused, so /proc/PID is trusted only when its start time
// (stat field 22, clock ticks) matches the kernel's start_ns, and all of /proc/PID is read through
// one open directory (ProcessDir). When the process is gone or the pid now belongs to another
// process, the identity is built from the kernel's fields and the cgroup id alone, and says so
// with resolved_from_proc = false.
//
// Which source wins: the kernel's fields describe the moment of the event, /proc describes now.
// uid/euid/gid, comm and the cgroup (by id, through CgroupIndex) come from the kernel; /proc's
// cgroup path is used only when the id cannot be resolved. exe, cmdline, sessions and ancestry
// exist only in /proc.
//
// Command lines: with Options::redactor set, the cmdline read from /proc goes through it before it
// is kept (cached or returned), and ProcessIdentity::cmdline_redacted says so. Without one the argv
// is kept as read (the agent only runs so when agent.yaml says redact_cmdlines: false).
//
// Caching: resolutions from /proc are cached per (pid, start_ns), at most Options::max_cached,
// least recently used first out. A cached identity is reused only while the kernel still reports
// the same cgroup id and comm; call forget() on exec (new image, same key) and exit.
//
// Thread-safety: resolve, resolve_live, forget and the accessors may be called concurrently. A
// CgroupIndex and ExeHashCache passed in must outlive the resolver (both are thread-safe). Results
// are values: callers may amend them (e.g. fill exe from their own exec record) freely.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/lru_cache.h"
#include "common/result.h"
#include "events/kernel_event.h"
#include "identity/cgroup_index.h"
#include "identity/cmdline_redactor.h"
#include "identity/exe_hash_cache.h"
#include "identity/process_info.h"
#include "identity/workload_identity.h"

namespace nhiguard::identity {

// The process half of an identity: who ran, what image, from where.
struct ProcessIdentity {
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint64_t start_ns = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0, euid = 0, gid = 0;
  std::string comm;
  std::string exe;
  bool exe_deleted = false;
  std::string exe_sha256;  // empty when not hashed (see exe_too_large and ResolvedIdentity::notes)
  bool exe_too_large = false;
  std::vector<std::string> cmdline;
  bool cmdline_truncated = false;
  bool cmdline_redacted = false;             // cmdline went through a CmdlineRedactor
  uint32_t session_id = 0;                   // stat field 6 (setsid session); 0 when not from /proc
  std::optional<uint32_t> audit_session_id;  // audit (login) session, from /proc or the kernel
  std::optional<uint32_t> login_uid;
  std::vector<Ancestor> ancestry;  // nearest first; empty when not from /proc
};

struct ResolvedIdentity {
  WorkloadIdentity workload;
  ProcessIdentity process;
  bool resolved_from_proc = false;
  std::vector<std::string> notes;  // why /proc was not used, and any partial failure (exe hash, cgroup id)
};

struct IdentityResolverOptions {
  std::string trust_domain = "nhiguard.local";
  std::string host;  // empty: this host's name (gethostname)
  std::string proc_root = "/proc";
  // The owning constructor's CgroupIndex root; empty: the cgroup2 mount from /proc/self/mountinfo.
  std::string cgroup_root;
  size_t max_cached = 8192;
  size_t ancestry_depth = 32;
  bool hash_executables = true;
  uint64_t max_exe_hash_bytes = 256ull * 1024 * 1024;
  long clock_ticks_per_second = 0;  // 0: sysconf(_SC_CLK_TCK)
  // Redacts every cmdline read from /proc (see cmdline_redactor.h); null keeps argv as read.
  std::shared_ptr<const CmdlineRedactor> redactor;
};

class IdentityResolver {
 public:
  using Options = IdentityResolverOptions;

  struct Stats {
    uint64_t hits = 0;
    uint64_t from_proc = 0;
    uint64_t from_kernel_only = 0;  // process gone, pid reused, or /proc unreadable
  };

  // Owns its CgroupIndex (absent, with a warning, when no cgroup2 mount is found) and ExeHashCache.
  explicit IdentityResolver(Options options);
  // Uses the given index and hash cache, which may be null and must outlive the resolver.
  IdentityResolver(Options options, CgroupIndex* cgroups, ExeHashCache* hashes);

  // The identity of the process an event names: `process` as decoded (events::KernelProcess, with
  // the start time the caller trusts for it: 0 = unknown, never trusted against /proc) and the exe
  // of its last exec when the caller knows it.
  ResolvedIdentity resolve(const events::KernelProcess& process, const std::string& exe_from_exec = {});

  // For a pid named by an operator (no event): reads the start time, uids and cgroup from /proc
  // first, then resolves as above. Fails when the process does not exist.
  Result<ResolvedIdentity> resolve_live(pid_t pid);

  void forget(uint32_t pid, uint64_t start_ns);
  size_t cache_size() const;
  Stats stats() const;
  const Options& options() const { return options_; }
  CgroupIndex* cgroup_index() const { return cgroups_; }

  // Converts a CLOCK_BOOTTIME ns start time to /proc's clock ticks, as the kernel does (truncating).
  uint64_t ns_to_ticks(uint64_t ns) const { return ns / ns_per_tick_; }

 private:
  using Key = std::pair<uint32_t, uint64_t>;  // (pid, start_ns)
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>{}(k.second * 0x9e3779b97f4a7c15ull ^ k.first); }
  };
  struct Entry {
    std::shared_ptr<const ResolvedIdentity> identity;
    uint64_t cgroup_id = 0;
    std::string comm;
  };

  std::shared_ptr<const ResolvedIdentity> lookup_cache(const events::KernelProcess& process);
  void store(const events::KernelProcess& process, std::shared_ptr<const ResolvedIdentity> identity);
  WorkloadIdentity workload_for(const events::KernelProcess& process, const std::string& proc_cgroup_path,
                                std::vector<std::string>& notes) const;
  ResolvedIdentity from_kernel_only(const events::KernelProcess& process, const std::string& exe, std::string why);

  Options options_;
  std::unique_ptr<CgroupIndex> owned_cgroups_;
  std::unique_ptr<ExeHashCache> owned_hashes_;
  CgroupIndex* cgroups_ = nullptr;
  ExeHashCache* hashes_ = nullptr;
  uint64_t ns_per_tick_ = 10'000'000;

  mutable std::mutex mu_;  // guards cache_, stats_
  LruCache<Key, Entry, KeyHash> cache_;
  Stats stats_;
};

}  // namespace nhiguard::identity
