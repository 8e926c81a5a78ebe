#include "server/agent_service.h"

#include <time.h>

#include <algorithm>
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

int64_t now_ns() {
  return static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
}

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

AgentServiceImpl::AgentServiceImpl(IngestStore& sessions, CommandStore& commands, IngestPipeline& pipeline,
                                   AgentStreams& streams, AgentServiceOptions options)
    : sessions_(sessions),
      commands_(commands),
      pipeline_(pipeline),
      streams_(streams),
      options_(options),
      pending_(options.hello_deadline, std::max<size_t>(16, static_cast<size_t>(options.max_streams))),
      rate_(options.rate) {
  using Stream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
  AddMethod(new grpc::internal::RpcServiceMethod(
      kConnectMethod, grpc::internal::RpcMethod::BIDI_STREAMING,
      new grpc::internal::BidiStreamingHandler<AgentServiceImpl, grpc::ByteBuffer, grpc::ByteBuffer>(
          [](AgentServiceImpl* self, grpc::ServerContext* context, Stream* stream) {
            return self->Connect(context, stream);
          },
          this)));
}

size_t AgentServiceImpl::max_pending_hellos() const {
  return std::max<size_t>(16, static_cast<size_t>(options_.max_streams));
}

grpc::Status AgentServiceImpl::Connect(grpc::ServerContext* context,
                                       grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* rw) {
  const std::string peer = context->peer();
  if (!accepting_) return {grpc::StatusCode::UNAVAILABLE, "collector shutting down"};
  auto identity = authenticate_peer(*context, pki::Role::agent, options_.insecure);
  if (!identity) {
    spdlog::warn("agent stream from {} refused: {}", peer, identity.error().message);
    return to_status(identity.error());
  }
  std::optional<std::string> certified;
  if (!options_.insecure) certified = identity->common_name;
  const std::string who = certified ? fmt::format("{} ({})", *certified, peer) : peer;

  // Until its first message the stream holds no slot, only a place among the pending hellos.
  auto ticket = pending_.enter(certified.value_or(""), [context] { context->TryCancel(); });
  if (!ticket) {
    spdlog::warn("agent stream from {} refused: {} streams already wait for their hello", who, max_pending_hellos());
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            fmt::format("collector at its limit of {} streams waiting for a hello; retry later", max_pending_hellos())};
  }
  grpc::ByteBuffer buffer;
  std::string bytes;
  const bool got_first = rw->Read(&buffer);
  if (const std::string why = pending_.leave(*ticket); !why.empty()) {
    spdlog::warn("agent stream from {} closed: {}", who, why);
    return {grpc::StatusCode::DEADLINE_EXCEEDED, fmt::format("stream closed: {}", why)};
  }
  if (!got_first) return {grpc::StatusCode::CANCELLED, "stream closed before the hello"};

  AgentIngest ingest(sessions_, commands_, certified, peer, options_.limits);
  auto refuse = [&](const Error& error) {
    spdlog::warn("agent stream {} from {} refused: {}", ingest.said_hello() ? ingest.agent_id() : "(no hello)", peer,
                 error.message);
    return to_status(error);
  };
  if (!to_bytes(buffer, bytes)) return refuse(Error{EBADMSG, "unreadable message"});

  // A slot for the agent the hello names (the certificate's, or with --insecure the hello's own),
  // asked before the hello touches the store.
  std::string slot_id = certified.value_or("");
  if (!certified) {
    v1::AgentMessage first;
    if (first.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) && first.has_hello())
      slot_id = first.hello().agent_id();
  }
  if (!slot_id.empty() && !streams_.admit(slot_id, static_cast<size_t>(options_.max_streams))) {
    spdlog::warn("agent stream {} from {} refused: {} streams already open (--max-agents {})", slot_id, peer,
                 options_.max_streams, options_.max_streams);
    return {grpc::StatusCode::RESOURCE_EXHAUSTED,
            fmt::format("collector at its limit of {} agent streams; retry later", options_.max_streams)};
  }
  auto hello = ingest.on_message(bytes, now_ns());
  if (!hello || !hello->welcome) {
    if (!slot_id.empty()) streams_.release(slot_id);
    return refuse(hello ? Error{EINVAL, "the first message must be a hello"} : hello.error());
  }

  auto stream = std::make_shared<AgentStream>(ingest.agent_id(), ingest.outbox_id(), context, peer);
  streams_.add(stream);
  spdlog::info("agent {} connected from {} (outbox {}, acked through {}, {} command(s) to deliver)", ingest.agent_id(),
               peer, ingest.outbox_id(), hello->welcome->acked_through_sequence(), hello->commands.size());

  // The writer: Welcome first, then acks and commands as they come, until the stream closes.
  v1::CollectorMessage welcome;
  *welcome.mutable_welcome() = *hello->welcome;
  std::thread writer([&, stream, welcome = std::move(welcome)] {
    if (!rw->Write(to_buffer(welcome))) {
      stream->cancel("the Welcome could not be written (the agent went away)");
      return;
    }
    while (auto message = stream->next()) {
      if (!rw->Write(to_buffer(*message))) {
        stream->cancel("a write to the agent failed (the agent went away)");
        return;
      }
      if (message->has_command()) {
        if (auto ok = commands_.mark_command_sent(message->command().command_id(), now_ns()); !ok)
          spdlog::warn("command {}: {}", message->command().command_id(), ok.error().message);
      }
    }
  });
  for (auto& command : hello->commands) stream->push_command(std::move(command));
  // A command queued between the hello's query and add() found no live stream: ask again now that
  // operators can reach this one (push_command drops the ones already queued).
  if (auto late = commands_.undelivered_commands(ingest.agent_id()); late) {
    for (auto& command : *late) stream->push_command(std::move(command));
  } else {
    spdlog::warn("agent {}: {}", ingest.agent_id(), late.error().message);
  }

  grpc::Status status = grpc::Status::OK;
  uint64_t reports = 0;
  for (;;) {
    if (!rw->Read(&buffer)) {
      if (context->IsCancelled() && accepting_) {
        const std::string why = stream->cancel_reason();
        spdlog::info(
            "agent {} stream from {} closed: {}", ingest.agent_id(), peer,
            why.empty() ? "cancelled by the agent or the transport (e.g. a message above the transport limit)" : why);
      }
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
      if (!rate_.admit(ingest.agent_id(), ReportRateLimiter::Clock::now())) {
        status = refuse(Error{EAGAIN, fmt::format("rate limit: agent {} sent more than {} reports per second "
                                                  "(bursts up to {}); report {} not accepted, retry later",
                                                  ingest.agent_id(), options_.rate.reports_per_second,
                                                  options_.rate.burst, step->record->report.sequence())});
        break;
      }
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
  if (auto ok = sessions_.close_session(ingest.agent_id(), peer, now_ns()); !ok)
    spdlog::warn("agent {}: {}", ingest.agent_id(), ok.error().message);
  spdlog::info("agent {} disconnected ({} reports on this stream, acked through {})", ingest.agent_id(), reports,
               stream->last_acked());
  return status;
}

}  // namespace nhiguard::collector
