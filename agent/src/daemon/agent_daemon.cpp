#include "daemon/agent_daemon.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "catalogue/credential_ids.h"
#include "common/clock.h"
#include "common/filesystem.h"
#include "common/state_file.h"
#include "config/duration.h"
#include "control/control_audit.h"
#include "catalogue/canary_planter.h"
#include "config/persisted_mode.h"
#include "daemon/state_recovery.h"
#include "common/ulid.h"
#include "common/json_escape.h"
#include "identity/mountinfo.h"
#include "identity/redaction_key.h"
#include "kernel/host_prerequisites.h"
#include "policy/policy_targets.h"
#include "policy/policy_status.h"
#include "records/rollback_handle_record.h"
#include "records/unrecorded_action_record.h"
#include "reporter/wire_records.h"

namespace nhiguard::daemon {
namespace {

std::unexpected<StartFailure> start_failure(StartFailureKind kind, std::string message) {
  return std::unexpected(StartFailure{kind, std::move(message)});
}

constexpr auto kHousekeepingInterval = std::chrono::seconds(5);
// The loop's tick, and the sweeper's: an idle agent wakes once a second.
constexpr auto kTick = std::chrono::seconds(1);
// How long the loop waits before it looks at the ring buffer again after consuming records.
constexpr int kLookAgainMs = 20;

}  // namespace

AgentDaemon::AgentDaemon(config::AgentConfig config) : config_(std::move(config)) {}
AgentDaemon::~AgentDaemon() = default;

std::expected<void, StartFailure> AgentDaemon::load_policy() {
  auto parsed = policy::load_policy_dir(config_.policy_dir);
  if (!parsed.ok()) {
    return start_failure(StartFailureKind::configuration, "policy in " + config_.policy_dir + ": " +
                                                              config::format_errors(parsed.errors, config_.policy_dir));
  }
  const auto& p = parsed.policy;
  if (p.rules.empty()) {
    spdlog::warn("policy: no rules in {} ({} file(s)): detection only, nothing is decided", config_.policy_dir,
                 p.sources.size());
  } else {
    std::vector<std::string> rules;
    for (const auto& rule : p.rules) {
      rules.push_back(fmt::format("{} ({} {}{})", rule.name, policy::to_string(rule.trigger),
                                  policy::to_string(rule.mode), rule.dry_run ? ", dry run" : ""));
    }
    spdlog::info(
        "policy: {} file(s) from {}: rules [{}], {} credential entries, {} canaries, {} identities, {} "
        "protected; rate limit {} per {}",
        p.sources.size(), config_.policy_dir, fmt::join(rules, "; "), p.credentials.size(), p.canaries.size(),
        p.identities.size(), p.protected_identities.size(), p.rate_limit.max_actions,
        config::format_duration(p.rate_limit.window));
  }
  engine_ = std::make_unique<policy::DecisionEngine>(std::make_shared<const policy::Policy>(std::move(parsed.policy)));
  mode_.store(config_.mode);
  return {};
}

std::expected<void, StartFailure> AgentDaemon::start() {
  using enum StartFailureKind;
  // A bad policy is a configuration error, reported before anything needs root.
  if (auto loaded = load_policy(); !loaded) return loaded;
  auto privileges = kernel::check_privileges();
  if (!privileges.ok()) {
    return start_failure(prerequisites, fmt::format("insufficient privileges: missing {} (run as root, or grant "
                                                    "these capabilities)",
                                                    fmt::join(privileges.missing, ", ")));
  }
  if (auto btf = kernel::check_kernel_btf(); !btf) return start_failure(prerequisites, btf.error().message);
  for (auto mounted : {kernel::ensure_bpffs(), kernel::ensure_tracefs()}) {
    if (!mounted) return start_failure(prerequisites, mounted.error().message);
  }

  features_ = kernel::probe_kernel_features();
  for (const auto& f : features_.features) {
    spdlog::info("kernel feature {}: {}{}", f.name, f.supported ? "supported" : "unsupported",
                 f.supported ? "" : " (" + f.error + ")");
  }
  if (!features_.all_required_supported()) {
    return start_failure(kernel_refused, "the kernel lacks a required BPF feature (see `nhiguard-agent --check`)");
  }
  if (!features_.supports("task_pt_regs")) {
    spdlog::warn(
        "bpf_task_pt_regs is unavailable: events will carry the inode match but not the path the process "
        "passed or its open flags");
  }
  if (!features_.supports("rdonly_cast")) {
    spdlog::info(
        "bpf_rdonly_cast is unavailable (kernel before 6.2): the open programs read the opened file with "
        "bpf_probe_read_kernel, which costs each open ~0.3 us more; detection is the same");
  }

  if (auto made = make_directories(config_.state_dir); !made) return start_failure(runtime, made.error().message);
  learning_ = std::make_unique<policy::Learning>(config_.state_dir + "/learned.json");
  if (config_.redact_cmdlines) {
    auto key = identity::load_or_create_redaction_key(config_.state_dir);
    if (!key) return start_failure(runtime, key.error().message);
    if (!key->warning.empty()) spdlog::warn("cmdline redaction: {}", key->warning);
    redactor_ = std::make_shared<const identity::CmdlineRedactor>(key->key);
  } else {
    spdlog::warn(
        "redact_cmdlines: false in the config: command lines are recorded and reported whole, with any "
        "password or token typed on them, in events, decisions, the outbox and at the collector");
  }

  const policy::Policy& active_policy = engine_->policy();
  for (const auto& canary : active_policy.canaries) {
    if (!canary.plant) continue;
    auto planted = catalogue::plant_canary(canary.path, canary.credential_class);
    if (!planted && planted.error().code == EROFS) {
      // Expected under the packaged unit (ProtectHome=read-only): the installer plants canaries
      // with --plant-canaries, outside the sandbox. Not an error of the agent's.
      spdlog::warn(
          "canary {} is missing and this agent's sandbox keeps its directory read-only; `nhiguard-agent "
          "--config AGENT_YAML --plant-canaries`, run as root outside the service, plants it; until then "
          "it is not watched",
          canary.path);
    } else if (!planted) {
      spdlog::error("canary {} ({}): {}; it is watched only if it exists", canary.path, canary.origin.to_string(),
                    planted.error().message);
    } else if (*planted) {
      spdlog::info("planted canary {} ({})", canary.path, catalogue::to_string(canary.credential_class));
    }
  }

  catalogue::CatalogueOptions options;
  options.entries = config::catalogue_entries(config_);
  // The policy's own files and canaries are watched too, or their triggers could never fire.
  for (auto& entry : policy::watched_entries(active_policy)) options.entries.push_back(std::move(entry));
  std::string credential_ids_problem;  // why the saved ids cannot be used; empty when they can
  if (auto ids = catalogue::load_credential_ids_file(config_.state_dir + "/credential_ids.json"); ids) {
    options.initial_ids = std::move(*ids);
  } else {
    credential_ids_problem = ids.error();
  }
  catalogue::CatalogueOptions catalogue_options = options;  // kept to rebuild the ids from pinned state
  auto catalogue = catalogue::CredentialCatalogue::create(std::move(options));
  if (!catalogue) return start_failure(configuration, "credential catalogue: " + catalogue.error().message);
  catalogue_ = std::move(*catalogue);

  event_log_ = std::make_unique<events::JsonLineWriter>(events::JsonLineWriterOptions{
      .path = config_.event_log.path,
      .mirror_stdout = config_.event_log.stdout_mirror,
      .max_bytes = config_.event_log.max_bytes,
      .keep = config_.event_log.keep,
  });
  if (auto opened = event_log_->open(); !opened) return start_failure(runtime, "event log: " + opened.error().message);

  identities_ = std::make_unique<identity::IdentityResolver>(identity::IdentityResolverOptions{
      .trust_domain = config_.trust_domain,
      .host = config_.hostname,
      .redactor = redactor_,
  });

  kernel::SensorOptions sensor_options{
      .pin_dir = config_.bpf.pin_dir,
      .ringbuf_bytes = config_.bpf.ringbuf_bytes,
      .ignore_tgid = static_cast<uint32_t>(getpid()),
      .read_syscall_args = features_.supports("task_pt_regs"),
      .direct_file_reads = features_.supports("rdonly_cast"),
      .report_all_egress = config_.bpf.report_all_egress,
      .lsm_enforcement = false,
  };
  const kernel::EnforcementPath chosen = kernel::choose_enforcement(features_);
  sensor_options.lsm_enforcement = chosen.lsm;
  auto sensor = kernel::KernelSensor::start(sensor_options);
  if (!sensor) return start_failure(kernel_refused, "sensor: " + sensor.error().message);
  sensor_ = std::move(*sensor);
  // The probe's word holds unless loading or attaching the LSM programs failed (logged by the loader).
  enforcement_ = chosen.lsm && !sensor_->enforcement_path().lsm ? sensor_->enforcement_path() : chosen;
  spdlog::info("enforcement: {} ({})", enforcement_.name(), enforcement_.reason);
  auto loop = pipeline::EventLoop::create(kTick);
  if (!loop) return start_failure(runtime, "event loop: " + loop.error().message);
  loop_ = std::move(*loop);
  if (auto watched = loop_->watch(sensor_->events().ready_fd()); !watched) {
    return start_failure(runtime, "event loop: " + watched.error().message);
  }

  // Adopt what an earlier agent pinned, then make it equal to the catalogue: nothing is cleared
  // blindly, and every entry that goes is named in the log.
  if (auto pinned = sensor_->credential_tables().credentials(); pinned && !pinned->empty()) {
    spdlog::info("adopting {} pinned credential inode(s) from {}", pinned->size(), config_.bpf.pin_dir);
  }
  bool ids_rebuilt = false;
  if (!credential_ids_problem.empty()) {
    auto rebuilt = rebuild_credential_ids(std::move(catalogue_options), credential_ids_problem);
    if (!rebuilt) return start_failure(runtime, "credential ids: " + rebuilt.error().message);
    ids_rebuilt = *rebuilt;
  }
  watched_ = std::make_unique<catalogue::WatchedCredentials>(std::move(catalogue_), sensor_->credential_tables(),
                                                             config_.state_dir + "/credential_ids.json");
  if (auto synced = watched_->sync("start"); !synced) return start_failure(runtime, synced.error().message);
  if (ids_rebuilt) watched_->persist_ids();
  if (auto watched = loop_->watch(watched_->rotation_fd()); !watched) {
    return start_failure(runtime, "event loop: token rotations: " + watched.error().message);
  }
  counter_watch_ = std::make_unique<KernelCounterWatch>(
      CounterSources{
          .counters = [this] { return sensor_->counters().counters(); },
          .counters_map_id = [this] { return sensor_->counters().counters_map_id(); },
          .enforcement_map_full = [this] { return sensor_->enforcement().enforcement_map_full(); },
      },
      config_.state_dir + "/kernel_counters.json", config_.bpf.ringbuf_bytes,
      [this](const std::string& kind, const std::string& message, uint64_t count) {
        reporter_->add(reporter::alert_report(kind, message, count));
      });
  if (auto notice = counter_watch_->start()) state_notices_.push_back(std::move(*notice));

  // Containment: the ledger, the safety checks and the executor, then reconcile what an earlier
  // agent left pinned in the kernel with what the ledger says.
  auto cgroup_root = identity::find_cgroup2_mount();
  if (!cgroup_root) return start_failure(prerequisites, "cgroup v2: " + cgroup_root.error().message);
  cgroup2_root_ = *cgroup_root;
  const std::string ledger_path = config_.state_dir + "/ledger.db";
  auto ledger = open_or_quarantine(
      "rollback ledger", ledger_path, [&] { return ledger::RollbackLedger::open(ledger_path); }, state_notices_);
  if (!ledger) return start_failure(runtime, "rollback ledger: " + ledger.error().message);
  ledger_ = std::move(*ledger);
  // Protected identities the containment checks can name without a process at hand also become
  // break-glass entries, so even a manual contain refuses them.
  auto protected_targets = containment::ProtectedTargets::from_host(policy::break_glass(active_policy));
  if (!protected_targets) return start_failure(runtime, "protected targets: " + protected_targets.error().message);
  protected_ = std::make_unique<containment::ProtectedTargets>(std::move(*protected_targets));
  resolver_ = std::make_unique<containment::TargetResolver>(cgroup2_root_);
  executor_ = std::make_unique<containment::ContainmentExecutor>(
      sensor_->enforcement(), *ledger_, *protected_, *resolver_, cgroup2_root_,
      [this](std::string_view path) { return watched_->by_path(path); }, clock_);
  if (auto reporting = start_reporter(); !reporting) return reporting;
  executor_->set_alert_sink([this](std::string_view kind, const std::string& message) {
    reporter_->add(reporter::alert_report(std::string(kind), message, 1));
  });
  // After the reporter: what a reboot lapsed or re-applied is alerted, not only logged.
  executor_->reconcile();
  if (auto notice = report_unowned_kernel_state(*ledger_, sensor_->enforcement(), config_.bpf.pin_dir)) {
    state_notices_.push_back(std::move(*notice));
  }
  if (auto damaged = learning_->load()) state_notices_.push_back({"state_quarantined", *damaged, 1});
  for (const auto& notice : state_notices_)
    reporter_->add(reporter::alert_report(notice.kind, notice.message, notice.count));
  pipeline_ = std::make_unique<pipeline::Pipeline>(pipeline::PipelineParts{
      .redactor = redactor_,
      .identities = *identities_,
      .credentials = *watched_,
      .engine = *engine_,
      .learned = learning_->learned(),
      .rate_limiter = rate_limiter_,
      .mode = mode_,
      .protected_targets = *protected_,
      .cgroup2_root = cgroup2_root_,
      .executor = *executor_,
      .event_log = *event_log_,
      .reporter = *reporter_,
      .hostname = config_.hostname,
  });

  control_ = std::make_unique<AgentControl>(AgentControlParts{
      .executor = *executor_,
      .ledger = *ledger_,
      .learning = *learning_,
      .operations = operations(),
      .status = [this] { return status_json(); },
      .wake = [this] { wake(); },
      .hostname = config_.hostname,
  });
  control_server_ = std::make_unique<control::ControlServer>(
      control::ControlServerOptions{.socket_path = config_.control_socket}, *control_);
  if (auto listening = control_server_->start(); !listening) {
    return start_failure(runtime, "control socket " + config_.control_socket + ": " + listening.error().message);
  }

  spdlog::info(
      "sensor attached: programs [{}], {} credential file(s) watched, {} candidate name rule(s), events to {}, "
      "control socket {}",
      fmt::join(sensor_->attached_programs(), ", "), watched_->size(), watched_->name_rules(), config_.event_log.path,
      config_.control_socket);
  next_rescan_ = std::chrono::steady_clock::now() + config_.rescan_interval;
  next_housekeeping_ = std::chrono::steady_clock::now() + kHousekeepingInterval;
  return {};
}

std::expected<void, StartFailure> AgentDaemon::start_reporter() {
  const std::string mode_file = config_.state_dir + "/mode.json";
  mode_.store(config_.mode);
  if (auto imposed = config::load_mode_override(mode_file); !imposed) {
    // Whoever wrote it meant to restrict the agent: the safer mode until a collector says otherwise.
    std::string message = imposed.error().message + "; running in observe mode until a collector sets the mode";
    if (imposed.error().code == EUCLEAN) {
      // Kept aside, and replaced by an observe override, so the next start is just as safe.
      if (auto moved = quarantine_file(mode_file); moved) message += " (the damaged file is kept as " + *moved + ")";
      if (auto saved =
              config::save_mode_override(mode_file, {config::AgentMode::observe, "agent (mode.json was damaged)", "",
                                                     static_cast<int64_t>(clock_ns(CLOCK_REALTIME))});
          !saved) {
        message += "; " + saved.error().message;
      }
      state_notices_.push_back({"state_quarantined", message, 1});
    }
    spdlog::error("{}", message);
    mode_.store(config::AgentMode::observe);
  } else if (*imposed) {
    const config::ModeOverride& m = **imposed;
    spdlog::warn("mode {} set by {} at {} is in force (agent.yaml says {}) until a collector lifts it",
                 config::to_string(m.mode), m.set_by, format_rfc3339_ns(static_cast<uint64_t>(m.set_at_ns)),
                 config::to_string(config_.mode));
    mode_.store(m.mode);
  }
  collector_commands_ = std::make_unique<reporter::CollectorCommands>(operations(), *ledger_, mode_file, config_.mode);
  const reporter::ReporterOptions reporter_options{
      .outbox_path = config_.state_dir + "/outbox.db",
      .outbox_max_bytes = config_.collector.outbox_max_bytes,
      .collector = config_.collector,
      .hostname = config_.hostname,
      .trust_domain = config_.trust_domain,
  };
  auto reporter = open_or_quarantine(
      "reporter outbox", reporter_options.outbox_path,
      [&] { return reporter::Reporter::open(reporter_options, *ledger_, *collector_commands_); }, state_notices_);
  if (!reporter) return start_failure(StartFailureKind::runtime, "reporter outbox: " + reporter.error().message);
  reporter_ = std::move(*reporter);
  reporter_->start();
  return {};
}

void AgentDaemon::set_mode(config::AgentMode mode) {
  const auto previous = mode_.exchange(mode);
  if (previous != mode) {
    spdlog::warn("agent mode {} -> {}{}", config::to_string(previous), config::to_string(mode),
                 mode == config::AgentMode::observe ? ": holds and containments are now recorded as dry runs" : "");
  }
}

reporter::AgentOperations AgentDaemon::operations() {
  return {
      .approve = [this](std::string_view handle, std::string_view actor,
                        std::string_view note) { return approve(handle, actor, note); },
      .reject = [this](std::string_view handle, std::string_view actor,
                       std::string_view note) { return reject(handle, actor, note); },
      .rollback = [this](std::string_view handle, std::string_view actor,
                         std::string_view note) { return rollback(handle, actor, note); },
      .mode = [this] { return mode(); },
      .set_mode = [this](config::AgentMode m) { set_mode(m); },
  };
}

// Each part renders its own piece; this is only the assembly (DESIGN.md's status fields).
nlohmann::json AgentDaemon::status_json() {
  size_t active = 0;
  if (auto listed = executor_->list({.states = {containment::ActionState::active}}); listed) active = listed->size();
  size_t held = 0;
  if (auto listed = ledger_->list({.states = {containment::ActionState::held}}); listed) held = listed->size();
  // Actions in force (or changed) that the ledger has not taken yet (disk full, read-only, ...).
  nlohmann::json unrecorded = nlohmann::json::array();
  for (const auto& owed : executor_->unrecorded()) unrecorded.push_back(records::unrecorded_to_json(owed));
  nlohmann::json state_notices = nlohmann::json::array();
  for (const auto& notice : state_notices_) {
    state_notices.push_back({{"kind", notice.kind}, {"message", notice.message}, {"count", notice.count}});
  }
  const auto& p = engine_->policy();
  const pipeline::PipelineCounts counts = pipeline_->counts();
  return {
      {"version", NHIGUARD_VERSION},
      {"host", config_.hostname},
      {"mode", config::to_string(mode_.load())},
      {"policy",
       policy::policy_status_json(p, config_.policy_dir,
                                  rate_limiter_.recent(std::chrono::steady_clock::now(), p.rate_limit.window))},
      {"decisions", counts.decisions_json()},
      {"held_actions", held},
      {"learning", learning_->learned().summary(static_cast<int64_t>(clock_ns(CLOCK_REALTIME)))},
      {"programs", sensor_->attached_programs()},
      {"features", features_.to_json()},
      {"enforcement", {{"path", enforcement_.name()}, {"reason", enforcement_.reason}}},
      {"credentials_watched", watched_->size()},
      {"events_written", counts.events_written},
      {"candidates_dismissed", counts.candidates_dismissed},
      {"block_device_opens_allowed", counts.block_device_opens_allowed},
      {"undecodable_records", counts.undecodable_records},
      {"kernel_counters", counter_watch_->status_json()},
      {"active_actions", active},
      {"unrecorded_actions", std::move(unrecorded)},
      {"pin_dir", config_.bpf.pin_dir},
      {"ledger", ledger_->path()},
      {"collector", reporter_->status()},
      {"state_notices", state_notices},
  };
}

Result<containment::RollbackHandle> AgentDaemon::approve(std::string_view handle, std::string_view actor,
                                                         std::string_view note) {
  auto done = executor_->approve(handle, actor, note);
  wake();  // the ledger changed: its action update goes to the outbox now
  return done;
}

Result<containment::RollbackHandle> AgentDaemon::reject(std::string_view handle, std::string_view actor,
                                                        std::string_view note) {
  auto done = executor_->reject(handle, actor, note);
  wake();  // the ledger changed: its action update goes to the outbox now
  return done;
}

Result<containment::RollbackHandle> AgentDaemon::rollback(std::string_view handle, std::string_view actor,
                                                          std::string_view note) {
  auto done = executor_->rollback(handle, actor, note);
  wake();  // the ledger changed: its action update goes to the outbox now
  return done;
}

Result<bool> AgentDaemon::rebuild_credential_ids(catalogue::CatalogueOptions options, const std::string& why) {
  auto pinned = sensor_->credential_tables().credentials();
  if (!pinned) return fail(pinned.error());
  auto denies = sensor_->enforcement().credential_denies();
  if (!denies) return fail(denies.error());
  if (pinned->empty() && denies->empty()) {
    // Nothing in the kernel refers to an id: numbering afresh changes nothing it enforces.
    if (why.find("does not exist") == std::string::npos) spdlog::warn("{}; credential ids start afresh", why);
    return false;
  }
  auto resolved = catalogue_->resolve();
  if (!resolved) return fail(resolved.error());
  const CredentialIdRecovery recovery = recover_credential_ids(*resolved, *pinned, *denies);
  options.initial_ids = recovery.ids;
  options.first_free_id = recovery.first_free_id;
  auto rebuilt = catalogue::CredentialCatalogue::create(std::move(options));
  if (!rebuilt) return fail(rebuilt.error());
  catalogue_ = std::move(*rebuilt);
  const std::string message = fmt::format(
      "{}: credential ids rebuilt from the pinned kernel state in {}: {} credential(s) keep the id their inode has in "
      "nhg_credentials, new ids start at {} (above every id in nhg_credentials and nhg_credential_denies){}",
      why, config_.bpf.pin_dir, recovery.kept_from_pins, recovery.first_free_id,
      recovery.unmatched_ids.empty()
          ? std::string()
          : fmt::format("; pinned id(s) {} name files the catalogue no longer resolves and are not reused",
                        fmt::join(recovery.unmatched_ids, ", ")));
  spdlog::error("{}", message);
  state_notices_.push_back({"credential_ids_rebuilt", message, recovery.kept_from_pins});
  return true;
}

void AgentDaemon::wake() const {
  if (loop_) loop_->wake();
}

int AgentDaemon::run(const std::atomic<bool>& stop) {
  bool look_again = true;  // records may already wait: look at once, then again after a short wait
  while (!stop.load()) {
    auto woken = loop_->wait(look_again ? kLookAgainMs : -1);
    if (!woken) {
      spdlog::critical("event loop: {}; stopping", woken.error().message);
      return 1;
    }
    const uint64_t reports_before = pipeline_->counts().reports_emitted;
    auto consumed = sensor_->events().consume(pipeline_->input());
    if (!consumed) {
      spdlog::critical("ring buffer: {}; stopping", consumed.error().message);
      return 1;
    }
    // Records submitted within a millisecond of a wake-up raise none: after records, look once
    // more; a look that finds nothing may sleep until the next tick (kernel/ring_buffer_source.h).
    look_again = *consumed > 0;
    // A tick runs the timers below (the sweeper changes the ledger, the counters raise alerts); a
    // wake-up means another thread changed the ledger (control socket, collector commands).
    bool changed = woken->tick || woken->woken;
    // A rotated service-account token (inotify) is synced at once, before the next rescan.
    if (auto rotated = watched_->on_rotation_events(); !rotated) {
      spdlog::error("catalogue sync after a token rotation failed: {}; the next rescan retries",
                    rotated.error().message);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_rescan_) {
      if (auto synced = watched_->sync("rescan"); !synced) {
        spdlog::error("periodic catalogue rescan failed: {}; keeping the previous set", synced.error().message);
      }
      next_rescan_ = now + config_.rescan_interval;
    }
    if (woken->tick) {
      executor_->sweep();  // the tick is the sweeper's clock
      changed = true;
    }
    if (now >= next_housekeeping_) {
      counter_watch_->check();
      learning_->persist_if_changed();
      pipeline_->housekeeping(now, clock_ns(CLOCK_BOOTTIME));
      next_housekeeping_ = now + kHousekeepingInterval;
      changed = true;
    }
    // Everything this wake-up produced (reports of the event path, ledger changes, alerts) goes to
    // the outbox before any of it is sent. Records that made no report (process lifecycle) and
    // changed nothing else cost no outbox transaction.
    if (changed || pipeline_->counts().reports_emitted != reports_before) reporter_->flush();
  }
  control_server_->stop();
  counter_watch_->stop();
  reporter_->stop();
  spdlog::info(
      "stopping: {} event(s) written, {} candidate(s) dismissed, {} undecodable record(s); pinned programs "
      "and maps stay in {}, so active containment holds until its TTL",
      pipeline_->counts().events_written, pipeline_->counts().candidates_dismissed,
      pipeline_->counts().undecodable_records, config_.bpf.pin_dir);
  return 0;
}

}  // namespace nhiguard::daemon
