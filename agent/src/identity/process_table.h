// ProcessTable: what the kernel told us about each live process, keyed by (tgid, start time) so a
// reused pid is never mistaken for the process that held it before.
//
// Fed by exec/fork/exit events; exited entries stay for a grace period so that events processed
// after the exit (and the ancestry of children) still resolve to what the kernel reported. Bounded:
// past max_entries the oldest exited entries go first, then the oldest entries at all.
// Not thread-safe: owned by the event loop.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "events/kernel_event.h"

namespace nhiguard::identity {

struct ProcessKey {
  uint32_t tgid = 0;
  uint64_t start_ns = 0;  // CLOCK_BOOTTIME ns (the kernel's start_boottime of the group leader)
  auto operator<=>(const ProcessKey&) const = default;
};

struct ProcessRecord {
  ProcessKey key;
  ProcessKey parent;  // start_ns 0 when the parent was not seen
  uint32_t uid = 0;
  uint64_t cgroup_id = 0;
  std::string comm;
  std::string exe;                   // last exec's filename, as the kernel gave it
  std::vector<std::string> cmdline;  // argv from the kernel's first credential event of this image
  uint64_t exec_ns = 0;
  bool exited = false;
  uint64_t exit_ns = 0;
  int32_t exit_code = 0;
};

class ProcessTable {
 public:
  explicit ProcessTable(size_t max_entries = 65536, uint64_t exited_grace_ns = 30'000'000'000ull)
      : max_entries_(max_entries), grace_ns_(exited_grace_ns) {}

  void on_fork(const events::ForkEvent& event);
  void on_exec(const events::ExecEvent& event);
  void on_exit(const events::ExitEvent& event);
  // Records a process seen in another event (e.g. a credential open) when exec/fork came before the
  // agent started.
  void observe(const events::KernelProcess& process);
  // Remembers the argv the kernel sent with a credential event (repeat reads omit it).
  void remember_cmdline(ProcessKey key, const std::vector<std::string>& cmdline);

  std::optional<ProcessRecord> find(ProcessKey key) const;
  // The process that currently holds this tgid, if the table knows it.
  std::optional<ProcessRecord> find_live(uint32_t tgid) const;
  // The chain of known parents, nearest first, at most max_depth long.
  std::vector<ProcessRecord> ancestry(ProcessKey key, size_t max_depth = 32) const;

  // Drops exited entries older than the grace period, relative to now_ns (CLOCK_BOOTTIME).
  void expire(uint64_t now_ns);
  size_t size() const { return entries_.size(); }

 private:
  ProcessRecord& upsert(const events::KernelProcess& process);
  void enforce_bound();

  size_t max_entries_;
  uint64_t grace_ns_;
  std::map<ProcessKey, ProcessRecord> entries_;
  std::map<uint32_t, ProcessKey> live_by_tgid_;  // the current holder of each tgid
};

}  // namespace nhiguard::identity
