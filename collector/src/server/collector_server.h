// The collector process's core: opens the store, builds the gRPC server (mTLS from the PKI
// directory, or plaintext with --insecure), and wires the agent and operator services to the
// ingest pipeline. main.cpp only parses flags and waits for SIGTERM.
//
// Lifecycle: start() listens (port 0 picks a free port, see port()); shutdown() stops accepting,
// lets in-flight calls end for up to `grace`, cancels the rest, then commits what the pipeline
// still holds and closes the store. Not copyable; shutdown() from one thread.
//
// Retention (retain_days > 0): a pruner thread deletes event reports older than that at start and
// every 10 minutes, in transactions of at most 10,000 rows so ingest is never held up for long.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <grpcpp/server.h>

#include "common/result.h"
#include "ingest/agent_ingest.h"
#include "ingest/ingest_pipeline.h"
#include "server/agent_service.h"
#include "server/operator_service.h"
#include "store/report_store.h"

namespace nhiguard::collector {

struct CollectorOptions {
  std::string listen;   // host:port, e.g. "0.0.0.0:7443", "[::]:7443", "127.0.0.1:0"
  std::string db_url;   // sqlite:PATH (see store/open_report_store.h)
  std::string pki_dir;  // pki::load_tls_material(dir, "collector"): dir/collector/ or dir
  bool insecure = false;
  IngestLimits limits;
  int max_agents = 1024;                // concurrent agent streams (each holds a server thread)
  ReportRateLimit report_rate;          // per agent
  size_t max_queued_bytes = 64u << 20;  // the ingest queue, in bytes (see IngestPipeline)
  uint32_t retain_days = 0;             // delete event reports older than this (0: keep everything); see prune_events
};

class CollectorServer {
 public:
  static Result<std::unique_ptr<CollectorServer>> start(const CollectorOptions& options);
  ~CollectorServer();

  int port() const { return port_; }
  void shutdown(std::chrono::milliseconds grace = std::chrono::seconds(5));
  IngestPipeline::Stats stats() const { return pipeline_->stats(); }

 private:
  CollectorServer() = default;
  void prune_loop(uint32_t retain_days);

  std::unique_ptr<ReportStore> store_;
  CommandWaiters waiters_;
  AgentStreams streams_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<OperatorServiceImpl> operator_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool stopped_ = false;
  std::mutex prune_mutex_;
  std::condition_variable prune_wake_;
  bool prune_stop_ = false;
  std::thread pruner_;
};

}  // namespace nhiguard::collector
