#include "server/agent_service.h"

#include <time.h>

#include <thread>

#include <fmt/format.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/method_handler.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "server/grpc_status.h"
#include "server/peer_identity.h"

namespace nhiguard::collector {
namespace {

int64_t now_ns() { return static_cast<int64_t>(clock_ns(CLOCK_REALTIME)); }

bool to_bytes(const grpc::ByteBuffer& buffer, std::string& out) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  out.clear();
  for (const auto& slice : slices) out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return true;
}

grpc::ByteBuffer to_buffer(const v1::CollectorMessage& message) {
  std::string bytes;
  message.SerializeToString(&bytes);
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

AgentServiceImpl::AgentServiceImpl(ReportStore& store, IngestPipeline& pipeline, AgentStreams& streams,
                                   IngestLimits limits, bool insecure, int max_streams)
    : store_(store),
      pipeline_(pipeline),
      streams_(streams),
      limits_(limits),
      insecure_(insecure),
      max_streams_(max_streams) {
  using Stream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
  AddMethod(new grpc::internal::RpcServiceMethod(
      kConnectMethod, grpc::internal::RpcMethod::BIDI_STREAMING,
      new grpc::internal::BidiStreamingHandler<AgentServiceImpl, grpc::ByteBuffer, grpc::ByteBuffer>(
          [](AgentServiceImpl* self, grpc::ServerContext* context, Stream* stream) {
            return self->Connect(context, stream);
          },
          this)));
}

grpc::Status AgentServiceImpl::Connect(grpc::ServerContext* context,
                                       grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* rw) {
  const std::string peer = context->peer();
  if (!accepting_) return {grpc::StatusCode::UNAVAILABLE, "collector shutting down"};
  // Counted before anything else so that a flood of connections cannot get past the limit.
  struct StreamSlot {
    std::atomic<int>& active;
    ~StreamSlot() { --active; }
  } slot{active_streams_};
  if (++active_streams_ > max_streams_) {
    spdlog::warn("agent stream from {} refused: {} streams already open (--max-agents {})", peer, max_streams_,
                 max_streams_);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            fmt::format("collector at its limit of {} agent streams; retry later", max_streams_)};
  }
  auto identity = authenticate_peer(*context, pki::Role::agent, insecure_);
  if (!identity) {
    spdlog::warn("agent stream from {} refused: {}", peer, identity.error().message);
    return to_status(identity.error());
  }
  std::optional<std::string> certified;
  if (!insecure_) certified = identity->common_name;
  AgentIngest ingest(store_, certified, peer, limits_);

  auto refuse = [&](const Error& error) {
    spdlog::warn("agent stream {} from {} refused: {}", ingest.said_hello() ? ingest.agent_id() : "(no hello)", peer,
                 error.message);
    return to_status(error);
  };

  grpc::ByteBuffer buffer;
  std::string bytes;
  if (!rw->Read(&buffer)) return {grpc::StatusCode::CANCELLED, "stream closed before the hello"};
  if (!to_bytes(buffer, bytes)) return refuse(Error{EBADMSG, "unreadable message"});
  auto hello = ingest.on_message(bytes, now_ns());
  if (!hello) return refuse(hello.error());
  if (!hello->welcome) return refuse(Error{EINVAL, "the first message must be a hello"});

  auto stream = std::make_shared<AgentStream>(ingest.agent_id(), ingest.outbox_id(), context);
  streams_.add(stream);
  spdlog::info("agent {} connected from {} (outbox {}, acked through {}, {} command(s) to deliver)",
               ingest.agent_id(), peer, ingest.outbox_id(), hello->welcome->acked_through_sequence(),
               hello->commands.size());

  // The writer: Welcome first, then acks and commands as they come, until the stream closes.
  v1::CollectorMessage welcome;
  *welcome.mutable_welcome() = *hello->welcome;
  std::thread writer([&, stream, welcome = std::move(welcome)] {
    if (!rw->Write(to_buffer(welcome))) {
      stream->cancel();
      return;
    }
    while (auto message = stream->next()) {
      if (!rw->Write(to_buffer(*message))) {
        stream->cancel();
        return;
      }
      if (message->has_command()) {
        if (auto ok = store_.mark_command_sent(message->command().command_id(), now_ns()); !ok)
          spdlog::warn("command {}: {}", message->command().command_id(), ok.error().message);
      }
    }
  });
  for (auto& command : hello->commands) stream->push_command(std::move(command));
  // A command queued between the hello's query and add() found no live stream: ask again now that
  // operators can reach this one (push_command drops the ones already queued).
  if (auto late = store_.undelivered_commands(ingest.agent_id()); late) {
    for (auto& command : *late) stream->push_command(std::move(command));
  } else {
    spdlog::warn("agent {}: {}", ingest.agent_id(), late.error().message);
  }

  grpc::Status status = grpc::Status::OK;
  uint64_t reports = 0;
  for (;;) {
    if (!rw->Read(&buffer)) {
      if (context->IsCancelled() && accepting_)
        spdlog::info("agent {} stream cancelled (replaced by a newer connection, a failed write or a message above "
                     "the transport limit)",
                     ingest.agent_id());
      break;
    }
    if (!to_bytes(buffer, bytes)) {
      status = refuse(Error{EBADMSG, "unreadable message"});
      break;
    }
    auto step = ingest.on_message(bytes, now_ns());
    if (!step) {
      status = refuse(step.error());
      break;
    }
    if (step->record) {
      ++reports;
      if (!pipeline_.submit(std::move(*step->record), stream)) {
        status = {grpc::StatusCode::UNAVAILABLE, "collector shutting down"};
        break;
      }
    }
  }
  stream->close(status.ok());
  writer.join();
  stream->detach();
  streams_.remove(stream);
  if (auto ok = store_.close_session(ingest.agent_id(), peer, now_ns()); !ok)
    spdlog::warn("agent {}: {}", ingest.agent_id(), ok.error().message);
  spdlog::info("agent {} disconnected ({} reports on this stream, acked through {})", ingest.agent_id(), reports,
               stream->last_acked());
  return status;
}

}  // namespace nhiguard::collector
