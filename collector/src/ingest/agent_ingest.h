// The collector's side of one agent stream, without gRPC: turns the raw bytes of each AgentMessage
// into what the stream must do — answer a Hello with a Welcome (and the commands waiting for that
// agent), or queue a validated Report for storage. The gRPC service (server/agent_service.h) only
// moves bytes; the fuzz target drives this class directly.
//
// Rules enforced here (each failure is an Error whose errno maps to a gRPC status, see
// grpc_status_for_errno in server/): the first message is a Hello and there is only one (EINVAL);
// with a certificate, Hello.agent_id equals its CN (EACCES); a message is at most
// max_message_bytes (EMSGSIZE) and parses as an AgentMessage (EBADMSG). Everything an agent sends
// is bounded, because one agent's key must not be able to hurt the rest of the fleet:
//   - Hello: agent_id and outbox_id are names (1-64 of [A-Za-z0-9._-]), hostname at most 253
//     bytes, agent_version 64, trust_domain 255; highest_sequence below 2^63 (EINVAL).
//   - Report: 1 <= sequence < 2^63 (sequences are stored in signed 64-bit columns).
//   - ReportsDropped (a drop marker): 1 to max_dropped_ranges ranges, ascending and disjoint, each
//     with first <= last <= the report's own sequence (the agent's marker goes out under the last
//     sequence it replaced, see proto/README.md), every range above everything this stream already
//     accounted for (the Welcome's acked_through and every sequence received since: a sequence
//     cannot be both sent and dropped), and `count` equal to the sum of the ranges (EINVAL).
//     The store refuses as well a range over sequences it holds (see IngestStore::store_reports).
// A report whose body this collector does not know is accepted and stored whole.
//
// Thread-safety: one instance per stream, used by that stream's reader only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "store/command_store.h"
#include "store/ingest_store.h"

namespace nhiguard::collector {

struct IngestLimits {
  uint32_t max_message_bytes = 4u << 20;
  uint32_t max_dropped_ranges = 10000;
};

// Sequences, and the ranges of drop markers, stay below 2^63.
inline constexpr uint64_t kMaxSequence = (uint64_t{1} << 63) - 1;

class AgentIngest {
 public:
  // `certified_agent_id`: the CN of the agent's verified certificate; none with --insecure, when
  // Hello.agent_id is trusted instead.
  // `sessions` answers the hello, `commands` the commands waiting for the agent.
  AgentIngest(IngestStore& sessions, CommandStore& commands, std::optional<std::string> certified_agent_id,
              std::string peer, IngestLimits limits = {});

  struct Step {
    std::optional<v1::Welcome> welcome;  // after the Hello
    std::vector<v1::Command> commands;   // after the Hello: undelivered commands, oldest first
    std::optional<IngestRecord> record;  // after a Report
  };
  Result<Step> on_message(std::string_view bytes, int64_t now_ns);

  bool said_hello() const { return !agent_id_.empty(); }
  const std::string& agent_id() const { return agent_id_; }
  const std::string& outbox_id() const { return outbox_id_; }

 private:
  Result<Step> on_hello(const v1::Hello& hello, int64_t now_ns);
  Result<Step> on_report(v1::Report&& report, int64_t now_ns);

  IngestStore& sessions_;
  CommandStore& commands_;
  std::optional<std::string> certified_agent_id_;
  std::string peer_;
  IngestLimits limits_;
  std::string agent_id_;  // set by the Hello
  std::string outbox_id_;
  // The highest sequence this stream accounted for: the Welcome's acked_through, then every report
  // received. A drop marker's ranges must lie above it.
  uint64_t accounted_through_ = 0;
};

}  // namespace nhiguard::collector
