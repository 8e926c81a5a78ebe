// EnrichmentStage: from what the kernel said to who did it and to which credential.
//
// Lifecycle events (exec, fork, exit) keep the process table, and drop the cached identity of a
// process whose image changed or that exited; they go no further. A credential open is matched to
// the watched credential by inode; a candidate (a credential-like name whose inode is not watched)
// makes the catalogue resolve again unless that already happened after the open, and is dismissed
// (counted) when the catalogue still does not list it. An egress event is matched to the
// credential its process read (the kernel's taint), a memory access to the credential its target
// holds (the target's taint, the target resolved as a second identity). A block device open by a
// process the policy's block_device_readers allow goes no further (counted); any other is
// observed with its opener. Each becomes an Observation with the resolved
// workload identity: the kernel's fields at the probe, /proc where the process still lives, and the
// process table's exe and argv where it does not.
//
// Thread-safety: the event loop's thread; the count may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "catalogue/watched_credentials.h"
#include "identity/identity_resolver.h"
#include "identity/process_table.h"
#include "policy/decision_engine.h"
#include "pipeline/stages.h"

namespace nhiguard::pipeline {

class EnrichmentStage final : public EventSink {
 public:
  // redacting: argv from the kernel was redacted by the decode stage (said in the identity).
  EnrichmentStage(identity::IdentityResolver& identities, catalogue::WatchedCredentials& credentials,
                  const policy::DecisionEngine& engine, bool redacting, ObservationSink& next)
      : identities_(identities), credentials_(credentials), engine_(engine), redacting_(redacting), next_(next) {}

  void on_event(events::KernelEvent& event) override;

  // Drops exited processes past their grace period (now_boot_ns on CLOCK_BOOTTIME).
  void expire(uint64_t now_boot_ns) { processes_.expire(now_boot_ns); }
  uint64_t candidates_dismissed() const { return candidates_dismissed_.load(); }
  uint64_t block_device_opens_allowed() const { return block_device_opens_allowed_.load(); }

 private:
  void on_file_open(const events::FileOpenEvent& event);
  void on_egress(const events::EgressEvent& event);
  void on_cgroup_move(const events::CgroupMoveEvent& event);
  void on_memory_access(const events::MemoryAccessEvent& event);
  void on_block_device_open(const events::BlockDeviceOpenEvent& event);
  identity::ResolvedIdentity resolve_event_process(const events::KernelProcess& process, uint64_t start_ns);
  // The identity of `process` started at `start_ns` (the start the caller trusts), with the exe of
  // its exec when the process table saw it.
  identity::ResolvedIdentity resolve_with_start(events::KernelProcess process, uint64_t start_ns);
  void observe_open(const events::FileOpenEvent& event, catalogue::ResolvedCredential credential, bool known);

  identity::IdentityResolver& identities_;
  catalogue::WatchedCredentials& credentials_;
  const policy::DecisionEngine& engine_;
  const bool redacting_;
  ObservationSink& next_;
  identity::ProcessTable processes_;
  std::atomic<uint64_t> candidates_dismissed_ = 0;
  std::atomic<uint64_t> block_device_opens_allowed_ = 0;
};

}  // namespace nhiguard::pipeline
