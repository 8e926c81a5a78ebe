#include "identity/process_table.h"

#include <algorithm>

namespace nhiguard::identity {

ProcessRecord& ProcessTable::upsert(const events::KernelProcess& process) {
  const ProcessKey key{process.tgid, process.start_ns};
  auto [it, inserted] = entries_.try_emplace(key);
  ProcessRecord& record = it->second;
  if (inserted) {
    record.key = key;
    if (auto parent = live_by_tgid_.find(process.ppid); parent != live_by_tgid_.end()) {
      record.parent = parent->second;
    } else {
      record.parent = ProcessKey{process.ppid, 0};
    }
  }
  record.uid = process.uid;
  record.cgroup_id = process.cgroup_id;
  record.comm = process.comm;
  live_by_tgid_[process.tgid] = key;
  if (inserted) enforce_bound();
  return record;
}

void ProcessTable::observe(const events::KernelProcess& process) {
  upsert(process);
}

void ProcessTable::remember_cmdline(ProcessKey key, const std::vector<std::string>& cmdline) {
  if (auto it = entries_.find(key); it != entries_.end()) it->second.cmdline = cmdline;
}

void ProcessTable::on_fork(const events::ForkEvent& event) {
  upsert(event.parent);
  const ProcessKey child{event.child_tgid, event.child_start_ns};
  auto [it, inserted] = entries_.try_emplace(child);
  ProcessRecord& record = it->second;
  record.key = child;
  record.parent = ProcessKey{event.parent.tgid, event.parent.start_ns};
  // Until it execs, a child runs its parent's image.
  if (auto parent = entries_.find(record.parent); parent != entries_.end()) record.exe = parent->second.exe;
  record.uid = event.parent.uid;
  record.cgroup_id = event.parent.cgroup_id;
  record.comm = event.parent.comm;
  live_by_tgid_[child.tgid] = child;
  if (inserted) enforce_bound();
}

void ProcessTable::on_exec(const events::ExecEvent& event) {
  ProcessRecord& record = upsert(event.process);
  record.exe = event.filename;
  record.cmdline.clear();  // a new image, a new argv
  record.exec_ns = event.ts_ns;
}

void ProcessTable::on_exit(const events::ExitEvent& event) {
  ProcessRecord& record = upsert(event.process);
  record.exited = true;
  record.exit_ns = event.ts_ns;
  record.exit_code = event.exit_code;
}

std::optional<ProcessRecord> ProcessTable::find(ProcessKey key) const {
  if (auto it = entries_.find(key); it != entries_.end()) return it->second;
  return std::nullopt;
}

std::optional<ProcessRecord> ProcessTable::find_live(uint32_t tgid) const {
  if (auto live = live_by_tgid_.find(tgid); live != live_by_tgid_.end()) return find(live->second);
  return std::nullopt;
}

std::vector<ProcessRecord> ProcessTable::ancestry(ProcessKey key, size_t max_depth) const {
  std::vector<ProcessRecord> chain;
  auto current = find(key);
  while (current && chain.size() < max_depth) {
    const ProcessKey parent = current->parent;
    if (parent.tgid == 0 || parent == current->key) break;
    auto next = find(parent);
    if (!next && parent.start_ns == 0) {
      // The parent predates the agent: its tgid is all we know, and only if it still holds it.
      if (auto live = live_by_tgid_.find(parent.tgid); live != live_by_tgid_.end()) next = find(live->second);
    }
    if (!next) break;
    chain.push_back(*next);
    current = next;
  }
  return chain;
}

void ProcessTable::expire(uint64_t now_ns) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const ProcessRecord& r = it->second;
    if (r.exited && now_ns > r.exit_ns && now_ns - r.exit_ns > grace_ns_) {
      if (auto live = live_by_tgid_.find(r.key.tgid); live != live_by_tgid_.end() && live->second == r.key) {
        live_by_tgid_.erase(live);
      }
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

void ProcessTable::enforce_bound() {
  while (entries_.size() > max_entries_) {
    // Prefer the exited entry that ended first; else the entry that started first.
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.exited && (victim == entries_.end() || it->second.exit_ns < victim->second.exit_ns)) victim = it;
    }
    if (victim == entries_.end()) {
      victim = std::min_element(entries_.begin(), entries_.end(),
                                [](const auto& a, const auto& b) { return a.first.start_ns < b.first.start_ns; });
    }
    if (auto live = live_by_tgid_.find(victim->first.tgid);
        live != live_by_tgid_.end() && live->second == victim->first) {
      live_by_tgid_.erase(live);
    }
    entries_.erase(victim);
  }
}

}  // namespace nhiguard::identity
