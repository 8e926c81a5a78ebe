// IngestStream: the agent stream a report came in on, as the group commit (ingest_pipeline.h) sees
// it: whose reports they are, where the cumulative ack goes once they are committed, and how the
// stream is ended when its agent's records cannot be stored. The gRPC side implements it
// (server/agent_streams.h, AgentStream), so ingest does not depend on the server.
//
// Thread-safety: push_ack() and cancel() are called from the pipeline's writer thread while the
// stream's own threads use it; implementations are thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace nhiguard::collector {

class IngestStream {
 public:
  virtual ~IngestStream() = default;

  virtual const std::string& agent_id() const = 0;
  virtual const std::string& outbox_id() const = 0;
  // Everything up to `acked_through` on this outbox is stored: acks are cumulative.
  virtual void push_ack(uint64_t acked_through) = 0;
  // Ends the stream; the agent reconnects and resends (ingest is idempotent).
  virtual void cancel(std::string reason) = 0;
};

}  // namespace nhiguard::collector
