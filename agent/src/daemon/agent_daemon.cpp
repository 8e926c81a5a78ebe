#include "daemon/agent_daemon.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/filesystem.h"
#include "common/state_file.h"
#include "config/duration.h"
#include "control/control_audit.h"
#include "daemon/canary_planter.h"
#include "daemon/credential_access_record.h"
#include "daemon/persisted_mode.h"
#include "daemon/decision_record.h"
#include "daemon/state_recovery.h"
#include "common/ulid.h"
#include "common/json_escape.h"
#include "identity/mountinfo.h"
#include "identity/redaction_key.h"
#include "kernel/host_prerequisites.h"
#include "reporter/wire_records.h"

namespace nhiguard::daemon {
namespace {

std::unexpected<StartFailure> start_failure(StartFailureKind kind, std::string message) {
  return std::unexpected(StartFailure{kind, std::move(message)});
}

constexpr auto kHousekeepingInterval = std::chrono::seconds(5);
constexpr auto kSweepInterval = std::chrono::seconds(1);
// Identical triggers (same trigger, identity, credential and destination) within this period are
// one decision, the rest are counted (status decisions.suppressed): a job that reads its token every
// few seconds must not flood the log, the collector or the ledger, and an action a person rolled
// back is not re-taken at once by the next identical read.
constexpr auto kTriggerQuietPeriod = std::chrono::minutes(10);
constexpr size_t kMaxQuietTriggers = 65536;

policy::IdentityFacts identity_facts(const identity::ResolvedIdentity& resolved) {
  const auto& w = resolved.workload;
  const auto& p = resolved.process;
  return policy::IdentityFacts{
      .uri = w.uri,
      .kind = std::string(identity::to_string(w.kind)),
      .unit = w.unit,
      .user_unit = w.user_unit,
      .session = w.session,
      .session_uid = w.session_uid,
      .container_id = w.container_id,
      .pod_uid = w.pod_uid,
      .exe = p.exe,
      .uid = p.uid,
      .cgroup_path = w.cgroup_path,
      .cgroup_id = w.cgroup_id,
      .pid = p.pid,
      .pid_start_ns = p.start_ns,
      .comm = p.comm,
  };
}

policy::CredentialFacts credential_facts(const catalogue::ResolvedCredential& credential) {
  return {credential.credential_id, credential.path, credential.aliases, credential.credential_class};
}

std::string new_event_id() { return "ev_" + new_ulid(); }

}  // namespace

AgentDaemon::AgentDaemon(config::AgentConfig config) : config_(std::move(config)) {}
AgentDaemon::~AgentDaemon() = default;

std::expected<void, StartFailure> AgentDaemon::load_policy() {
  auto parsed = policy::load_policy_dir(config_.policy_dir);
  if (!parsed.ok()) {
    return start_failure(StartFailureKind::configuration,
                         "policy in " + config_.policy_dir + ": " + config::format_errors(parsed.errors, config_.policy_dir));
  }
  const auto& p = parsed.policy;
  if (p.rules.empty()) {
    spdlog::warn("policy: no rules in {} ({} file(s)): detection only, nothing is decided", config_.policy_dir,
                 p.sources.size());
  } else {
    std::vector<std::string> rules;
    for (const auto& rule : p.rules) {
      rules.push_back(fmt::format("{} ({} {}{})", rule.name, policy::to_string(rule.trigger), policy::to_string(rule.mode),
                                  rule.dry_run ? ", dry run" : ""));
    }
    spdlog::info("policy: {} file(s) from {}: rules [{}], {} credential entries, {} canaries, {} identities, {} "
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
    spdlog::warn("bpf_task_pt_regs is unavailable: events will carry the inode match but not the path the process "
                 "passed or its open flags");
  }
  if (!features_.supports("rdonly_cast")) {
    spdlog::info("bpf_rdonly_cast is unavailable (kernel before 6.2): the open programs read the opened file with "
                 "bpf_probe_read_kernel, which costs each open ~0.3 us more; detection is the same");
  }

  if (auto made = make_directories(config_.state_dir); !made) return start_failure(runtime, made.error().message);
  if (config_.redact_cmdlines) {
    auto key = identity::load_or_create_redaction_key(config_.state_dir);
    if (!key) return start_failure(runtime, key.error().message);
    if (!key->warning.empty()) spdlog::warn("cmdline redaction: {}", key->warning);
    redactor_ = std::make_shared<const identity::CmdlineRedactor>(key->key);
  } else {
    spdlog::warn("redact_cmdlines: false in the config: command lines are recorded and reported whole, with any "
                 "password or token typed on them, in events, decisions, the outbox and at the collector");
  }

  const policy::Policy& active_policy = engine_->policy();
  for (const auto& canary : active_policy.canaries) {
    if (!canary.plant) continue;
    auto planted = plant_canary(canary.path, canary.credential_class);
    if (!planted && planted.error().code == EROFS) {
      // Expected under the packaged unit (ProtectHome=read-only): the installer plants canaries
      // with --plant-canaries, outside the sandbox. Not an error of the agent's.
      spdlog::warn("canary {} is missing and this agent's sandbox keeps its directory read-only; `nhiguard-agent "
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
  for (const auto& credential : active_policy.credentials) {
    if (credential.selector.kind == policy::CredentialSelector::Kind::catalogue) continue;
    options.entries.push_back({.pattern = catalogue::catalogue_pattern(
                                   credential.selector.pattern,
                                   credential.selector.kind == policy::CredentialSelector::Kind::glob),
                               .credential_class = credential.credential_class,
                               .owner = credential.owner});
  }
  for (const auto& canary : active_policy.canaries) {
    options.entries.push_back({.pattern = catalogue::catalogue_pattern(canary.path, false),
                               .credential_class = canary.credential_class});
  }
  std::string credential_ids_problem;  // why the saved ids cannot be used; empty when they can
  if (auto ids = load_credential_ids(credential_ids_problem)) options.initial_ids = std::move(*ids);
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
  };
  auto sensor = kernel::KernelSensor::start(sensor_options, [this](std::span<const std::byte> r) { on_record(r); });
  if (!sensor) return start_failure(kernel_refused, "sensor: " + sensor.error().message);
  sensor_ = std::move(*sensor);

  // Adopt what an earlier agent pinned, then make it equal to the catalogue: nothing is cleared
  // blindly, and every entry that goes is named in the log.
  if (auto pinned = sensor_->credentials(); pinned && !pinned->empty()) {
    spdlog::info("adopting {} pinned credential inode(s) from {}", pinned->size(), config_.bpf.pin_dir);
  }
  bool ids_rebuilt = false;
  if (!credential_ids_problem.empty()) {
    auto rebuilt = rebuild_credential_ids(std::move(catalogue_options), credential_ids_problem);
    if (!rebuilt) return start_failure(runtime, "credential ids: " + rebuilt.error().message);
    ids_rebuilt = *rebuilt;
  }
  if (auto synced = sync_catalogue("start"); !synced) return start_failure(runtime, synced.error().message);
  if (ids_rebuilt) persist_credential_ids();
  if (auto counters = sensor_->counters(); counters) reported_counters_ = *counters;
  start_counters_ = reported_counters_;
  account_downtime_drops();

  // Containment: the ledger, the safety checks and the executor, then reconcile what an earlier
  // agent left pinned in the kernel with what the ledger says.
  auto cgroup_root = identity::find_cgroup2_mount();
  if (!cgroup_root) return start_failure(prerequisites, "cgroup v2: " + cgroup_root.error().message);
  cgroup2_root_ = *cgroup_root;
  const std::string ledger_path = config_.state_dir + "/ledger.db";
  auto ledger = open_or_quarantine("rollback ledger", ledger_path,
                                   [&] { return ledger::RollbackLedger::open(ledger_path); }, state_notices_);
  if (!ledger) return start_failure(runtime, "rollback ledger: " + ledger.error().message);
  ledger_ = std::move(*ledger);
  // Protected identities the containment checks can name without a process at hand (a literal
  // system unit, user unit of a uid, cgroup, or a uid alone) also become break-glass entries, so
  // even a manual contain refuses them.
  containment::BreakGlass break_glass;
  const auto literal = [](const std::optional<std::string>& pattern) {
    return pattern && pattern->find_first_of("*?[\\") == std::string::npos;
  };
  for (const auto& selector : active_policy.protected_identities) {
    const bool others = selector.session || selector.container || selector.pod || selector.exe || selector.uri;
    const int keys = selector.unit.has_value() + selector.user_unit.has_value() + selector.cgroup.has_value();
    if (others || keys > 1) continue;
    if (keys == 0 && selector.uid) break_glass.uids.push_back(*selector.uid);
    if (selector.uid && !selector.user_unit) continue;  // unit/cgroup AND uid: only the decision engine
    if (literal(selector.unit)) break_glass.units.push_back(*selector.unit);
    if (literal(selector.cgroup)) break_glass.cgroups.push_back(*selector.cgroup);
    if (literal(selector.user_unit) && selector.uid) break_glass.user_units.push_back({*selector.uid, *selector.user_unit});
  }
  auto protected_targets = containment::ProtectedTargets::from_host(std::move(break_glass));
  if (!protected_targets) return start_failure(runtime, "protected targets: " + protected_targets.error().message);
  protected_ = std::make_unique<containment::ProtectedTargets>(std::move(*protected_targets));
  resolver_ = std::make_unique<containment::TargetResolver>(cgroup2_root_);
  executor_ = std::make_unique<ContainmentExecutor>(*sensor_, *ledger_, *protected_, *resolver_, cgroup2_root_,
                                                    [this](std::string_view path) { return find_credential(path); },
                                                    clock_);
  if (auto reporting = start_reporter(); !reporting) return reporting;
  executor_->set_alert_sink([this](std::string_view kind, const std::string& message) {
    reporter_->add(reporter::alert_report(std::string(kind), message, 1));
  });
  // After the reporter: what a reboot lapsed or re-applied is alerted, not only logged.
  executor_->reconcile();
  report_unowned_kernel_state();
  load_learned();
  for (const auto& notice : state_notices_) reporter_->add(reporter::alert_report(notice.kind, notice.message, notice.count));

  control_ = std::make_unique<Control>(*this);
  control_server_ = std::make_unique<control::ControlServer>(
      control::ControlServerOptions{.socket_path = config_.control_socket}, *control_);
  if (auto listening = control_server_->start(); !listening) {
    return start_failure(runtime, "control socket " + config_.control_socket + ": " + listening.error().message);
  }

  spdlog::info("sensor attached: programs [{}], {} credential file(s) watched, {} candidate name rule(s), events to {}, "
               "control socket {}",
               fmt::join(sensor_->attached_programs(), ", "), credentials_by_id_.size(), catalogue_->name_rules().size(),
               config_.event_log.path, config_.control_socket);
  next_rescan_ = std::chrono::steady_clock::now() + config_.rescan_interval;
  next_housekeeping_ = std::chrono::steady_clock::now() + kHousekeepingInterval;
  next_sweep_ = std::chrono::steady_clock::now() + kSweepInterval;
  return {};
}

std::expected<void, StartFailure> AgentDaemon::start_reporter() {
  const std::string mode_file = config_.state_dir + "/mode.json";
  mode_.store(config_.mode);
  if (auto imposed = load_mode_override(mode_file); !imposed) {
    // Whoever wrote it meant to restrict the agent: the safer mode until a collector says otherwise.
    std::string message = imposed.error().message + "; running in observe mode until a collector sets the mode";
    if (imposed.error().code == EUCLEAN) {
      // Kept aside, and replaced by an observe override, so the next start is just as safe.
      if (auto moved = quarantine_file(mode_file); moved) message += " (the damaged file is kept as " + *moved + ")";
      if (auto saved = save_mode_override(mode_file, {config::AgentMode::observe, "agent (mode.json was damaged)", "",
                                                      static_cast<int64_t>(clock_ns(CLOCK_REALTIME))});
          !saved) {
        message += "; " + saved.error().message;
      }
      state_notices_.push_back({"state_quarantined", message, 1});
    }
    spdlog::error("{}", message);
    mode_.store(config::AgentMode::observe);
  } else if (*imposed) {
    const ModeOverride& m = **imposed;
    spdlog::warn("mode {} set by {} at {} is in force (agent.yaml says {}) until a collector lifts it",
                 config::to_string(m.mode), m.set_by, format_rfc3339_ns(static_cast<uint64_t>(m.set_at_ns)),
                 config::to_string(config_.mode));
    mode_.store(m.mode);
  }
  AgentOperations operations{
      .approve = [this](std::string_view handle, std::string_view actor, std::string_view note) {
        return approve(handle, actor, note);
      },
      .reject = [this](std::string_view handle, std::string_view actor, std::string_view note) {
        return reject(handle, actor, note);
      },
      .rollback = [this](std::string_view handle, std::string_view actor, std::string_view note) {
        return rollback(handle, actor, note);
      },
      .mode = [this] { return mode(); },
      .set_mode = [this](config::AgentMode m) { set_mode(m); },
  };
  collector_commands_ = std::make_unique<CollectorCommands>(operations, *ledger_, mode_file, config_.mode);
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

std::optional<catalogue::ResolvedCredential> AgentDaemon::find_credential(std::string_view path) {
  std::lock_guard lock(credentials_mutex_);
  for (const auto& [id, credential] : credentials_by_id_) {
    if (credential.path == path) return credential;
    for (const auto& alias : credential.aliases) {
      if (alias == path) return credential;
    }
  }
  return std::nullopt;
}

nlohmann::json AgentDaemon::status_json() {
  nlohmann::json features = nlohmann::json::object();
  for (const auto& f : features_.features) features[f.name] = f.supported;
  nlohmann::json counters = nlohmann::json::object();
  if (auto c = sensor_->counters(); c) {
    auto since_start = [&](nhg_counter i) { return c->values[i] - start_counters_.values[i]; };
    // Drops while this agent runs; those before its start are the downtime gap.
    counters["ringbuf_drops"] = c->ringbuf_drops() - start_counters_.ringbuf_drops();
    counters["ringbuf_drops_file"] = since_start(NHG_CTR_RINGBUF_DROP_FILE);
    counters["ringbuf_drops_process"] = since_start(NHG_CTR_RINGBUF_DROP_PROCESS);
    counters["ringbuf_drops_egress"] = since_start(NHG_CTR_RINGBUF_DROP_EGRESS);
    counters["ringbuf_drops_downtime"] = downtime_gap_.total();
    counters["ringbuf_drops_since_pinned"] = c->ringbuf_drops();
    counters["taint_map_full"] = since_start(NHG_CTR_TAINT_MAP_FULL);
    counters["taint_map_full_since_pinned"] = c->values[NHG_CTR_TAINT_MAP_FULL];
    counters["enforcement_map_full"] = sensor_->enforcement_map_full();
    counters["downtime_gap"] = downtime_gap_.to_json();
    counters["credential_opens"] = c->values[NHG_CTR_CREDENTIAL_OPENS];
    counters["credential_opens_coalesced"] = c->values[NHG_CTR_CREDENTIAL_OPENS_COALESCED];
    counters["egress_denied"] = c->values[NHG_CTR_EGRESS_DENIED];
    counters["credential_denied"] = c->values[NHG_CTR_CREDENTIAL_DENIED];
  }
  size_t active = 0;
  if (auto listed = executor_->list({.states = {containment::ActionState::active}}); listed) active = listed->size();
  // Actions in force (or changed) that the ledger has not taken yet (disk full, read-only, ...).
  nlohmann::json unrecorded = nlohmann::json::array();
  for (const auto& owed : executor_->unrecorded()) {
    auto item = containment::to_json(owed.handle);
    item["ledger_error"] = owed.ledger_error;
    item["unrecorded_since"] = format_rfc3339_ns(static_cast<uint64_t>(owed.since_ns));
    item["ledger_writes_owed"] = owed.writes_owed;
    unrecorded.push_back(std::move(item));
  }
  size_t watched = 0;
  {
    std::lock_guard lock(credentials_mutex_);
    watched = credentials_by_id_.size();
  }
  size_t held = 0;
  if (auto listed = ledger_->list({.states = {containment::ActionState::held}}); listed) held = listed->size();
  nlohmann::json state_notices = nlohmann::json::array();
  for (const auto& notice : state_notices_) {
    state_notices.push_back({{"kind", notice.kind}, {"message", notice.message}, {"count", notice.count}});
  }
  const auto& p = engine_->policy();
  nlohmann::json decisions = {
      {"observe", decisions_[1].load()}, {"alert", decisions_[2].load()},   {"hold", decisions_[3].load()},
      {"contain", decisions_[4].load()}, {"suppressed", decisions_suppressed_.load()},
      {"not_carried_out", decisions_failed_.load()},
  };
  return {
      {"version", NHIGUARD_VERSION},
      {"host", config_.hostname},
      {"mode", config::to_string(mode_.load())},
      {"policy", {{"dir", config_.policy_dir}, {"files", p.sources}, {"rules", p.rules.size()},
                  {"credentials", p.credentials.size()}, {"canaries", p.canaries.size()},
                  {"rate_limit", {{"max_actions", p.rate_limit.max_actions},
                                  {"window", config::format_duration(p.rate_limit.window)},
                                  {"recent", rate_limiter_.recent(std::chrono::steady_clock::now(), p.rate_limit.window)}}}}},
      {"decisions", decisions},
      {"held_actions", held},
      {"learning", learned_.summary(static_cast<int64_t>(clock_ns(CLOCK_REALTIME)))},
      {"programs", sensor_->attached_programs()},
      {"features", features},
      {"credentials_watched", watched},
      {"events_written", events_written_.load()},
      {"candidates_dismissed", candidates_dismissed_.load()},
      {"undecodable_records", decode_errors_.load()},
      {"kernel_counters", counters},
      {"active_actions", active},
      {"unrecorded_actions", std::move(unrecorded)},
      {"pin_dir", config_.bpf.pin_dir},
      {"ledger", ledger_->path()},
      {"collector", reporter_->status()},
      {"state_notices", state_notices},
  };
}

Result<nlohmann::json> AgentDaemon::Control::status() { return daemon_.status_json(); }

Result<std::vector<containment::RollbackHandle>> AgentDaemon::Control::actions(const control::ActionsRequest& request) {
  ledger::ListFilter filter{.limit = request.limit};
  if (request.state) filter.states = {*request.state};
  return daemon_.executor_->list(filter);
}

Result<containment::RollbackHandle> AgentDaemon::Control::contain(const control::ContainRequest& request) {
  ContainRequestSpec spec{
      .action = request.action,
      .target = {.unit = request.target.unit, .cgroup = request.target.cgroup,
                 .pid = static_cast<pid_t>(request.target.pid.value_or(0))},
      .credential_path = request.target.credential,
      .destinations = request.target.destinations,
      .ttl = request.ttl.value_or(std::chrono::minutes(15)),
      .reason = request.reason,
  };
  return daemon_.executor_->contain(spec, "nhiguardctl");
}

Result<containment::RollbackHandle> AgentDaemon::Control::rollback(std::string_view handle) {
  return daemon_.rollback(handle, "nhiguardctl");
}

Result<containment::RollbackHandle> AgentDaemon::Control::approve(std::string_view handle) {
  return daemon_.approve(handle, "nhiguardctl");
}

Result<containment::RollbackHandle> AgentDaemon::Control::reject(std::string_view handle) {
  return daemon_.reject(handle, "nhiguardctl");
}

Result<nlohmann::json> AgentDaemon::Control::learn(std::chrono::milliseconds duration) { return daemon_.learn(duration); }

Result<nlohmann::json> AgentDaemon::Control::suggest() { return daemon_.suggest_policy(); }

Result<nlohmann::json> AgentDaemon::Control::set_mode(std::string_view mode) {
  const auto previous = daemon_.mode();
  daemon_.set_mode(mode == "observe" ? config::AgentMode::observe : config::AgentMode::policy);
  return nlohmann::json{{"mode", config::to_string(daemon_.mode())}, {"previous", config::to_string(previous)}};
}

Result<nlohmann::json> AgentDaemon::Control::audit_trail() { return control::AuditTrail(*daemon_.ledger_).list(); }

Result<void> AgentDaemon::Control::authorize(const control::Request& request, const ledger::ControlPeer& peer) {
  return control::AuditTrail(*daemon_.ledger_).authorize(request, peer);
}

void AgentDaemon::Control::audit(const control::Request& request, const ledger::ControlPeer& peer,
                                 const nlohmann::json& response) {
  control::AuditTrail(*daemon_.ledger_).record(request, peer, response);
}

Result<containment::RollbackHandle> AgentDaemon::approve(std::string_view handle, std::string_view actor,
                                                     std::string_view note) {
  return executor_->approve(handle, actor, note);
}

Result<containment::RollbackHandle> AgentDaemon::reject(std::string_view handle, std::string_view actor,
                                                    std::string_view note) {
  return executor_->reject(handle, actor, note);
}

Result<containment::RollbackHandle> AgentDaemon::rollback(std::string_view handle, std::string_view actor,
                                                      std::string_view note) {
  return executor_->rollback(handle, actor, note);
}

nlohmann::json AgentDaemon::learn(std::chrono::milliseconds duration) {
  const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  if (duration.count() == 0) {
    learned_.stop();
    spdlog::info("learning stopped");
  } else {
    learned_.start(now, now + std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count());
    spdlog::info("learning for {}: credential readers and tainted egress are recorded for `nhiguardctl policy suggest`",
                 config::format_duration(duration));
  }
  persist_learned();
  return learned_.summary(now);
}

nlohmann::json AgentDaemon::suggest_policy() {
  const int64_t now = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  auto summary = learned_.summary(now);
  const std::string comment = fmt::format(
      "Suggested by nhiguardctl policy suggest on {} at {}: allows exactly what was seen while learning\n"
      "({} observation(s) since {}{}). Review it, then put it in the policy_dir beside the default policy.",
      config_.hostname, format_rfc3339_ns(static_cast<uint64_t>(now)), summary["observations"].get<uint64_t>(),
      summary["since"].is_string() ? summary["since"].get<std::string>() : "never",
      summary["dropped"].get<uint64_t>() == 0
          ? std::string()
          : fmt::format("; {} did not fit the learned set's bounds and are missing here",
                        summary["dropped"].get<uint64_t>()));
  return {{"policy", learned_.suggest_yaml(comment)}, {"learning", std::move(summary)}};
}

void AgentDaemon::persist_learned() {
  const std::string path = config_.state_dir + "/learned.json";
  if (auto written = write_state_file(path, learned_.to_json()); !written) {
    spdlog::warn("{}: what was learned lives only in memory until the next try", written.error().message);
  }
}

void AgentDaemon::load_learned() {
  const std::string path = config_.state_dir + "/learned.json";
  auto loaded = load_state_file(path);
  if (!loaded) {
    spdlog::error("{}; the learned set starts empty (the file is left as it is)", loaded.error().message);
    return;
  }
  std::string damage = loaded->damage;
  std::string kept_as = loaded->quarantined_as;
  if (loaded->file) {
    auto parsed = learned_.load_json(loaded->file->content);
    if (parsed) return;
    damage = parsed.error().message;
    auto moved = quarantine_file(path);
    kept_as = moved ? *moved : moved.error().message;
  }
  if (damage.empty()) return;  // no file yet
  const std::string message =
      fmt::format("{} is damaged ({}); kept as {}; the learned set starts empty", path, damage, kept_as);
  spdlog::error("{}", message);
  state_notices_.push_back({"state_quarantined", message, 1});
}

std::optional<std::map<std::string, uint32_t>> AgentDaemon::load_credential_ids(std::string& problem) {
  const std::string path = config_.state_dir + "/credential_ids.json";
  auto loaded = load_state_file(path);
  if (!loaded) {
    problem = loaded.error().message;
    return std::nullopt;
  }
  if (loaded->file) {
    auto ids = parse_credential_ids(loaded->file->content);
    if (ids) return std::move(*ids);
    auto moved = quarantine_file(path);
    problem = fmt::format("{} is damaged ({}); kept as {}", path, ids.error().message,
                          moved ? *moved : moved.error().message);
    return std::nullopt;
  }
  problem = loaded->damage.empty() ? path + " does not exist"
                                   : fmt::format("{}; kept as {}", loaded->damage, loaded->quarantined_as);
  return std::nullopt;
}

Result<bool> AgentDaemon::rebuild_credential_ids(catalogue::CatalogueOptions options, const std::string& why) {
  auto pinned = sensor_->credentials();
  if (!pinned) return fail(pinned.error());
  auto denies = sensor_->credential_denies();
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

void AgentDaemon::report_unowned_kernel_state() {
  auto active = ledger_->list({.states = {containment::ActionState::active}});
  auto blocks = sensor_->egress_blocks();
  auto denies = sensor_->credential_denies();
  if (!active || !blocks || !denies) {
    spdlog::error("cannot compare the pinned enforcement maps with the ledger; unowned entries are not reported");
    return;
  }
  const auto unowned = unowned_kernel_state(*active, *blocks, *denies, clock_ns(CLOCK_BOOTTIME));
  if (unowned.empty()) return;
  constexpr size_t kListed = 16;  // the alert names the first ones; the count says how many
  std::vector<std::string> listed(unowned.begin(), unowned.begin() + std::min(unowned.size(), kListed));
  const std::string message = fmt::format(
      "{} pinned enforcement entr{} in {} without an active ledger action (no handle to roll back; each ends at its "
      "kernel expiry, or `bpftool map delete` ends it now): {}{}",
      unowned.size(), unowned.size() == 1 ? "y" : "ies", config_.bpf.pin_dir, fmt::join(listed, "; "),
      unowned.size() > kListed ? "; ..." : "");
  spdlog::error("{}", message);
  state_notices_.push_back({"unowned_kernel_state", message, unowned.size()});
}

Result<void> AgentDaemon::sync_catalogue(const char* why) {
  last_sync_boot_ns_ = clock_ns(CLOCK_BOOTTIME);
  auto resolved = catalogue_->resolve();
  if (!resolved) return fail(Error::plain("resolve credential catalogue: " + resolved.error().message));

  std::map<uint32_t, catalogue::ResolvedCredential> by_id;
  std::map<std::pair<uint64_t, uint64_t>, uint32_t> by_inode;
  for (auto& credential : *resolved) {
    by_inode[{credential.dev, credential.ino}] = credential.credential_id;
    by_id.emplace(credential.credential_id, std::move(credential));
  }
  size_t added = 0;
  size_t removed = 0;
  for (const auto& [inode, id] : by_inode) {
    const auto& credential = by_id.at(id);
    auto known = credential_id_by_inode_.find(inode);
    if (known != credential_id_by_inode_.end() && known->second == id) continue;
    nhg_inode_key key{.dev = inode.first, .ino = inode.second};
    auto ok = sensor_->upsert_credential(key, {.credential_id = id,
                                               .class_id = static_cast<uint32_t>(credential.credential_class)});
    if (!ok) return fail(ok.error());
    ++added;
    spdlog::debug("watching credential {} ({}) inode {}:{}", credential.path, catalogue::to_string(credential.credential_class),
                  inode.first, inode.second);
  }
  // Kernel entries the catalogue no longer has (deleted file, or pinned by an earlier agent for a
  // file that is gone): remove them, each logged.
  auto pinned = sensor_->credentials();
  if (!pinned) return fail(pinned.error());
  for (const auto& [key, value] : *pinned) {
    if (by_inode.contains({key.dev, key.ino})) continue;
    auto ok = sensor_->remove_credential(key);
    if (!ok) return fail(ok.error());
    ++removed;
    auto old = credentials_by_id_.find(value.credential_id);
    spdlog::info("no longer watching inode {}:{} (credential id {}{}): the file is gone from the catalogue", key.dev,
                 key.ino, value.credential_id, old != credentials_by_id_.end() ? ", was " + old->second.path : "");
  }
  {
    std::lock_guard lock(credentials_mutex_);
    credentials_by_id_ = std::move(by_id);
    credential_id_by_inode_ = std::move(by_inode);
  }

  std::vector<kernel::CandidateName> names;
  for (const auto& rule : catalogue_->name_rules()) names.push_back({rule.parent, rule.name});
  if (auto ok = sensor_->set_candidate_names(names); !ok) return fail(ok.error());
  if (added || removed) {
    spdlog::info("credential catalogue sync ({}): {} watched, {} added, {} removed", why, credentials_by_id_.size(),
                 added, removed);
    persist_credential_ids();
  }
  return {};
}

void AgentDaemon::persist_credential_ids() {
  const std::string path = config_.state_dir + "/credential_ids.json";
  if (auto written = write_state_file(path, nlohmann::json(catalogue_->id_table())); !written) {
    spdlog::warn("{}: the next start rebuilds the ids from the pinned kernel state", written.error().message);
  }
}

void AgentDaemon::on_record(std::span<const std::byte> record) {
  auto event = events::decode_kernel_event(record);
  if (!event) {
    // Counted and logged, at most once per power of two so a broken stream cannot flood the log.
    const uint64_t n = ++decode_errors_;
    if ((n & (n - 1)) == 0) {
      spdlog::error("undecodable kernel record #{}: {}", n, event.error().message);
    }
    return;
  }
  // The kernel's copy of the opener's argv is redacted here, before the process table, the event
  // line, the report or a log line sees it.
  if (auto* open = std::get_if<events::FileOpenEvent>(&*event); open && redactor_ && !open->cmdline.empty()) {
    open->cmdline = redactor_->redact(open->cmdline, open->cmdline_truncated);
  }
  std::visit(
      [this](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, events::ExecEvent>) {
          processes_.on_exec(e);
          // Same (pid, start) after exec, but a new image and cmdline: drop the cached identity.
          identities_->forget(e.process.tgid, e.process.start_ns);
        } else if constexpr (std::is_same_v<T, events::ForkEvent>) {
          processes_.on_fork(e);
        } else if constexpr (std::is_same_v<T, events::ExitEvent>) {
          processes_.on_exit(e);
          identities_->forget(e.process.tgid, e.process.start_ns);
        } else if constexpr (std::is_same_v<T, events::EgressEvent>) {
          on_egress(e);
        } else {
          on_file_open(e);
        }
      },
      *event);
}

void AgentDaemon::on_file_open(const events::FileOpenEvent& event) {
  processes_.observe(event.process);
  if (!event.cmdline.empty()) processes_.remember_cmdline({event.process.tgid, event.process.start_ns}, event.cmdline);
  auto known = credential_id_by_inode_.find({event.dev, event.ino});
  if (known == credential_id_by_inode_.end() && !event.by_inode) {
    // A candidate: a file whose name says credential and whose inode we do not watch yet. Resolve
    // the catalogue again unless that already happened after this open.
    if (last_sync_boot_ns_ < event.ts_ns) {
      if (auto synced = sync_catalogue("candidate"); !synced) {
        spdlog::error("catalogue sync after candidate {}/{} failed: {}", event.parent, event.name, synced.error().message);
      }
    }
    known = credential_id_by_inode_.find({event.dev, event.ino});
    if (known == credential_id_by_inode_.end()) {
      ++candidates_dismissed_;
      spdlog::debug("open of {}/{} (inode {}:{}) by pid {} matches a credential name but no catalogued path",
                    escape_bytes(event.parent), escape_bytes(event.name), event.dev, event.ino,
                    event.process.tgid);
      return;
    }
  }
  const catalogue::ResolvedCredential* credential = nullptr;
  if (known != credential_id_by_inode_.end()) {
    credential = &credentials_by_id_.at(known->second);
  } else if (auto by_id = credentials_by_id_.find(event.credential_id); by_id != credentials_by_id_.end()) {
    credential = &by_id->second;
  }
  if (!credential) {
    // The kernel matched an inode the agent no longer lists (a sync raced this open): still report it.
    catalogue::ResolvedCredential unknown{.credential_id = event.credential_id, .path = "", .dev = event.dev, .ino = event.ino};
    emit_credential_access(event, unknown);
    return;
  }
  const catalogue::ResolvedCredential read = *credential;  // sync_catalogue may replace the map meanwhile
  auto [identity, event_id] = emit_credential_access(event, read);
  // A denied open was killed by the kernel before it read a byte: containment already holds. A
  // write-only open (a tool storing a new credential) reads nothing. A repeat summary counts reads
  // whose first was decided on already, by a process that has exited.
  if (event.denied || !event.readable() || event.repeat_summary) return;
  evaluate(policy::TriggerInput{.event = policy::TriggerInput::Event::credential_read,
                                .event_ids = {event_id},
                                .event_boot_ns = event.ts_ns,
                                .identity = identity_facts(identity),
                                .credential = credential_facts(read)},
           identity);
}

std::pair<identity::ResolvedIdentity, std::string> AgentDaemon::emit_credential_access(
    const events::FileOpenEvent& event, const catalogue::ResolvedCredential& credential) {
  std::string exe_from_exec;
  std::vector<std::string> kernel_cmdline = event.cmdline;
  if (auto known = processes_.find({event.process.tgid, event.process.start_ns})) {
    exe_from_exec = known->exe;
    if (kernel_cmdline.empty()) kernel_cmdline = known->cmdline;  // a repeat read omits the argv
  }
  auto identity = identities_->resolve(identity::KernelProcessFacts{
      .pid = event.process.tgid,
      .tid = event.process.tid,
      .ppid = event.process.ppid,
      .start_ns = event.process.start_ns,
      .cgroup_id = event.process.cgroup_id,
      .uid = event.process.uid,
      .euid = event.process.euid,
      .gid = event.process.gid,
      .audit_session_id = event.process.audit_session_id,
      .comm = event.process.comm,
      .exe = exe_from_exec,  // used when /proc no longer has the process
  });
  // A process gone before /proc could be read still has the argv the kernel saw at the open.
  if (identity.process.cmdline.empty() && !kernel_cmdline.empty()) {
    identity.process.cmdline = kernel_cmdline;
    identity.process.cmdline_truncated = event.cmdline_truncated;
    identity.process.cmdline_redacted = redactor_ != nullptr;  // redacted in on_record
    identity.notes.push_back("cmdline from the kernel at the open");
  }
  const uint64_t wall_ns = boot_to_wall_ns(event.ts_ns);
  auto line = build_credential_access_record(event, credential, identity, config_.hostname, wall_ns);
  std::string event_id = new_event_id();
  line["event_id"] = event_id;
  if (auto written = event_log_->write(line); !written) {
    spdlog::error("event log: {} (the event for pid {} and {} is lost from the file)", written.error().message,
                  event.process.tgid, credential.path);
  } else {
    ++events_written_;
  }
  reporter_->add(reporter::credential_access_report(event, credential, identity, static_cast<int64_t>(wall_ns), event_id));
  // The JSON line is the record; the log line repeats it for people at debug level, so a flood of
  // reads does not double the agent's work.
  spdlog::debug("credential access: {} {} ({}, id {}) by pid {} {} uid {} of {}", line["access"].get<std::string>(),
               escape_bytes(credential.path), catalogue::to_string(credential.credential_class),
               credential.credential_id, event.process.tgid, escape_bytes(identity.process.exe),
               event.process.uid, identity.workload.uri);
  return {std::move(identity), std::move(event_id)};
}

void AgentDaemon::on_egress(const events::EgressEvent& event) {
  std::string exe_from_exec;
  uint64_t start_ns = event.process.start_ns;
  if (start_ns == 0) {
    // Untainted egress carries no start time: the process table knows the tgid's current holder.
    if (auto live = processes_.find_live(event.process.tgid)) start_ns = live->key.start_ns;
  }
  if (auto known = processes_.find({event.process.tgid, start_ns})) exe_from_exec = known->exe;
  auto identity = identities_->resolve(identity::KernelProcessFacts{
      .pid = event.process.tgid,
      .tid = event.process.tid,
      .start_ns = start_ns,
      .cgroup_id = event.process.cgroup_id,
      .uid = event.process.uid,
      .gid = event.process.gid,
      .comm = event.process.comm,
      .exe = exe_from_exec,
  });
  const catalogue::ResolvedCredential* taint = nullptr;
  if (auto it = credentials_by_id_.find(event.taint_credential_id); it != credentials_by_id_.end()) taint = &it->second;
  const uint64_t wall_ns = boot_to_wall_ns(event.ts_ns);
  auto line = build_egress_record(event, taint, identity, config_.hostname, wall_ns);
  const std::string event_id = new_event_id();
  line["event_id"] = event_id;
  if (auto written = event_log_->write(line); !written) {
    spdlog::error("event log: {} (egress event of pid {} lost from the file)", written.error().message,
                  event.process.tgid);
  } else {
    ++events_written_;
  }
  reporter_->add(reporter::egress_report(event, taint, identity, static_cast<int64_t>(wall_ns), event_id));
  if (event.denied) {
    spdlog::info("egress denied: pid {} {} of {} to {} port {} ({}), block rule {}", event.process.tgid,
                 escape_bytes(identity.process.exe), identity.workload.uri, event.address_string(), event.port,
                 events::to_string(event.hook), event.rule_id);
  }
  if (event.denied || !taint) return;
  policy::DestinationFacts destination{.address = event.address, .port = event.port};
  destination.text = event.family == 10 ? fmt::format("[{}]:{}", event.address_string(), event.port)
                                        : fmt::format("{}:{}", event.address_string(), event.port);
  evaluate(policy::TriggerInput{.event = policy::TriggerInput::Event::tainted_egress,
                                .event_ids = {event_id},
                                .event_boot_ns = event.ts_ns,
                                .identity = identity_facts(identity),
                                .credential = credential_facts(*taint),
                                .destination = destination},
           identity);
}

policy::GateFacts AgentDaemon::gate_facts(const policy::TriggerInput& input) {
  policy::GateFacts facts;
  const auto& identity = input.identity;
  // Only a refusal (EPERM) means protected; a vanished process or cgroup is not a protection.
  if (!identity.cgroup_path.empty()) {
    if (auto ok = protected_->check_cgroup(identity.cgroup_path); !ok && ok.error().code == EPERM) {
      facts.target_protected = true;
      facts.target_protected_reason = ok.error().message;
    } else if (ok) {
      auto contents = protected_->check_cgroup_contents(cgroup2_root_, identity.cgroup_path);
      if (!contents && contents.error().code == EPERM) {
        facts.cgroup_hosts_protected = true;
        facts.cgroup_hosts_protected_reason = contents.error().message;
      }
    }
  }
  if (!facts.target_protected && identity.pid != 0) {
    if (auto ok = protected_->check_process(static_cast<pid_t>(identity.pid), identity.pid_start_ns);
        !ok && ok.error().code == EPERM) {
      facts.target_protected = true;
      facts.target_protected_reason = ok.error().message;
    }
  }
  if (input.credential) facts.learned_readers = learned_.readers_of(*input.credential);
  facts.recent_automated_actions =
      rate_limiter_.recent(std::chrono::steady_clock::now(), engine_->policy().rate_limit.window);
  facts.agent_observe_mode = mode_.load() == config::AgentMode::observe;
  return facts;
}

void AgentDaemon::evaluate(const policy::TriggerInput& input, const identity::ResolvedIdentity& identity) {
  const int64_t now_wall = static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
  if (input.credential) {
    if (input.event == policy::TriggerInput::Event::credential_read) {
      learned_.record_read(now_wall, *input.credential, input.identity);
    } else if (input.destination) {
      learned_.record_egress(now_wall, input.identity, *input.destination);
    }
  }
  auto trigger = engine_->trigger_of(input);
  if (!trigger) return;

  const auto now = std::chrono::steady_clock::now();
  const std::string key = fmt::format("{}|{}|{}|{}|{}", policy::to_string(*trigger), input.identity.uri,
                                      input.identity.cgroup_id, input.credential ? input.credential->id : 0,
                                      input.destination ? input.destination->text : "");
  if (auto seen = recent_triggers_.find(key); seen != recent_triggers_.end() && now - seen->second < kTriggerQuietPeriod) {
    ++decisions_suppressed_;
    return;
  }
  if (recent_triggers_.size() >= kMaxQuietTriggers) {
    std::erase_if(recent_triggers_, [&](const auto& entry) { return now - entry.second >= kTriggerQuietPeriod; });
  }
  // Past the bound every trigger is decided (nothing is suppressed that could not be remembered).
  if (recent_triggers_.size() < kMaxQuietTriggers) recent_triggers_[key] = now;

  auto decision = engine_->decide(input, gate_facts(input));
  if (!decision) return;
  carry_out(*decision, input, identity);
}

void AgentDaemon::carry_out(const policy::Decision& decision, const policy::TriggerInput& input,
                            const identity::ResolvedIdentity& resolved) {
  std::optional<containment::RollbackHandle> handle;
  std::string error;
  if (decision.outcome >= policy::Outcome::hold && decision.action) {
    const auto& identity = input.identity;
    ContainRequestSpec spec;
    spec.action = *decision.action;
    if (containment::is_reversible(spec.action)) {
      spec.target.cgroup = identity.cgroup_path;
      spec.ttl = decision.ttl;
    } else {
      spec.target.pid = static_cast<pid_t>(identity.pid);
      spec.pid_start_ns = identity.pid_start_ns;
    }
    if (spec.action == containment::ActionKind::deny_credential && input.credential) {
      spec.credential_path = input.credential->path;
    }
    spec.reason = decision.reason;
    spec.rule = decision.rule;
    spec.trigger_event_ids = input.event_ids;
    spec.workload_uri = identity.uri;
    Result<containment::RollbackHandle> result;
    if (decision.dry_run) {
      result = executor_->record_dry_run(spec, "agent");
    } else if (decision.outcome == policy::Outcome::hold) {
      result = executor_->hold(spec, "agent");
    } else {
      result = executor_->contain(spec, "agent");
      if (result) rate_limiter_.record(std::chrono::steady_clock::now());
    }
    if (result) {
      handle = std::move(*result);
    } else {
      error = result.error().message;
      ++decisions_failed_;
    }
  }
  ++decisions_[static_cast<int>(decision.outcome)];
  const containment::RollbackHandle* h = handle ? &*handle : nullptr;
  const uint64_t now_wall = clock_ns(CLOCK_REALTIME);
  const std::string decision_id = "dc_" + new_ulid();
  auto record = build_decision_record(decision, input, h, error, config_.hostname, now_wall);
  record["decision_id"] = decision_id;
  reporter_->add(reporter::decision_report(decision_to_wire(decision, input, resolved, h, decision_id, now_wall),
                                           input.event_boot_ns));
  if (auto written = event_log_->write(record); !written) {
    spdlog::error("event log: {} (the decision record of rule {} is lost from the file)", written.error().message,
                  decision.rule);
  } else {
    ++events_written_;
  }
  for (const auto& gate : decision.gates) {
    if (gate.gate == "rate_limit" && gate.tripped) {
      // The circuit breaker is open: a person should know even before looking at the held action.
      spdlog::error("rate limit reached: {}; automated containment is held for approval until the window passes",
                    gate.detail);
      reporter_->add(reporter::alert_report("policy_rate_limit", gate.detail, 1));
    }
  }
  const std::string line = decision_log_line(decision, h, error);
  if (!error.empty() || decision.outcome >= policy::Outcome::hold || decision.alert) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
}

void AgentDaemon::check_counters() {
  auto counters = sensor_->counters();
  if (!counters) {
    spdlog::warn("cannot read drop counters: {}", counters.error().message);
    return;
  }
  auto delta = [&](nhg_counter c) { return counters->values[c] - reported_counters_.values[c]; };
  const uint64_t new_drops = counters->ringbuf_drops() - reported_counters_.ringbuf_drops();
  if (new_drops > 0) {
    const std::string message = fmt::format(
        "{} kernel event(s) dropped since the last check ({} file, {} lifecycle, {} egress): the ring buffer ({} "
        "bytes) was full; raise bpf.ringbuf_bytes",
        new_drops, delta(NHG_CTR_RINGBUF_DROP_FILE), delta(NHG_CTR_RINGBUF_DROP_PROCESS),
        delta(NHG_CTR_RINGBUF_DROP_EGRESS), config_.bpf.ringbuf_bytes);
    spdlog::error("{}", message);
    reporter_->add(reporter::alert_report("ringbuf_drops", message, new_drops));
  }
  if (const uint64_t taint_full = delta(NHG_CTR_TAINT_MAP_FULL); taint_full > 0) {
    const std::string message = fmt::format(
        "{} credential read(s) or fork(s) could not record taint: nhg_taint ({} processes) is full; the egress of "
        "those processes is not tied to the credential they read",
        taint_full, NHG_TAINT_MAX_ENTRIES);
    spdlog::error("{}", message);
    reporter_->add(reporter::alert_report("taint_map_full", message, taint_full));
  }
  if (const uint64_t full = sensor_->enforcement_map_full(); full > reported_enforcement_full_) {
    const std::string message = fmt::format(
        "{} containment(s) refused by the kernel since the last check: an enforcement map (credential denies, egress "
        "blocks or their destinations) is full; each such action is recorded failed",
        full - reported_enforcement_full_);
    spdlog::error("{}", message);
    reporter_->add(reporter::alert_report("enforcement_map_full", message, full - reported_enforcement_full_));
    reported_enforcement_full_ = full;
  }
  const uint64_t fd_failures = counters->values[NHG_CTR_FD_LOOKUP_FAILED] - reported_counters_.values[NHG_CTR_FD_LOOKUP_FAILED];
  if (fd_failures > 0) spdlog::warn("{} open(s) whose file the sensor could not read from the fd table", fd_failures);
  reported_counters_ = *counters;
  // Drops reported now are no longer the next start's downtime gap.
  if (new_drops > 0) save_drop_snapshot(false);
}

void AgentDaemon::save_drop_snapshot(bool clean_stop) {
  auto map_id = sensor_->counters_map_id();
  if (!map_id) {
    spdlog::warn("{}: the next start cannot tell downtime drops from these", map_id.error().message);
    return;
  }
  const auto snapshot = DropSnapshot::of(reported_counters_, current_boot_id(), *map_id,
                                         static_cast<int64_t>(clock_ns(CLOCK_REALTIME)), clean_stop);
  if (auto written = write_state_file(config_.state_dir + "/kernel_counters.json", snapshot.to_json()); !written) {
    spdlog::warn("{}: the next start counts drops since an older snapshot as downtime", written.error().message);
  }
}

void AgentDaemon::account_downtime_drops() {
  const std::string path = config_.state_dir + "/kernel_counters.json";
  std::optional<DropSnapshot> last;
  std::string problem;
  if (auto loaded = load_state_file(path); !loaded) {
    problem = loaded.error().message;
  } else if (loaded->file) {
    if (auto parsed = DropSnapshot::from_json(loaded->file->content); parsed) {
      last = *parsed;
    } else {
      auto moved = quarantine_file(path);
      problem = fmt::format("{} is damaged ({}); kept as {}", path, parsed.error().message,
                            moved ? *moved : moved.error().message);
    }
  } else if (!loaded->damage.empty()) {
    problem = fmt::format("{}; kept as {}", loaded->damage, loaded->quarantined_as);
  }
  if (!problem.empty()) spdlog::error("{}: drops before this start are counted since the counters were made", problem);
  auto map_id = sensor_->counters_map_id();
  const auto now = DropSnapshot::of(reported_counters_, current_boot_id(), map_id ? *map_id : 0,
                                    static_cast<int64_t>(clock_ns(CLOCK_REALTIME)), false);
  downtime_gap_ = downtime_gap(last, now);
  if (downtime_gap_.total() > 0) {
    const std::string message = downtime_gap_.describe() + "; raise bpf.ringbuf_bytes or keep the agent running";
    spdlog::error("{}", message);
    state_notices_.push_back({"ringbuf_drops_downtime", message, downtime_gap_.total()});
  }
  save_drop_snapshot(false);
}

int AgentDaemon::run(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    auto polled = sensor_->poll(20);
    if (!polled) {
      spdlog::critical("ring buffer: {}; stopping", polled.error().message);
      return 1;
    }
    const auto now = std::chrono::steady_clock::now();
    // Everything this iteration produced (events, ledger changes) goes to the outbox before any of it
    // is sent.
    reporter_->flush();
    if (now >= next_rescan_) {
      if (auto synced = sync_catalogue("rescan"); !synced) {
        spdlog::error("periodic catalogue rescan failed: {}; keeping the previous set", synced.error().message);
      }
      next_rescan_ = now + config_.rescan_interval;
    }
    if (now >= next_sweep_) {
      executor_->sweep();
      next_sweep_ = now + kSweepInterval;
    }
    if (now >= next_housekeeping_) {
      check_counters();
      if (learned_.take_dirty()) persist_learned();
      std::erase_if(recent_triggers_, [&](const auto& entry) { return now - entry.second >= kTriggerQuietPeriod; });
      processes_.expire(clock_ns(CLOCK_BOOTTIME));
      next_housekeeping_ = now + kHousekeepingInterval;
    }
  }
  control_server_->stop();
  check_counters();
  save_drop_snapshot(true);
  reporter_->stop();
  spdlog::info("stopping: {} event(s) written, {} candidate(s) dismissed, {} undecodable record(s); pinned programs "
               "and maps stay in {}, so active containment holds until its TTL",
               events_written_.load(), candidates_dismissed_.load(), decode_errors_.load(), config_.bpf.pin_dir);
  return 0;
}

}  // namespace nhiguard::daemon
