// collector_probe: a scriptable client of nhiguard-collector for the e2e tests. It plays an agent
// (proper hellos and reports, or what a real agent never sends: a hello for another agent id,
// malformed bytes, oversized messages) or an operator, with any certificate of the PKI or none,
// and prints what the collector answered, one fact per line:
//   status CODE message         how the call ended (CODE: OK, UNAUTHENTICATED, PERMISSION_DENIED, ...)
//   welcome acked_through=N required_mode=MODE
//   acked N                     the highest ack received
//   command KIND TARGET ID      a command received (serve)
// Exit status: 0 when the call ended OK, 1 otherwise, 2 on bad usage.
//
//   collector_probe ADDRESS PKI_DIR CERT_BASE|none|insecure operator list-agents|rollback H [AGENT]|approve H|reject
//   H|mode-all MODE collector_probe ADDRESS PKI_DIR CERT_BASE|none|insecure agent ID send N [OUTBOX] collector_probe
//   ADDRESS PKI_DIR CERT_BASE|none|insecure agent ID hello-as OTHER_ID | malformed | oversized BYTES collector_probe
//   ADDRESS PKI_DIR CERT_BASE|none|insecure agent ID serve HANDLE COMMANDS [OUTBOX]
// What a hostile agent key tries (each prints the status the collector ended the stream with):
//   ... agent ID idle                      open the stream and never say hello
//   ... agent ID hold SECONDS [OUTBOX]     say hello, then only read (until the collector ends it)
//   ... agent ID reports OUTBOX SEQ...     reports with exactly these sequences (gaps allowed)
//   ... agent ID marker OUTBOX SEQ FIRST LAST [FIRST LAST]...   one drop marker (count = the sum)
//   ... agent ID flood N [BYTES] [OUTBOX]  N reports (BYTES of payload each) without waiting for acks
//   ... agent ID action HANDLE STATE [OUTBOX]   an action update for HANDLE (e.g. another agent's)
//   ... agent ID huge-hello BYTES          a hello whose hostname has BYTES bytes
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <grpcpp/client_context.h>

#include "collector_test_client.h"
#include "nhiguard/v1/operator.grpc.pb.h"

namespace {

using namespace nhiguard;
using testing::RawAgentStream;

constexpr auto kDeadline = std::chrono::seconds(20);

const char* code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "OTHER";
  }
}

int report(const grpc::Status& status) {
  std::printf("status %s %s\n", code_name(status.error_code()), status.error_message().c_str());
  return status.ok() ? 0 : 1;
}

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

int operator_call(const std::shared_ptr<grpc::Channel>& channel, const std::vector<std::string>& args) {
  auto stub = v1::OperatorService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kDeadline);
  const std::string& verb = args.at(0);
  if (verb == "list-agents") {
    v1::ListAgentsResponse response;
    return report(stub->ListAgents(&context, {}, &response));
  }
  if (verb == "rollback" || verb == "approve" || verb == "reject") {
    v1::ActionCommandRequest request;
    request.set_handle(args.at(1));
    if (args.size() > 2) request.set_agent_id(args[2]);
    v1::CommandStatus response;
    return report(verb == "rollback"  ? stub->Rollback(&context, request, &response)
                  : verb == "approve" ? stub->Approve(&context, request, &response)
                                      : stub->Reject(&context, request, &response));
  }
  if (verb == "mode-all") {
    v1::SetModeRequest request;
    request.set_mode(args.at(1) == "observe" ? v1::MODE_OBSERVE : v1::MODE_POLICY);
    request.set_all(true);
    v1::SetModeResponse response;
    return report(stub->SetMode(&context, request, &response));
  }
  std::fprintf(stderr, "collector_probe: unknown operator call %s\n", verb.c_str());
  return 2;
}

v1::AgentMessage hello(const std::string& agent_id, const std::string& outbox) {
  v1::AgentMessage message;
  auto* h = message.mutable_hello();
  h->set_agent_id(agent_id);
  h->set_hostname(agent_id);
  h->set_agent_version("probe");
  h->set_mode(v1::MODE_POLICY);
  h->set_outbox_id(outbox);
  h->set_sent_at_unix_ns(now_ns());
  return message;
}

// Reads until the ack reaches `through`; false if the stream ended first.
bool await_ack(RawAgentStream& stream, uint64_t through, uint64_t& acked) {
  while (acked < through) {
    auto message = stream.read();
    if (!message) return false;
    if (message->has_ack()) acked = message->ack().acked_through_sequence();
  }
  return true;
}

std::optional<v1::Welcome> say_hello(RawAgentStream& stream, const std::string& agent_id, const std::string& outbox) {
  if (!stream.write(hello(agent_id, outbox))) return std::nullopt;
  auto first = stream.read();
  if (!first || !first->has_welcome()) return std::nullopt;
  std::printf("welcome acked_through=%llu required_mode=%s\n",
              static_cast<unsigned long long>(first->welcome().acked_through_sequence()),
              v1::Mode_Name(first->welcome().required_mode()).c_str());
  return first->welcome();
}

v1::RollbackHandle handle_in_state(const std::string& handle, v1::ActionState state) {
  v1::RollbackHandle h;
  h.set_handle(handle);
  h.set_action(v1::ACTION_KIND_BLOCK_EGRESS);
  h.set_state(state);
  h.set_rule("manual");
  h.set_reason("e2e probe");
  h.set_created_at_unix_ns(now_ns());
  h.set_expires_at_unix_ns(now_ns() + 900'000'000'000LL);
  h.set_updated_at_unix_ns(now_ns());
  h.mutable_target()->set_cgroup_path("/system.slice/probe.service");
  h.mutable_target()->set_description("cgroup /system.slice/probe.service");
  return h;
}

// Reads until the stream ends; prints the highest ack seen and the final status.
int drain(RawAgentStream& stream, uint64_t acked) {
  while (auto message = stream.read()) {
    if (message->has_ack()) acked = message->ack().acked_through_sequence();
  }
  std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
  return report(stream.finish());
}

v1::AgentMessage event_report(uint64_t sequence, size_t payload_bytes = 0) {
  v1::AgentMessage message;
  auto* r = message.mutable_report();
  r->set_sequence(sequence);
  r->set_created_at_unix_ns(now_ns());
  auto* access = r->mutable_credential_access();
  access->set_event_id("probe-" + std::to_string(sequence));
  access->mutable_credential()->set_path("/root/.aws/credentials");
  access->mutable_credential()->set_credential_class(v1::CREDENTIAL_CLASS_AWS);
  if (payload_bytes > 0) access->set_requested_path(std::string(payload_bytes, 'p'));
  return message;
}

v1::ActionState state_named(const std::string& name) {
  v1::ActionState state = v1::ACTION_STATE_UNSPECIFIED;
  v1::ActionState_Parse("ACTION_STATE_" + name, &state);
  return state;
}

int agent_call(const std::shared_ptr<grpc::Channel>& channel, const std::string& agent_id,
               const std::vector<std::string>& args) {
  const std::string& verb = args.at(0);
  // Streams that must outlive the default deadline (idle, hold) get their own.
  const auto deadline = verb == "hold"   ? std::chrono::seconds(std::stoi(args.at(1)) + 5)
                        : verb == "idle" ? std::chrono::seconds(60)
                                         : kDeadline;
  RawAgentStream stream(channel, deadline);
  if (verb == "idle") {
    const auto start = std::chrono::steady_clock::now();
    const int rc = drain(stream, 0);
    std::printf("ended after %.1fs\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return rc;
  }
  if (verb == "huge-hello") {
    auto message = hello(agent_id, "probe-outbox");
    message.mutable_hello()->set_hostname(std::string(std::stoul(args.at(1)), 'h'));
    stream.write(message);
    return drain(stream, 0);
  }
  if (verb == "hold" || verb == "reports" || verb == "marker" || verb == "flood" || verb == "action") {
    const std::string outbox = verb == "reports" || verb == "marker" ? args.at(1)
                               : verb == "hold" && args.size() > 2   ? args[2]
                               : verb == "flood" && args.size() > 3  ? args[3]
                               : verb == "action" && args.size() > 3 ? args[3]
                                                                     : "probe-outbox";
    auto welcome = say_hello(stream, agent_id, outbox);
    if (!welcome) return report(stream.finish());
    std::fflush(stdout);
    uint64_t acked = welcome->acked_through_sequence();
    if (verb == "hold") return drain(stream, acked);
    if (verb == "reports") {
      uint64_t contiguous = acked;
      for (size_t i = 2; i < args.size(); ++i) {
        const uint64_t sequence = std::stoull(args[i]);
        if (sequence == contiguous + 1) contiguous = sequence;
        if (!stream.write(event_report(sequence))) break;
      }
      await_ack(stream, contiguous, acked);
      std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
      return report(stream.finish());
    }
    if (verb == "marker") {
      v1::AgentMessage message;
      auto* r = message.mutable_report();
      r->set_sequence(std::stoull(args.at(2)));
      auto* dropped = r->mutable_reports_dropped();
      uint64_t count = 0;
      for (size_t i = 3; i + 1 < args.size(); i += 2) {
        auto* range = dropped->add_ranges();
        range->set_first(std::stoull(args[i]));
        range->set_last(std::stoull(args[i + 1]));
        count += range->last() - range->first() + 1;  // wraps for hostile ranges, as an attacker's would
      }
      dropped->set_count(count);
      dropped->set_reason("collector_probe");
      stream.write(message);
      // Accepted: the ack covers it (or stops at a gap); refused: the collector ends the stream.
      await_ack(stream, r->sequence(), acked);
      std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
      return report(stream.finish());
    }
    if (verb == "action") {
      v1::AgentMessage update;
      update.mutable_report()->set_sequence(acked + 1);
      *update.mutable_report()->mutable_action_update()->mutable_action() =
          handle_in_state(args.at(1), state_named(args.at(2)));
      update.mutable_report()->mutable_action_update()->mutable_change()->set_to_state(state_named(args.at(2)));
      stream.write(update);
      const bool ok = await_ack(stream, acked + 1, acked);
      std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
      const auto status = stream.finish();
      report(status);
      return status.ok() && ok ? 0 : 1;
    }
    // flood: as fast as the transport takes them; the collector's rate limit ends it.
    const uint64_t count = std::stoull(args.at(1));
    const size_t bytes = args.size() > 2 ? std::stoul(args[2]) : 0;
    uint64_t sent = 0;
    for (uint64_t sequence = acked + 1; sent < count; ++sequence, ++sent) {
      if (!stream.write(event_report(sequence, bytes))) break;
    }
    std::printf("sent %llu\n", static_cast<unsigned long long>(sent));
    const bool all = sent == count && await_ack(stream, acked + count, acked);
    std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
    const auto status = stream.finish();
    report(status);
    return status.ok() && all ? 0 : 1;
  }
  if (verb == "hello-as") {
    stream.write(hello(args.at(1), "probe-outbox"));
    while (stream.read()) {
    }
    return report(stream.finish());
  }
  const std::string outbox = verb == "send" && args.size() > 2    ? args[2]
                             : verb == "serve" && args.size() > 3 ? args[3]
                                                                  : "probe-outbox";
  auto welcome = say_hello(stream, agent_id, outbox);
  if (!welcome) return report(stream.finish());
  uint64_t next = welcome->acked_through_sequence() + 1;
  uint64_t acked = welcome->acked_through_sequence();

  if (verb == "malformed" || verb == "oversized") {
    if (verb == "malformed") {
      stream.write_bytes(std::string("\x12\xff\xff\xff\xff\x0f\x01", 7));  // a length that runs past the end
    } else {
      v1::AgentMessage big;
      big.mutable_report()->set_sequence(next);
      big.mutable_report()->mutable_alert()->set_message(std::string(std::stoul(args.at(1)), 'x'));
      stream.write(big);
    }
    while (stream.read()) {
    }
    return report(stream.finish());
  }
  if (verb == "send") {
    const uint64_t count = std::stoull(args.at(1));
    for (uint64_t i = 0; i < count; ++i, ++next) {
      v1::AgentMessage message;
      auto* r = message.mutable_report();
      r->set_sequence(next);
      r->set_created_at_unix_ns(now_ns());
      auto* access = r->mutable_credential_access();
      access->set_event_id("probe-" + std::to_string(next));
      access->mutable_credential()->set_path("/root/.aws/credentials");
      access->mutable_credential()->set_credential_class(v1::CREDENTIAL_CLASS_AWS);
      if (!stream.write(message)) break;
    }
    const bool all = await_ack(stream, next - 1, acked);
    std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
    const auto status = stream.finish();
    report(status);
    return status.ok() && all ? 0 : 1;
  }
  if (verb == "serve") {
    const std::string handle = args.at(1);
    const int commands = std::stoi(args.at(2));
    v1::AgentMessage update;
    update.mutable_report()->set_sequence(next++);
    *update.mutable_report()->mutable_action_update()->mutable_action() =
        handle_in_state(handle, v1::ACTION_STATE_ACTIVE);
    update.mutable_report()->mutable_action_update()->mutable_change()->set_to_state(v1::ACTION_STATE_ACTIVE);
    stream.write(update);
    std::fflush(stdout);
    int handled = 0;
    while (handled < commands) {
      auto message = stream.read();
      if (!message) break;
      if (message->has_ack()) acked = message->ack().acked_through_sequence();
      if (!message->has_command()) continue;
      const auto& command = message->command();
      v1::AgentMessage result;
      result.mutable_report()->set_sequence(next++);
      auto* r = result.mutable_report()->mutable_command_result();
      r->set_command_id(command.command_id());
      r->set_status(v1::CommandResult::STATUS_OK);
      r->set_completed_at_unix_ns(now_ns());
      if (command.has_set_mode()) {
        std::printf("command set_mode %s %s\n", v1::Mode_Name(command.set_mode().mode()).c_str(),
                    command.command_id().c_str());
        r->set_mode(command.set_mode().mode());
        r->set_message("mode set");
      } else if (command.has_rollback()) {
        std::printf("command rollback %s %s\n", command.rollback().handle().c_str(), command.command_id().c_str());
        *r->mutable_action() = handle_in_state(command.rollback().handle(), v1::ACTION_STATE_ROLLED_BACK);
        r->set_message("rolled back");
      } else {
        std::printf("command other - %s\n", command.command_id().c_str());
        r->set_status(v1::CommandResult::STATUS_INVALID);
        r->set_message("probe handles rollback and set_mode only");
      }
      std::fflush(stdout);
      stream.write(result);
      ++handled;
    }
    await_ack(stream, next - 1, acked);
    std::printf("acked %llu\n", static_cast<unsigned long long>(acked));
    return report(stream.finish());
  }
  std::fprintf(stderr, "collector_probe: unknown agent call %s\n", verb.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: see the header of collector_probe.cpp\n");
    return 2;
  }
  const std::string address = argv[1], pki = argv[2], cert = argv[3], role = argv[4];
  const bool insecure = cert == "insecure";
  auto channel = testing::collector_channel(address, pki, cert == "none" || insecure ? "" : cert, insecure);
  std::vector<std::string> args(argv + 5, argv + argc);
  try {
    if (role == "operator") return operator_call(channel, args);
    if (role == "agent" && args.size() >= 2) return agent_call(channel, args[0], {args.begin() + 1, args.end()});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "collector_probe: bad arguments (%s)\n", e.what());
    return 2;
  }
  std::fprintf(stderr, "collector_probe: unknown role %s\n", role.c_str());
  return 2;
}
