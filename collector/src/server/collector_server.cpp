#include "server/collector_server.h"

#include <time.h>

#include <cerrno>

#include <fmt/format.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "pki/fleet_pki.h"
#include "store/open_report_store.h"

namespace nhiguard::collector {

Result<std::unique_ptr<CollectorServer>> CollectorServer::start(const CollectorOptions& options) {
  std::unique_ptr<CollectorServer> self(new CollectorServer());
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.insecure) {
    credentials = grpc::InsecureServerCredentials();
  } else {
    auto material = pki::load_tls_material(options.pki_dir, "collector");
    if (!material) return fail(std::move(material.error()));
    grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    // A client certificate is verified against the fleet CA when one is sent; a client without one
    // gets through the handshake only to be refused by every handler with UNAUTHENTICATED and a
    // log line (peer_identity.h), which says more than a failed handshake would.
    ssl.pem_root_certs = material->ca_pem;
    ssl.pem_key_cert_pairs.push_back({material->key_pem, material->cert_pem});
    credentials = grpc::SslServerCredentials(ssl);
  }

  auto store = open_report_store(options.db_url);
  if (!store) return fail(std::move(store.error()));
  self->store_ = std::move(*store);
  IngestPipeline::Options queue;
  queue.max_queued_bytes = options.max_queued_bytes;
  self->pipeline_ = std::make_unique<IngestPipeline>(*self->store_, self->waiters_, queue);
  AgentServiceOptions agents;
  agents.limits = options.limits;
  agents.insecure = options.insecure;
  agents.max_streams = options.max_agents;
  agents.rate = options.report_rate;
  self->agent_service_ =
      std::make_unique<AgentServiceImpl>(*self->store_, *self->store_, *self->pipeline_, self->streams_, agents);
  self->operator_service_ = std::make_unique<OperatorServiceImpl>(*self->store_, *self->store_, self->streams_,
                                                                  self->waiters_, options.insecure);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &self->port_);
  builder.RegisterService(self->agent_service_.get());
  builder.RegisterService(self->operator_service_.get());
  // gRPC's own limit is twice ours: messages between the two reach AgentIngest, which refuses them
  // with a precise status and a log line; beyond it the transport refuses them alone.
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<uint64_t>(2ull * options.limits.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(options.limits.max_message_bytes));
  grpc::ResourceQuota quota("nhiguard-collector");
  // Each agent stream holds a server thread (its writer is a thread of ours), and so does each
  // stream still waiting for its hello; operators, refused streams and gRPC itself need some more.
  // AgentServiceImpl enforces both bounds exactly.
  quota.SetMaxThreads(options.max_agents + static_cast<int>(self->agent_service_->max_pending_hellos()) + 128);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  self->server_ = builder.BuildAndStart();
  if (!self->server_ || self->port_ == 0) {
    self->pipeline_->stop();
    return fail(Error{EADDRNOTAVAIL, fmt::format("listen on {}: gRPC could not bind it (address in use, or not "
                                                 "host:port)",
                                                 options.listen)});
  }
  spdlog::info("nhiguard-collector listening on {} (port {}), {}, store {}, events kept {}", options.listen,
               self->port_, options.insecure ? "PLAINTEXT (--insecure)" : "mTLS with " + options.pki_dir + "/ca.pem",
               options.db_url,
               options.retain_days ? fmt::format("{} day(s)", options.retain_days) : std::string("forever"));
  if (options.retain_days > 0) {
    CollectorServer* raw = self.get();
    self->pruner_ = std::thread([raw, days = options.retain_days] { raw->prune_loop(days); });
  }
  return self;
}

void CollectorServer::prune_loop(uint32_t retain_days) {
  constexpr uint32_t kChunk = 10000;
  constexpr auto kInterval = std::chrono::minutes(10);
  std::unique_lock lock(prune_mutex_);
  while (!prune_stop_) {
    lock.unlock();
    const int64_t cutoff =
        static_cast<int64_t>(clock_ns(CLOCK_REALTIME)) - static_cast<int64_t>(retain_days) * 86400LL * 1'000'000'000LL;
    uint64_t total = 0;
    for (;;) {
      auto pruned = store_->prune_events(cutoff, kChunk);
      if (!pruned) {
        spdlog::warn("retention: {}; retrying in 10 minutes", pruned.error().message);
        break;
      }
      total += *pruned;
      if (*pruned < kChunk) break;
      std::lock_guard stopping(prune_mutex_);
      if (prune_stop_) break;
    }
    if (total > 0) spdlog::info("retention: deleted {} event report(s) older than {} day(s)", total, retain_days);
    lock.lock();
    prune_wake_.wait_for(lock, kInterval, [&] { return prune_stop_; });
  }
}

void CollectorServer::shutdown(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard lock(prune_mutex_);
    prune_stop_ = true;
  }
  prune_wake_.notify_all();
  if (pruner_.joinable()) pruner_.join();
  agent_service_->stop_accepting();
  // Agent streams never end on their own: cancel them so Shutdown does not wait out the grace.
  streams_.cancel_all("collector shutting down");
  server_->Shutdown(std::chrono::system_clock::now() + grace);
  server_->Wait();
  pipeline_->stop();
  const auto stats = pipeline_->stats();
  spdlog::info(
      "nhiguard-collector stopped: {} reports stored, {} duplicates already stored, {} batches ({} stored "
      "agent by agent, {} agent batch(es) refused), {} wait(s) for room in the ingest queue",
      stats.stored, stats.duplicates, stats.batches, stats.failed_batches, stats.refused_agents, stats.waits);
}

CollectorServer::~CollectorServer() {
  if (server_) shutdown(std::chrono::milliseconds(0));
}

}  // namespace nhiguard::collector
