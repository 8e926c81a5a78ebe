#include "collector_test_client.h"

#include <fstream>
#include <sstream>

#include <grpcpp/support/byte_buffer.h>

#include "pki/collector_channel.h"
#include "pki/fleet_pki.h"

namespace nhiguard::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::shared_ptr<grpc::Channel> collector_channel(const std::string& address, const std::string& pki_dir,
                                                 const std::string& cert_base, bool insecure) {
  pki::ChannelOptions options;
  options.max_message_bytes = 64 << 20;
  // Each channel gets its own connection, so N simulated agents are N connections.
  options.own_connection = true;
  if (insecure) return pki::collector_channel(address, options);
  pki::TlsMaterial tls;
  tls.ca_pem = slurp(pki_dir + "/ca.pem");
  if (!cert_base.empty()) {
    // "agent", "operator": the role directories of `certs init`; "agents/web-2/agent": an issued one.
    const auto slash = cert_base.rfind('/');
    const std::string base = slash == std::string::npos ? cert_base : cert_base.substr(slash + 1);
    const std::string dir = slash == std::string::npos ? pki_dir : pki_dir + "/" + cert_base.substr(0, slash);
    const std::string from = pki::tls_material_dir(dir, base);
    tls.cert_pem = slurp(from + "/" + base + ".pem");
    tls.key_pem = slurp(from + "/" + base + "-key.pem");
  }
  options.tls = std::move(tls);
  return pki::collector_channel(address, options);
}

RawAgentStream::RawAgentStream(const std::shared_ptr<grpc::Channel>& channel, std::chrono::milliseconds deadline)
    : stub_(channel) {
  context_.set_deadline(std::chrono::system_clock::now() + deadline);
  call_ = stub_.PrepareCall(&context_, "/nhiguard.v1.AgentService/Connect", &queue_);
  call_->StartCall(this);
  started_ = wait();
}

RawAgentStream::~RawAgentStream() {
  if (!finished_) {
    context_.TryCancel();
    finish();
  }
  queue_.Shutdown();
  void* tag;
  bool ok;
  while (queue_.Next(&tag, &ok)) {
  }
}

bool RawAgentStream::wait() {
  void* tag = nullptr;
  bool ok = false;
  return queue_.Next(&tag, &ok) && ok;
}

bool RawAgentStream::write_bytes(const std::string& bytes) {
  if (!started_ || finished_) return false;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer buffer(&slice, 1);
  call_->Write(buffer, this);
  return wait();
}

std::optional<v1::CollectorMessage> RawAgentStream::read() {
  if (!started_ || finished_) return std::nullopt;
  grpc::ByteBuffer buffer;
  call_->Read(&buffer, this);
  if (!wait()) return std::nullopt;
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return std::nullopt;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  v1::CollectorMessage message;
  if (!message.ParseFromString(bytes)) return std::nullopt;
  return message;
}

grpc::Status RawAgentStream::finish() {
  if (finished_) return status_;
  finished_ = true;
  if (!started_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "call did not start");
  call_->WritesDone(this);
  wait();  // fails harmlessly when the server already ended the call
  // Finish completes only once every message the server sent was read (commands queued for the
  // agent, late acks): read them away first, or it waits out the deadline.
  for (;;) {
    grpc::ByteBuffer ignored;
    call_->Read(&ignored, this);
    if (!wait()) break;
  }
  call_->Finish(&status_, this);
  wait();
  return status_;
}

}  // namespace nhiguard::testing
