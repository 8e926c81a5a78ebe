// QueryStore: what the operator API reads — agents, decisions (incidents) and actions with their
// history and commands. Reads only. A backend implements it with IngestStore and CommandStore (see
// report_store.h). Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nhiguard/v1/operator.pb.h"

namespace nhiguard::collector {

struct ActionQuery {
  std::string agent_id;                 // empty: any
  std::vector<v1::ActionState> states;  // empty: any
  uint32_t limit = 1000;
  bool with_history = false;
};

class QueryStore {
 public:
  virtual ~QueryStore() = default;

  virtual Result<std::vector<v1::AgentSummary>> list_agents() = 0;
  // Every known agent id, in order: what the kill switch needs, read without any per-agent totals.
  virtual Result<std::vector<std::string>> agent_ids() = 0;
  virtual Result<bool> agent_exists(std::string_view agent_id) = 0;
  virtual Result<std::vector<v1::StoredDecision>> list_decisions(std::string_view agent_id, uint32_t limit) = 0;
  virtual Result<std::vector<v1::StoredAction>> list_actions(const ActionQuery& query) = 0;
  // The action (with history and commands) of `agent_id` with this handle; ENOENT when that agent
  // did not report it. An action is always the pair (agent, handle): an agent that reports another
  // agent's handle only ever writes its own row. With an empty `agent_id` the handle alone must
  // name it: ENOENT when no agent reported it, ENOTSUP (naming the agents) when more than one did —
  // never guess where a command goes.
  virtual Result<v1::StoredAction> find_action(std::string_view agent_id, std::string_view handle) = 0;
  // Report rows kept for the agent (every outbox), for checks and the benchmark.
  virtual Result<uint64_t> count_reports(std::string_view agent_id) = 0;
};

}  // namespace nhiguard::collector
