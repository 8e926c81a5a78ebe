// OperatorService: what `nhiguardctl --collector` calls. Every call needs an operator certificate
// (see peer_identity.h); each refusal and each command is logged with the operator's CN.
//
// Commands are stored first (so they survive a collector restart and reach an offline agent when it
// reconnects), then handed to the agent's live stream if there is one. With wait_ms, the call waits
// (bounded by 30 s) for the agent's result before answering.
//
// An action is the pair (agent, handle): a request naming the agent reaches that agent's action
// only; a bare handle must name a single agent's action (FAILED_PRECONDITION when several agents
// reported it: one agent must not be able to make another's action unroutable, nor be guessed).
// Action commands are checked against the action's last known state: approve and reject need
// `held`; rollback refuses `held` (reject it instead) and irreversible actions. Mode: `--all` with
// observe turns the fleet kill switch on (every agent, connected or not, and every agent that
// connects later, must run in observe); `--all` with policy turns it off and asks every known agent
// for policy. The fleet mode is stored first, before anything that reads agents' data, and one
// agent's failure is reported in the response (errors) without keeping the others from their
// command. A per-agent `policy` while the kill switch is on is refused (FAILED_PRECONDITION).
#pragma once

#include "nhiguard/v1/operator.grpc.pb.h"
#include "ingest/ingest_pipeline.h"
#include "server/agent_streams.h"
#include "store/command_store.h"
#include "store/query_store.h"

namespace nhiguard::collector {

class OperatorServiceImpl final : public v1::OperatorService::Service {
 public:
  OperatorServiceImpl(CommandStore& commands, QueryStore& queries, AgentStreams& streams, CommandWaiters& waiters,
                      bool insecure)
      : commands_(commands), queries_(queries), streams_(streams), waiters_(waiters), insecure_(insecure) {}

  grpc::Status ListAgents(grpc::ServerContext*, const v1::ListAgentsRequest*, v1::ListAgentsResponse*) override;
  grpc::Status ListIncidents(grpc::ServerContext*, const v1::ListIncidentsRequest*,
                             v1::ListIncidentsResponse*) override;
  grpc::Status ListActions(grpc::ServerContext*, const v1::ListActionsRequest*, v1::ListActionsResponse*) override;
  grpc::Status Approve(grpc::ServerContext*, const v1::ActionCommandRequest*, v1::CommandStatus*) override;
  grpc::Status Reject(grpc::ServerContext*, const v1::ActionCommandRequest*, v1::CommandStatus*) override;
  grpc::Status Rollback(grpc::ServerContext*, const v1::ActionCommandRequest*, v1::CommandStatus*) override;
  grpc::Status SetMode(grpc::ServerContext*, const v1::SetModeRequest*, v1::SetModeResponse*) override;
  grpc::Status GetCommand(grpc::ServerContext*, const v1::GetCommandRequest*, v1::CommandStatus*) override;

 private:
  enum class ActionVerb { approve, reject, rollback };
  grpc::Status action_command(grpc::ServerContext* context, ActionVerb verb, const v1::ActionCommandRequest& request,
                              v1::CommandStatus* response);
  // Stores and delivers one command; `operator_cn` goes into issued_by.
  Result<v1::CommandStatus> issue(const std::string& agent_id, v1::Command command);
  // Polls the command until done or `wait_ms` passed.
  Result<v1::CommandStatus> wait_for(const std::string& command_id, uint32_t wait_ms);

  CommandStore& commands_;
  QueryStore& queries_;
  AgentStreams& streams_;
  CommandWaiters& waiters_;
  bool insecure_;
};

}  // namespace nhiguard::collector
