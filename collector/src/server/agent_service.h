// AgentService.Connect: one bidirectional stream per agent (see proto/README.md for the protocol).
//
// The method is registered by hand on a plain grpc::Service, with bytes in and bytes out (the
// generated code offers raw methods only for the async and callback APIs), so that a message that
// does not parse, or is above the collector's limit, is refused by AgentIngest with a precise status
// and a log line instead of a generic transport error. The method path is the generated one
// (/nhiguard.v1.AgentService/Connect), so agents use the generated stub. Per stream: this handler's thread reads and
// hands validated reports to the IngestPipeline; a writer thread sends the Welcome, acks and commands in order.
//
// Admission, in this order, so that one agent key cannot hold what the fleet needs:
//   1. the peer's certificate (agent role; none with --insecure): refused at once otherwise;
//   2. the hello deadline: a stream is one of PendingHellos (at most max(16, max_streams), one per
//      certificate) until its first message, and is closed when none came within `hello_deadline`
//      (10 s; gRPC's sync server ends a call it waits on only by cancelling it, so the client sees
//      CANCELLED and the collector logs "no hello within 10s");
//   3. the hello itself (AgentIngest), then a `--max-agents` slot: a second stream of an agent
//      takes over its slot and replaces the first (see AgentStreams), a new agent beyond the limit
//      is refused with RESOURCE_EXHAUSTED;
//   4. per report: the agent's rate limit (ReportRateLimiter), RESOURCE_EXHAUSTED "rate limit ...".
// Every refusal is one log line naming the peer and the agent.
//
// Thread-safety: gRPC calls Connect concurrently; shared state lives in the store, the pipeline,
// AgentStreams, PendingHellos and the rate limiter, all thread-safe.
#pragma once

#include <atomic>
#include <chrono>

#include "ingest/agent_ingest.h"
#include "ingest/ingest_pipeline.h"
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "server/agent_streams.h"
#include "server/report_rate_limiter.h"

namespace nhiguard::collector {

struct AgentServiceOptions {
  IngestLimits limits;
  bool insecure = false;
  int max_streams = 1024;  // --max-agents
  ReportRateLimit rate;
  std::chrono::milliseconds hello_deadline{10'000};
};

class AgentServiceImpl final : public grpc::Service {
 public:
  static constexpr const char* kConnectMethod = "/nhiguard.v1.AgentService/Connect";

  AgentServiceImpl(IngestStore& sessions, CommandStore& commands, IngestPipeline& pipeline, AgentStreams& streams,
                   AgentServiceOptions options);

  grpc::Status Connect(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream);

  // Refuse new streams (shutdown has begun).
  void stop_accepting() { accepting_ = false; }
  // Streams that may wait for their hello at once.
  size_t max_pending_hellos() const;

 private:
  IngestStore& sessions_;
  CommandStore& commands_;
  IngestPipeline& pipeline_;
  AgentStreams& streams_;
  const AgentServiceOptions options_;
  PendingHellos pending_;
  ReportRateLimiter rate_;
  std::atomic<bool> accepting_{true};
};

}  // namespace nhiguard::collector
