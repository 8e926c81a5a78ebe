// CommandStore: the commands operators send agents (approve, reject, rollback, mode), from the
// operator's call that queues one to the agent stream that delivers it, and the modes the collector
// requires: the fleet-wide kill switch and per-agent modes. Commands are stored before they are
// sent, so they survive a collector restart and reach an agent that is offline when it reconnects.
// A backend implements it with IngestStore and QueryStore (see report_store.h); a command's result
// arrives as a report (IngestStore::store_reports completes the command).
//
// Every method is atomic and durable on return; implementations are thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "nhiguard/v1/agent.pb.h"
#include "nhiguard/v1/operator.pb.h"

namespace nhiguard::collector {

// A command as queued by an operator.
struct CommandRecord {
  std::string agent_id;
  v1::Command command;
};

class CommandStore {
 public:
  virtual ~CommandStore() = default;

  // Undelivered = pending or sent without a result, oldest first: redelivered on reconnect.
  virtual Result<v1::CommandStatus> add_command(const CommandRecord& record) = 0;
  virtual Result<std::vector<v1::Command>> undelivered_commands(std::string_view agent_id) = 0;
  virtual Result<void> mark_command_sent(std::string_view command_id, int64_t now_ns) = 0;
  virtual Result<v1::CommandStatus> get_command(std::string_view command_id) = 0;  // ENOENT if unknown

  // The fleet-wide mode: MODE_OBSERVE is the kill switch, MODE_UNSPECIFIED none.
  virtual Result<v1::Mode> fleet_mode() = 0;
  virtual Result<void> set_fleet_mode(v1::Mode mode) = 0;
  // A mode required of one agent (MODE_UNSPECIFIED: none). ENOENT for an unknown agent.
  virtual Result<void> set_required_mode(std::string_view agent_id, v1::Mode mode) = 0;
};

}  // namespace nhiguard::collector
