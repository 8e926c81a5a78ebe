// A client of the collector for tests and the ingest benchmark, speaking the real protocol over
// real gRPC channels (mTLS with the certificates of `nhiguardctl certs init`, or plaintext):
//   collector_channel()  a channel presenting no certificate, or DIR/<base>.pem + key
//   RawAgentStream       AgentService.Connect at the byte level, so tests can send what a real
//                        agent never would (malformed or oversized messages) as well as proper
//                        hellos and reports.
// RawAgentStream is single-threaded: one operation at a time, each bounded by the call deadline.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>

#include "nhiguard/v1/agent.pb.h"

namespace nhiguard::testing {

// `cert_base`: "" presents no client certificate; otherwise DIR/<cert_base>.pem and -key.pem
// ("agent", "operator", "agents/web-2/agent"). The server is verified against DIR/ca.pem.
std::shared_ptr<grpc::Channel> collector_channel(const std::string& address, const std::string& pki_dir,
                                                 const std::string& cert_base, bool insecure);

class RawAgentStream {
 public:
  RawAgentStream(const std::shared_ptr<grpc::Channel>& channel, std::chrono::milliseconds deadline);
  ~RawAgentStream();

  bool write_bytes(const std::string& bytes);
  bool write(const v1::AgentMessage& message) { return write_bytes(message.SerializeAsString()); }
  // The next collector message; none when the stream ended (see finish()).
  std::optional<v1::CollectorMessage> read();
  // Ends the call and returns its status (the refusal, when the collector refused something).
  grpc::Status finish();

 private:
  bool wait();

  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool started_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

}  // namespace nhiguard::testing
