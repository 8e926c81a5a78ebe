// AgentDaemon: the agent's start-up sequence and event loop.
//
// start(): checks the host (privileges, BTF, bpffs/tracefs), probes kernel features, resolves the
// credential catalogue, loads the sensor, adopts and reconciles the pinned credential map with the
// catalogue, and opens the event log. Each failure names what failed and ends start-up with the
// exit category the command line reports.
//
// run(): polls the ring buffer; keeps the process table; turns credential opens (and candidates
// the catalogue confirms) into one JSON line each; rescans the catalogue on its interval; reports
// ring-buffer drops as they happen. Single-threaded: everything here runs on the caller's thread.
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
#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "control/control_server.h"
#include "daemon/collector_commands.h"
#include "daemon/containment_executor.h"
#include "ledger/rollback_ledger.h"
#include "config/agent_config.h"
#include "daemon/process_table.h"
#include "events/event_log.h"
#include "events/kernel_event.h"
#include "identity/identity_resolver.h"
#include "kernel/feature_probe.h"
#include "kernel/kernel_sensor.h"
#include "reporter/reporter.h"

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
  // Runs until `stop` becomes true; returns the process exit code.
  int run(const std::atomic<bool>& stop);

  // Run-time operations (after start()); thread-safe.
  // The agent mode: in `observe` the agent detects and reports but never contains automatically.
  void set_mode(config::AgentMode mode);
  config::AgentMode mode() const { return mode_.load(); }

 private:
  void on_record(std::span<const std::byte> record);
  void on_file_open(const events::FileOpenEvent& event);
  void on_egress(const events::EgressEvent& event);
  // Re-resolves the catalogue and makes the kernel's credential map equal to it.
  Result<void> sync_catalogue(const char* why);
  void persist_credential_ids();
  void check_counters();
  std::optional<catalogue::ResolvedCredential> find_credential(std::string_view path);
  nlohmann::json status_json();

  // The control socket's view of the agent; its calls run on the server's thread.
  class Control : public control::ControlHandler {
   public:
    explicit Control(AgentDaemon& daemon) : daemon_(daemon) {}
    Result<nlohmann::json> status() override;
    Result<std::vector<containment::RollbackHandle>> actions(const control::ActionsRequest& request) override;
    Result<containment::RollbackHandle> contain(const control::ContainRequest& request) override;
    Result<containment::RollbackHandle> rollback(std::string_view handle) override;

   private:
    AgentDaemon& daemon_;
  };
  void emit_credential_access(const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential);
  // The reporter and the collector's commands; the mode a collector imposed (mode.json) replaces
  // agent.yaml's until a collector lifts it.
  std::expected<void, StartFailure> start_reporter();

  config::AgentConfig config_;
  kernel::FeatureReport features_;
  std::unique_ptr<catalogue::CredentialCatalogue> catalogue_;
  std::unique_ptr<events::JsonLineWriter> event_log_;
  std::unique_ptr<identity::IdentityResolver> identities_;
  std::unique_ptr<kernel::KernelSensor> sensor_;
  std::unique_ptr<ledger::RollbackLedger> ledger_;
  std::unique_ptr<containment::ProtectedTargets> protected_;
  std::unique_ptr<containment::TargetResolver> resolver_;
  std::unique_ptr<ContainmentExecutor> executor_;
  std::unique_ptr<Control> control_;
  std::unique_ptr<control::ControlServer> control_server_;
  std::string cgroup2_root_;
  ProcessTable processes_;
  std::mutex credentials_mutex_;  // guards the two maps below against the control thread's lookups

  std::map<uint32_t, catalogue::ResolvedCredential> credentials_by_id_;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> credential_id_by_inode_;
  uint64_t last_sync_boot_ns_ = 0;
  std::chrono::steady_clock::time_point next_rescan_;
  std::chrono::steady_clock::time_point next_housekeeping_;
  std::chrono::steady_clock::time_point next_sweep_;
  kernel::SensorCounters reported_counters_;
  std::atomic<uint64_t> decode_errors_ = 0;
  std::atomic<uint64_t> events_written_ = 0;
  std::atomic<uint64_t> candidates_dismissed_ = 0;

  std::atomic<config::AgentMode> mode_{config::AgentMode::policy};
  std::unique_ptr<CollectorCommands> collector_commands_;
  std::unique_ptr<reporter::Reporter> reporter_;  // declared last: stopped first, before what it reads
};

}  // namespace nhiguard::daemon
