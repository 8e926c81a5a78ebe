#include "ingest/agent_ingest.h"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "pki/fleet_pki.h"

namespace nhiguard::collector {
namespace {

constexpr size_t kMaxHostnameBytes = 253;
constexpr size_t kMaxVersionBytes = 64;
constexpr size_t kMaxTrustDomainBytes = 255;

Result<void> check_length(std::string_view field, const std::string& value, size_t limit) {
  if (value.size() <= limit) return {};
  return fail(Error{EINVAL, fmt::format("hello: {} of {} bytes (at most {})", field, value.size(), limit)});
}

// A drop marker: see the rules in the header.
Result<void> check_dropped(const v1::Report& report, uint64_t accounted_through, uint32_t max_ranges) {
  const auto& dropped = report.reports_dropped();
  const uint64_t sequence = report.sequence();
  if (dropped.ranges_size() == 0)
    return fail(Error{EINVAL, fmt::format("report {}: a drop marker without ranges", sequence)});
  if (static_cast<uint32_t>(dropped.ranges_size()) > max_ranges)
    return fail(Error{
        EINVAL, fmt::format("report {}: {} dropped ranges (at most {})", sequence, dropped.ranges_size(), max_ranges)});
  uint64_t floor = accounted_through;  // every range starts above it
  uint64_t total = 0;                  // cannot overflow: the ranges are disjoint and below 2^63
  for (const auto& range : dropped.ranges()) {
    if (range.first() <= floor || range.first() > range.last() || range.last() > sequence)
      return fail(Error{EINVAL, fmt::format("report {}: dropped range {}-{} is not within {}..{} (ranges ascend, do "
                                            "not overlap, end at the marker's own sequence at the latest and start "
                                            "above what this stream already accounted for)",
                                            sequence, range.first(), range.last(), floor + 1, sequence)});
    total += range.last() - range.first() + 1;
    floor = range.last();
  }
  if (dropped.count() != total)
    return fail(Error{EINVAL, fmt::format("report {}: drop marker says {} report(s) but its ranges hold {}", sequence,
                                          dropped.count(), total)});
  return {};
}

}  // namespace

AgentIngest::AgentIngest(IngestStore& sessions, CommandStore& commands, std::optional<std::string> certified_agent_id,
                         std::string peer, IngestLimits limits)
    : sessions_(sessions),
      commands_(commands),
      certified_agent_id_(std::move(certified_agent_id)),
      peer_(std::move(peer)),
      limits_(limits) {}

Result<AgentIngest::Step> AgentIngest::on_message(std::string_view bytes, int64_t now_ns) {
  if (bytes.size() > limits_.max_message_bytes) {
    return fail(Error{EMSGSIZE, fmt::format("message of {} bytes is above the limit of {} bytes", bytes.size(),
                                            limits_.max_message_bytes)});
  }
  v1::AgentMessage message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return fail(Error{EBADMSG, fmt::format("message of {} bytes is not a valid AgentMessage", bytes.size())});
  }
  switch (message.body_case()) {
    case v1::AgentMessage::kHello:
      if (said_hello()) return fail(Error{EINVAL, "a second hello on the same stream"});
      return on_hello(message.hello(), now_ns);
    case v1::AgentMessage::kReport:
      if (!said_hello()) return fail(Error{EINVAL, "a report before the hello"});
      return on_report(std::move(*message.mutable_report()), now_ns);
    case v1::AgentMessage::BODY_NOT_SET:
      break;
  }
  return fail(Error{
      EINVAL, said_hello() ? "a message that is neither a hello nor a report" : "the first message must be a hello"});
}

Result<AgentIngest::Step> AgentIngest::on_hello(const v1::Hello& hello, int64_t now_ns) {
  if (hello.agent_id().empty()) return fail(Error{EINVAL, "hello without agent_id"});
  if (hello.outbox_id().empty()) return fail(Error{EINVAL, "hello without outbox_id"});
  if (!pki::is_valid_identity_name(hello.agent_id()))
    return fail(Error{
        EINVAL, fmt::format("hello: agent_id of {} bytes is not 1-64 of [A-Za-z0-9._-]", hello.agent_id().size())});
  if (!pki::is_valid_identity_name(hello.outbox_id()))
    return fail(Error{
        EINVAL, fmt::format("hello: outbox_id of {} bytes is not 1-64 of [A-Za-z0-9._-]", hello.outbox_id().size())});
  for (auto check : {check_length("hostname", hello.hostname(), kMaxHostnameBytes),
                     check_length("agent_version", hello.agent_version(), kMaxVersionBytes),
                     check_length("trust_domain", hello.trust_domain(), kMaxTrustDomainBytes)}) {
    if (!check) return fail(std::move(check.error()));
  }
  if (hello.highest_sequence() > kMaxSequence)
    return fail(Error{EINVAL, fmt::format("hello: highest_sequence {} is not below 2^63", hello.highest_sequence())});
  if (hello.lowest_pending_sequence() > hello.highest_sequence() + 1)
    return fail(Error{EINVAL, fmt::format("hello: lowest_pending_sequence {} is above highest_sequence {} + 1",
                                          hello.lowest_pending_sequence(), hello.highest_sequence())});
  if (certified_agent_id_ && *certified_agent_id_ != hello.agent_id()) {
    return fail(Error{EACCES, fmt::format("hello says agent '{}' but the certificate is for '{}'", hello.agent_id(),
                                          *certified_agent_id_)});
  }
  AgentHello in{hello.agent_id(), peer_, hello, now_ns};
  auto session = sessions_.open_session(in);
  if (!session) return fail(std::move(session.error()));
  auto commands = commands_.undelivered_commands(hello.agent_id());
  if (!commands) return fail(std::move(commands.error()));
  agent_id_ = hello.agent_id();
  outbox_id_ = hello.outbox_id();
  accounted_through_ = session->acked_through;

  Step step;
  v1::Welcome welcome;
  welcome.set_agent_id(agent_id_);
  welcome.set_acked_through_sequence(session->acked_through);
  welcome.set_required_mode(session->required_mode);
  welcome.set_max_message_bytes(limits_.max_message_bytes);
  welcome.set_server_time_unix_ns(now_ns);
  step.welcome = std::move(welcome);
  step.commands = std::move(*commands);
  return step;
}

Result<AgentIngest::Step> AgentIngest::on_report(v1::Report&& report, int64_t now_ns) {
  if (report.sequence() == 0) return fail(Error{EINVAL, "report with sequence 0 (sequences start at 1)"});
  if (report.sequence() > kMaxSequence)
    return fail(Error{EINVAL, fmt::format("report with sequence {} (sequences stay below 2^63)", report.sequence())});
  if (report.has_reports_dropped()) {
    if (auto ok = check_dropped(report, accounted_through_, limits_.max_dropped_ranges); !ok)
      return fail(std::move(ok.error()));
  }
  accounted_through_ = std::max(accounted_through_, report.sequence());
  Step step;
  IngestRecord record;
  record.agent_id = agent_id_;
  record.outbox_id = outbox_id_;
  record.received_at_ns = now_ns;
  // Re-serializing keeps unknown fields: a newer agent's additions are stored whole.
  report.SerializeToString(&record.raw);
  record.report = std::move(report);
  step.record = std::move(record);
  return step;
}

}  // namespace nhiguard::collector
