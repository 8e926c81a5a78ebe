// nhiguardctl's side of the collector's OperatorService: one gRPC channel (mTLS with the operator
// certificate from the PKI directory, or plaintext with --insecure) and one call per command, each
// answering JSON in the same shapes as the local control socket: action objects carry the contract
// fields (handle, action, state, target, rule, reason, created_at, expires_at, ...) plus agent_id.
//
// Errors: a collector that cannot be reached (UNAVAILABLE, DEADLINE_EXCEEDED), or a server whose
// certificate is not the collector's role, is ECONNREFUSED so the caller can exit 3; every other
// gRPC status is EPROTO with "CODE: message".
// Thread-safety: one instance per thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "nhiguard/v1/operator.grpc.pb.h"

namespace nhiguard::ctl {

struct CollectorEndpoint {
  std::string address;  // host:port
  std::string pki_dir;  // pki::load_tls_material(dir, "operator"): dir/operator/ or dir
  bool insecure = false;
  std::chrono::milliseconds timeout{10000};
};

// The contract's action object for a handle received from the collector, with its agent.
nlohmann::json action_json(const v1::RollbackHandle& handle, const std::string& agent_id);
// A command's status as JSON: command_id, agent_id, kind, handle|mode, state, result{status, message}.
nlohmann::json command_json(const v1::CommandStatus& status);

class CollectorClient {
 public:
  static Result<CollectorClient> connect(const CollectorEndpoint& endpoint);

  Result<nlohmann::json> agents();  // {"fleet_mode": ..., "agents": [...]}
  // agent_id empty: every agent.
  Result<nlohmann::json> incidents(uint32_t limit, const std::string& agent_id);  // [decision objects]
  Result<nlohmann::json> actions(std::optional<v1::ActionState> state, uint32_t limit,
                                 const std::string& agent_id);  // [action objects]
  // verb: "approve", "reject", "rollback". Waits up to `wait` for the agent's result. `agent_id`
  // empty: the one agent that reported the handle (the collector refuses when several did).
  // {"command": {...}, "action": {...}} (action: as the agent reported it after the command, if known)
  Result<nlohmann::json> action_command(const std::string& verb, const std::string& handle, const std::string& agent_id,
                                        const std::string& reason, std::chrono::milliseconds wait);
  // agent_id empty: the whole fleet. {"fleet_mode", "commands": [...], "errors": [agents not commanded]}
  Result<nlohmann::json> set_mode(v1::Mode mode, const std::string& agent_id);

 private:
  CollectorClient(std::shared_ptr<v1::OperatorService::Stub> stub, const CollectorEndpoint& endpoint)
      : stub_(std::move(stub)), timeout_(endpoint.timeout), address_(endpoint.address), insecure_(endpoint.insecure) {}
  // The call's outcome: its status, and first (with mTLS) that the server holds the collector's
  // certificate — any certificate of the fleet CA passes the handshake, and an answer from an
  // agent's or operator's key posing as the collector is ignored (ECONNREFUSED: the collector was
  // not reached).
  Result<void> checked(const grpc::ClientContext& context, const grpc::Status& status, std::string_view call) const;

  std::shared_ptr<v1::OperatorService::Stub> stub_;
  std::chrono::milliseconds timeout_;
  std::string address_;
  bool insecure_ = false;
};

}  // namespace nhiguard::ctl
