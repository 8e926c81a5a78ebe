// AgentService.Connect: one bidirectional stream per agent (see proto/README.md for the protocol).
//
// The method is registered by hand on a plain grpc::Service, with bytes in and bytes out (the
// generated code offers raw methods only for the async and callback APIs), so that a message that
// does not parse, or is above the collector's limit, is refused by AgentIngest with a precise status
// and a log line instead of a generic transport error. The method path is the generated one
// (/nhiguard.v1.AgentService/Connect), so agents use the generated stub. Per stream: this handler's thread reads and hands validated
// reports to the IngestPipeline; a writer thread sends the Welcome, acks and commands in order.
//
// Thread-safety: gRPC calls Connect concurrently; shared state lives in the store, the pipeline and
// AgentStreams, all thread-safe.
#pragma once

#include <atomic>

#include "ingest/agent_ingest.h"
#include <grpcpp/impl/service_type.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>

#include "server/agent_streams.h"
#include "server/ingest_pipeline.h"

namespace nhiguard::collector {

class AgentServiceImpl final : public grpc::Service {
 public:
  static constexpr const char* kConnectMethod = "/nhiguard.v1.AgentService/Connect";

  // At most `max_streams` agent streams at once; one more is refused with RESOURCE_EXHAUSTED.
  AgentServiceImpl(ReportStore& store, IngestPipeline& pipeline, AgentStreams& streams, IngestLimits limits,
                   bool insecure, int max_streams);

  grpc::Status Connect(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream);

  // Refuse new streams (shutdown has begun).
  void stop_accepting() { accepting_ = false; }

 private:
  ReportStore& store_;
  IngestPipeline& pipeline_;
  AgentStreams& streams_;
  IngestLimits limits_;
  bool insecure_;
  int max_streams_;
  std::atomic<int> active_streams_{0};
  std::atomic<bool> accepting_{true};
};

}  // namespace nhiguard::collector
