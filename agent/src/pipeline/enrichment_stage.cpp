#include "pipeline/enrichment_stage.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/json_escape.h"
#include "pipeline/correlation_stage.h"

namespace nhiguard::pipeline {

void EnrichmentStage::on_event(events::KernelEvent& event) {
  std::visit(
      [this](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, events::ExecEvent>) {
          processes_.on_exec(e);
          // Same (pid, start) after exec, but a new image and cmdline: drop the cached identity.
          identities_.forget(e.process.tgid, e.process.start_ns);
        } else if constexpr (std::is_same_v<T, events::ForkEvent>) {
          processes_.on_fork(e);
        } else if constexpr (std::is_same_v<T, events::ExitEvent>) {
          processes_.on_exit(e);
          identities_.forget(e.process.tgid, e.process.start_ns);
        } else if constexpr (std::is_same_v<T, events::EgressEvent>) {
          on_egress(e);
        } else if constexpr (std::is_same_v<T, events::CgroupMoveEvent>) {
          on_cgroup_move(e);
        } else if constexpr (std::is_same_v<T, events::MemoryAccessEvent>) {
          on_memory_access(e);
        } else if constexpr (std::is_same_v<T, events::BlockDeviceOpenEvent>) {
          on_block_device_open(e);
        } else {
          static_assert(std::is_same_v<T, events::FileOpenEvent>);
          on_file_open(e);
        }
      },
      event);
}

void EnrichmentStage::on_file_open(const events::FileOpenEvent& event) {
  processes_.observe(event.process);
  if (!event.cmdline.empty()) processes_.remember_cmdline({event.process.tgid, event.process.start_ns}, event.cmdline);
  auto credential = credentials_.by_inode(event.dev, event.ino);
  if (!credential && !event.by_inode) {
    // A candidate: a file whose name says credential and whose inode we do not watch yet. Resolve
    // the catalogue again unless that already happened after this open.
    if (credentials_.last_sync_boot_ns() < event.ts_ns) {
      if (auto synced = credentials_.sync("candidate"); !synced) {
        spdlog::error("catalogue sync after candidate {}/{} failed: {}", event.parent, event.name,
                      synced.error().message);
      }
    }
    credential = credentials_.by_inode(event.dev, event.ino);
    if (!credential) {
      ++candidates_dismissed_;
      spdlog::debug("open of {}/{} (inode {}:{}) by pid {} matches a credential name but no catalogued path",
                    escape_bytes(event.parent), escape_bytes(event.name), event.dev, event.ino, event.process.tgid);
      return;
    }
  }
  if (!credential) credential = credentials_.by_id(event.credential_id);
  if (!credential) {
    // The kernel matched an inode the agent no longer lists (a sync raced this open): still report it.
    observe_open(event,
                 catalogue::ResolvedCredential{
                     .credential_id = event.credential_id, .path = "", .dev = event.dev, .ino = event.ino},
                 false);
    return;
  }
  observe_open(event, std::move(*credential), true);
}

void EnrichmentStage::observe_open(const events::FileOpenEvent& event, catalogue::ResolvedCredential credential,
                                   bool known) {
  std::string exe_from_exec;
  std::vector<std::string> kernel_cmdline = event.cmdline;
  if (auto seen = processes_.find({event.process.tgid, event.process.start_ns})) {
    exe_from_exec = seen->exe;
    if (kernel_cmdline.empty()) kernel_cmdline = seen->cmdline;  // a repeat read omits the argv
  }
  // The exe of the exec is used when /proc no longer has the process.
  auto identity = identities_.resolve(event.process, exe_from_exec);
  // A process gone before /proc could be read still has the argv the kernel saw at the open.
  if (identity.process.cmdline.empty() && !kernel_cmdline.empty()) {
    identity.process.cmdline = kernel_cmdline;
    identity.process.cmdline_truncated = event.cmdline_truncated;
    identity.process.cmdline_redacted = redacting_;  // redacted by the decode stage
    identity.notes.push_back("cmdline from the kernel at the open");
  }
  Observation observation{.event = &event,
                          .credential = std::move(credential),
                          .credential_known = known,
                          .identity = std::move(identity),
                          .wall_ns = boot_to_wall_ns(event.ts_ns)};
  next_.on_observation(observation);
}

void EnrichmentStage::on_egress(const events::EgressEvent& event) {
  uint64_t start_ns = event.process.start_ns;
  if (start_ns == 0) {
    // Untainted egress carries no start time: the process table knows the tgid's current holder.
    if (auto live = processes_.find_live(event.process.tgid)) start_ns = live->key.start_ns;
  }
  auto identity = resolve_with_start(event.process, start_ns);
  auto taint = credentials_.by_id(event.taint_credential_id);
  const bool known = taint.has_value();
  Observation observation{.event = &event,
                          .credential = std::move(taint),
                          .credential_known = known,
                          .identity = std::move(identity),
                          .wall_ns = boot_to_wall_ns(event.ts_ns)};
  next_.on_observation(observation);
}

identity::ResolvedIdentity EnrichmentStage::resolve_event_process(const events::KernelProcess& process,
                                                                  uint64_t start_ns) {
  processes_.observe(process);
  return resolve_with_start(process, start_ns);
}

identity::ResolvedIdentity EnrichmentStage::resolve_with_start(events::KernelProcess process, uint64_t start_ns) {
  std::string exe_from_exec;
  if (auto seen = processes_.find({process.tgid, start_ns})) exe_from_exec = seen->exe;
  process.start_ns = start_ns;
  return identities_.resolve(process, exe_from_exec);
}

void EnrichmentStage::on_memory_access(const events::MemoryAccessEvent& event) {
  auto accessor = resolve_event_process(event.process, event.process.start_ns);
  // The kernel knows the target only by its taint: its tgid, the thread named and its start.
  const events::KernelProcess target_process{
      .tgid = event.target_tgid, .tid = event.target_tid, .start_ns = event.target_start_ns};
  auto target = resolve_with_start(target_process, event.target_start_ns);
  auto taint = credentials_.by_id(event.taint_credential_id);
  const bool known = taint.has_value();
  Observation observation{.event = &event,
                          .credential = std::move(taint),
                          .credential_known = known,
                          .identity = std::move(accessor),
                          .target = std::move(target),
                          .wall_ns = boot_to_wall_ns(event.ts_ns)};
  next_.on_observation(observation);
}

void EnrichmentStage::on_block_device_open(const events::BlockDeviceOpenEvent& event) {
  auto identity = resolve_event_process(event.process, event.process.start_ns);
  if (engine_.block_device_reader_allowed(identity_facts(identity))) {
    ++block_device_opens_allowed_;
    return;
  }
  Observation observation{.event = &event, .identity = std::move(identity), .wall_ns = boot_to_wall_ns(event.ts_ns)};
  next_.on_observation(observation);
}

void EnrichmentStage::on_cgroup_move(const events::CgroupMoveEvent& event) {
  // The workload is the one of the new cgroup: forget what was resolved for the old one.
  identities_.forget(event.process.tgid, event.process.start_ns);
  auto identity = resolve_event_process(event.process, event.process.start_ns);
  auto taint = event.tainted ? credentials_.by_id(event.taint_credential_id) : std::nullopt;
  const bool known = taint.has_value();
  Observation observation{.event = &event,
                          .credential = std::move(taint),
                          .credential_known = known,
                          .identity = std::move(identity),
                          .wall_ns = boot_to_wall_ns(event.ts_ns)};
  next_.on_observation(observation);
}

}  // namespace nhiguard::pipeline
