// AgentDaemon: the agent's start-up sequence and event loop.
//
// start(): checks the host (privileges, BTF, bpffs/tracefs), probes kernel features, resolves the
// credential catalogue, loads the sensor, adopts and reconciles the pinned credential map with the
// catalogue, and opens the event log. Each failure names what failed and ends start-up with the
// exit category the command line reports.
//
// run(): feeds the ring buffer's records to the pipeline (pipeline/pipeline.h: decode, identity,
// event line, correlation, decision, containment, decision line); rescans the catalogue on its
// interval; sweeps expired actions; reports ring-buffer drops as they happen.
//
// Threads: the event loop runs on the caller's thread; the control socket's thread calls the
// run-time operations below (set_mode, approve, reject, rollback), which are thread-safe
// so the collector's command channel can call them too.
//
// Start-up refuses a policy_dir with any policy error (every error listed, exit category
// configuration): the agent never runs half-configured.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <memory>
#include <span>
#include <string>

#include "catalogue/credential_catalogue.h"
#include "catalogue/watched_credentials.h"
#include "containment/containment_executor.h"
#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "control/control_server.h"
#include "reporter/collector_commands.h"
#include "ledger/rollback_ledger.h"
#include "config/agent_config.h"
#include "daemon/agent_control.h"
#include "daemon/kernel_counter_watch.h"
#include "daemon/state_recovery.h"
#include "events/event_log.h"
#include "events/kernel_event.h"
#include "identity/cmdline_redactor.h"
#include "identity/identity_resolver.h"
#include "kernel/feature_probe.h"
#include "kernel/kernel_sensor.h"
#include "pipeline/event_loop.h"
#include "pipeline/pipeline.h"
#include "reporter/reporter.h"
#include "policy/decision_engine.h"
#include "policy/learning.h"
#include "policy/rate_limiter.h"

namespace nhiguard::daemon {

// Exit categories of a failed start (see agent/main.cpp).
enum class StartFailureKind { runtime = 1, configuration = 2, prerequisites = 3, kernel_refused = 4 };

struct StartFailure {
  StartFailureKind kind = StartFailureKind::runtime;
  std::string message;
};

class AgentDaemon {
 public:
  explicit AgentDaemon(config::AgentConfig config);
  ~AgentDaemon();

  std::expected<void, StartFailure> start();
  // Runs until `stop` becomes true; returns the process exit code. The loop sleeps until the ring
  // buffer has records, its one-second tick, or wake().
  int run(const std::atomic<bool>& stop);
  // Makes the event loop look now (after setting `stop`, or a change another thread made that the
  // outbox must take). Async-signal-safe; does nothing before start() has made the loop.
  void wake() const;

  // Run-time operations (after start()); thread-safe. `actor` is one of ledger::kActors.
  // The agent mode: in `observe` every hold and contain becomes a recorded dry run.
  void set_mode(config::AgentMode mode);
  config::AgentMode mode() const { return mode_.load(); }
  // `note` goes to the ledger history (the collector names the command that asked).
  Result<containment::RollbackHandle> approve(std::string_view handle, std::string_view actor,
                                              std::string_view note = "approved");
  Result<containment::RollbackHandle> reject(std::string_view handle, std::string_view actor,
                                             std::string_view note = "rejected");
  Result<containment::RollbackHandle> rollback(std::string_view handle, std::string_view actor,
                                               std::string_view note = "rolled back");

 private:
  // After a lost id table: re-creates the catalogue with the ids the pinned maps use (see
  // daemon/state_recovery.h). False when no pinned state refers to any id.
  Result<bool> rebuild_credential_ids(catalogue::CatalogueOptions options, const std::string& why);
  nlohmann::json status_json();
  std::expected<void, StartFailure> load_policy();
  // approve/reject/rollback/mode as the control socket and the collector's commands call them.
  reporter::AgentOperations operations();

  // The reporter and the collector's commands; the mode a collector imposed (mode.json) replaces
  // agent.yaml's until a collector lifts it.
  std::expected<void, StartFailure> start_reporter();

  config::AgentConfig config_;
  kernel::FeatureReport features_;
  kernel::EnforcementPath enforcement_;  // which layer enforces denies and blocks, and why
  // The catalogue until start() hands it to watched_ (it may be rebuilt from the pinned ids first).
  std::unique_ptr<catalogue::CredentialCatalogue> catalogue_;
  std::unique_ptr<events::JsonLineWriter> event_log_;
  // Every argv passes through it before anything keeps it; null only with redact_cmdlines: false.
  std::shared_ptr<const identity::CmdlineRedactor> redactor_;
  std::unique_ptr<identity::IdentityResolver> identities_;
  std::unique_ptr<kernel::KernelSensor> sensor_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  SystemClock clock_;  // the executor's: TTLs and expiry on CLOCK_BOOTTIME of this boot
  std::unique_ptr<containment::ContainmentExecutor> executor_;
  std::unique_ptr<AgentControl> control_;
  std::unique_ptr<control::ControlServer> control_server_;
  std::string cgroup2_root_;
  std::chrono::steady_clock::time_point next_rescan_;
  std::chrono::steady_clock::time_point next_housekeeping_;
  std::unique_ptr<KernelCounterWatch> counter_watch_;

  std::atomic<config::AgentMode> mode_{config::AgentMode::policy};
  std::unique_ptr<policy::DecisionEngine> engine_;
  policy::ActionRateLimiter rate_limiter_;
  std::unique_ptr<policy::Learning> learning_;
  std::unique_ptr<reporter::CollectorCommands> collector_commands_;
  std::unique_ptr<catalogue::WatchedCredentials> watched_;
  std::unique_ptr<pipeline::EventLoop> loop_;
  std::unique_ptr<pipeline::Pipeline> pipeline_;
  std::vector<StateNotice> state_notices_;        // found at start; reported once the reporter runs
  std::unique_ptr<reporter::Reporter> reporter_;  // declared last: stopped first, before what it reads
};

}  // namespace nhiguard::daemon
