// nhiguard-agent: the host daemon. Parses the command line, then hands over to AgentDaemon.
//
// Exit codes: 0 clean stop (or --check with every required feature), 1 runtime failure,
// 2 bad command line or configuration, 3 host prerequisites missing (privileges, BTF, mounts),
// 4 the kernel refused the sensor (load or attach).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/service_notify.h"
#include "config/agent_config.h"
#include "daemon/agent_daemon.h"
#include "catalogue/canary_planter.h"
#include "policy/policy.h"
#include "kernel/feature_probe.h"
#include "kernel/host_prerequisites.h"

namespace {

std::atomic<bool> g_stop{false};

// The daemon whose event loop a stop signal wakes (set once it has started).
std::atomic<const nhiguard::daemon::AgentDaemon*> g_daemon{nullptr};

void request_stop(int) {
  g_stop.store(true);
  if (const auto* daemon = g_daemon.load()) daemon->wake();
}

// --check: what this kernel and this process can do, without starting the agent.
int run_check() {
  int status = 0;
  auto privileges = nhiguard::kernel::check_privileges();
  std::cout << fmt::format(
      "{:<22} {}\n", "privileges",
      privileges.ok() ? "ok" : "missing " + fmt::format("{}", fmt::join(privileges.missing, ", ")));
  if (!privileges.ok()) status = 3;
  auto btf = nhiguard::kernel::check_kernel_btf();
  std::cout << fmt::format("{:<22} {}\n", "kernel BTF", btf ? "ok" : btf.error().message);
  if (!btf) status = 3;
  if (status != 0) {
    std::cout << "feature probes need root (or CAP_BPF, CAP_PERFMON) and kernel BTF; not run\n";
    return status;
  }
  for (auto mounted : {nhiguard::kernel::ensure_bpffs(), nhiguard::kernel::ensure_tracefs()}) {
    if (!mounted) {
      std::cout << mounted.error().message << "\n";
      return 3;
    }
  }
  auto report = nhiguard::kernel::probe_kernel_features();
  for (const auto& feature : report.features) {
    std::cout << fmt::format("{:<22} {:<13} {}{}\n", feature.name, feature.supported ? "supported" : "unsupported",
                             feature.required ? "[required] " : "[optional] ",
                             feature.supported ? feature.description : feature.description + " — " + feature.error);
  }
  const auto enforcement = nhiguard::kernel::choose_enforcement(report);
  std::cout << fmt::format("{:<22} {:<13} {}\n", "enforcement", enforcement.name(), enforcement.reason);
  if (!report.all_required_supported()) {
    std::cout << "a required feature is missing: the agent cannot run on this kernel\n";
    return 4;
  }
  return 0;
}

// Under systemd (Type=notify) tells it about start-up and stop; elsewhere does nothing. A failed
// send is logged and the agent carries on: systemd then reports the start as timed out.
void notify_or_warn(std::string_view state) {
  if (auto sent = nhiguard::notify_service_manager(state); !sent) {
    spdlog::warn("{} (the service manager was not told: {})", sent.error().message, state.substr(0, state.find('\n')));
  }
}

// --plant-canaries: creates the policy's missing `plant: true` canaries and exits, for installers
// whose service sandbox keeps the running agent from writing where canaries belong (home
// directories). Exit 0 when every one exists afterwards, 1 otherwise, 2 for a bad policy.
int run_plant_canaries(const nhiguard::config::AgentConfig& config) {
  auto parsed = nhiguard::policy::load_policy_dir(config.policy_dir);
  if (!parsed.ok()) {
    std::cerr << "nhiguard-agent: invalid policy in " << config.policy_dir << ":\n"
              << nhiguard::config::format_errors(parsed.errors, config.policy_dir) << "\n";
    return 2;
  }
  int status = 0;
  for (const auto& canary : parsed.policy.canaries) {
    if (!canary.plant) continue;
    auto planted = nhiguard::catalogue::plant_canary(canary.path, canary.credential_class);
    if (!planted) {
      std::cerr << "nhiguard-agent: canary " << canary.path << ": " << planted.error().message << "\n";
      status = 1;
    } else {
      std::cout << (*planted ? "planted " : "present ") << canary.path << "\n";
    }
  }
  return status;
}

// --mount-only: mounts bpffs and tracefs where missing and exits, for the unit's privileged
// ExecStartPre step, so the sandboxed agent needs neither CAP_SYS_ADMIN nor the mount syscalls.
// Exit 0 when both are mounted afterwards, 3 otherwise (the agent's "prerequisites missing").
int run_mount_only() {
  int status = 0;
  for (auto mounted : {nhiguard::kernel::ensure_bpffs(), nhiguard::kernel::ensure_tracefs()}) {
    if (!mounted) {
      std::cerr << "nhiguard-agent: " << mounted.error().message << "\n";
      status = 3;
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nhiguard-agent: non-human identity threat detection and response"};
  std::string config_path;
  bool check = false;
  bool version = false;
  bool events_stdout = false;
  bool plant_canaries = false;
  bool mount_only = false;
  std::string log_level = "info";
  app.add_option("--config", config_path, "agent configuration (YAML)");
  app.add_flag("--check", check, "probe which BPF programs this kernel accepts, print them and exit");
  app.add_flag("--version", version, "print the version and exit");
  app.add_flag("--events-stdout", events_stdout, "also write every event line to stdout");
  app.add_flag("--plant-canaries", plant_canaries,
               "create the policy's missing canary files (plant: true) and exit (for installers)");
  app.add_flag("--mount-only", mount_only,
               "mount bpffs and tracefs where missing and exit (the unit's privileged start step)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  // The log goes to stderr; stdout is reserved for event lines (--events-stdout) and --check.
  spdlog::default_logger()->sinks().clear();
  spdlog::default_logger()->sinks().push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());

  if (version) {
    std::cout << "nhiguard-agent " << NHIGUARD_VERSION << "\n";
    return 0;
  }
  if (check) return run_check();
  if (mount_only) return run_mount_only();
  if (config_path.empty()) {
    std::cerr << "nhiguard-agent: --config FILE is required (see --help)\n";
    return 2;
  }
  auto config = nhiguard::config::load_agent_config(config_path);
  if (!config) {
    std::cerr << "nhiguard-agent: invalid configuration, not starting:\n" << config.error().message << "\n";
    return 2;
  }
  if (events_stdout) config->event_log.stdout_mirror = true;
  if (plant_canaries) return run_plant_canaries(*config);

  struct sigaction action{};
  action.sa_handler = request_stop;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);

  nhiguard::daemon::AgentDaemon daemon(std::move(*config));
  if (auto started = daemon.start(); !started) {
    spdlog::critical("not starting: {}", started.error().message);
    return static_cast<int>(started.error().kind);
  }
  // start() returns only once the sensor is attached and the control socket listens: from here on
  // `systemctl start` may return and nhiguardctl works.
  notify_or_warn("READY=1\nSTATUS=sensor attached, control socket listening");
  g_daemon.store(&daemon);
  const int exit_code = daemon.run(g_stop);
  g_daemon.store(nullptr);
  notify_or_warn("STOPPING=1");
  return exit_code;
}
