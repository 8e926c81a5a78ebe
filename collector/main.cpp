// nhiguard-collector: the central gRPC server agents report to and operators command through.
//   nhiguard-collector --listen ADDR --db sqlite:PATH --pki DIR [--insecure]
// Exit codes: 0 clean stop (SIGTERM/SIGINT), 1 runtime failure, 2 bad command line, 3 cannot start
// (PKI unreadable, store refused, address not bindable).
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>
#include <grpc/support/log.h>
#include <spdlog/spdlog.h>

#include "server/collector_server.h"

namespace {

// gRPC core's own messages (handshake failures, transport errors) go to the same log as ours.
void grpc_to_spdlog(gpr_log_func_args* args) {
  const auto level = args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::warn
                     : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::info
                                                               : spdlog::level::debug;
  spdlog::log(level, "grpc: {}", args->message);
}

}  // namespace

int main(int argc, char** argv) {
  nhiguard::collector::CollectorOptions options;
  std::string port_file;
  std::string log_level = "info";
  uint32_t max_message_bytes = options.limits.max_message_bytes;

  CLI::App app{"nhiguard-collector: receives agents' reports over gRPC/mTLS, stores them, routes operator commands"};
  app.add_option("--listen", options.listen, "host:port to listen on (port 0: any free port)")->required();
  app.add_option("--db", options.db_url, "storage: sqlite:PATH (postgresql://... is not built in this version)")
      ->required();
  app.add_option("--pki", options.pki_dir,
                 "the PKI directory of nhiguardctl certs init (its collector/ "
                 "subdirectory), or a directory with ca.pem, collector.pem, "
                 "collector-key.pem");
  app.add_flag("--insecure", options.insecure, "plaintext gRPC without certificates: labs and tests only");
  app.add_option("--max-message-bytes", max_message_bytes, "largest message accepted from an agent")
      ->check(CLI::Range(1024u, 64u << 20));
  app.add_option("--max-agents", options.max_agents, "concurrent agent streams")->check(CLI::Range(1, 100000));
  app.add_option("--max-reports-per-second", options.report_rate.reports_per_second,
                 "reports one agent may send per second, sustained (0: no limit); above it its stream is refused "
                 "with RESOURCE_EXHAUSTED and it resends later")
      ->check(CLI::Range(0u, 10000000u));
  app.add_option("--max-report-burst", options.report_rate.burst,
                 "reports one agent may send at once above --max-reports-per-second")
      ->check(CLI::Range(1u, 100000000u));
  size_t max_queued_mib = options.max_queued_bytes >> 20;
  app.add_option("--max-queued-mib", max_queued_mib,
                 "MiB of reports waiting for the store; agents wait (back-pressure) while it is full")
      ->check(CLI::Range(1, 65536));
  app.add_option("--retain-days", options.retain_days,
                 "delete credential-access and egress reports older than this many days (0: keep all); "
                 "decisions, actions, history and commands are always kept")
      ->check(CLI::Range(0u, 36500u));
  app.add_option("--port-file", port_file, "write the port listened on to this file (useful with port 0)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!options.insecure && options.pki_dir.empty()) {
    std::fprintf(stderr, "nhiguard-collector: --pki DIR is required (mTLS); plaintext only with --insecure\n");
    return 2;
  }
  options.limits.max_message_bytes = max_message_bytes;
  options.max_queued_bytes = max_queued_mib << 20;
  spdlog::set_level(spdlog::level::from_str(log_level));
  gpr_set_log_function(grpc_to_spdlog);

  // Every thread started from here on inherits the blocked set: only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = nhiguard::collector::CollectorServer::start(options);
  if (!server) {
    spdlog::error("nhiguard-collector: {}", server.error().message);
    return 3;
  }
  if (!port_file.empty()) {
    std::ofstream out(port_file + ".tmp");
    out << (*server)->port() << "\n";
    out.close();
    if (!out || std::rename((port_file + ".tmp").c_str(), port_file.c_str()) != 0) {
      spdlog::error("nhiguard-collector: cannot write --port-file {}", port_file);
      (*server)->shutdown();
      return 1;
    }
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("nhiguard-collector: {} received, shutting down", signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->shutdown();
  return 0;
}
