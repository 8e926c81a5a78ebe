#include "reporter/collector_link.h"

#include <time.h>

#include <random>

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "nhiguard/v1/agent.grpc.pb.h"
#include "pki/collector_channel.h"
#include "pki/fleet_pki.h"
#include "pki/peer_certificate.h"
#include "reporter/backoff.h"
#include "reporter/wire_records.h"

namespace nhiguard::reporter {
namespace {

constexpr auto kWelcomeTimeout = std::chrono::seconds(10);
constexpr auto kReminderInterval = std::chrono::minutes(1);
// Reports per take from the outbox: small enough to notice acks and stop requests between writes.
constexpr size_t kBatchReports = 128;
// Commands waiting for the worker; a collector that sends more is answered by redelivery later.
constexpr size_t kMaxQueuedCommands = 1024;
// Used until the Welcome states the collector's limit.
constexpr uint32_t kDefaultMaxMessageBytes = 4u << 20;

int64_t now_wall_ns() {
  return static_cast<int64_t>(clock_ns(CLOCK_REALTIME));
}

std::string_view channel_state_name(grpc_connectivity_state state) {
  switch (state) {
    case GRPC_CHANNEL_IDLE:
      return "idle";
    case GRPC_CHANNEL_CONNECTING:
      return "connecting";
    case GRPC_CHANNEL_READY:
      return "ready";
    case GRPC_CHANNEL_TRANSIENT_FAILURE:
      return "transient failure";
    case GRPC_CHANNEL_SHUTDOWN:
      return "shut down";
  }
  return "unknown";
}

std::string describe(const grpc::Status& status) {
  return fmt::format("{} ({})", status.error_message(), static_cast<int>(status.error_code()));
}

// A report that cannot be sent as stored keeps its sequence: the collector gets an alert in its
// place, so the sequence stays gap-free and the loss is visible.
v1::Report replacement_alert(const StoredReport& row, const std::string& why) {
  v1::Report out;
  out.set_sequence(row.seq_end);
  out.set_created_at_unix_ns(row.stored_wall_ns);
  auto* alert = out.mutable_alert();
  alert->set_kind("unsendable_report");
  alert->set_message(fmt::format("report {} ({}) could not be sent: {}", row.seq, row.report.type, why));
  alert->set_count(row.seq_end - row.seq + 1);
  return out;
}

}  // namespace

struct CollectorLink::Session {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CollectorMessage>> stream;
  // Written by the reader thread, read by the session thread under the link's mutex.
  bool welcomed = false;
  v1::Welcome welcome;
  bool broken = false;
  std::string broken_why;
  std::atomic<uint64_t> acked_through = 0;
};

CollectorLink::CollectorLink(CollectorLinkOptions options, Outbox& outbox, CommandHandler& handler)
    : options_(std::move(options)), outbox_(outbox), handler_(handler) {}

CollectorLink::~CollectorLink() {
  stop();
}

void CollectorLink::start() {
  stopping_ = false;
  set_state("connecting");
  thread_ = std::thread([this] { run(); });
  command_thread_ = std::thread([this] { command_loop(); });
}

void CollectorLink::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (session_) session_->context.TryCancel();
  }
  wake_.notify_all();
  commands_ready_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (command_thread_.joinable()) command_thread_.join();
}

void CollectorLink::notify() {
  {
    std::lock_guard lock(mutex_);
    outbox_changed_ = true;
  }
  wake_.notify_all();
}

bool CollectorLink::await_first_answer(std::chrono::milliseconds limit) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, limit, [&] { return welcomed_once_ || attempts_finished_ > 0 || stopping_.load(); });
  return welcomed_once_;
}

void CollectorLink::set_state(std::string state, std::string error) {
  std::lock_guard lock(mutex_);
  state_ = std::move(state);
  if (!error.empty()) last_error_ = std::move(error);
}

nlohmann::json CollectorLink::status() {
  std::lock_guard lock(mutex_);
  nlohmann::json out = {
      {"address", options_.address},
      {"transport", options_.insecure ? "plaintext (insecure)" : "mtls"},
      {"state", state_},
      {"agent_id", agent_id_},
      {"last_error", last_error_},
      {"connected_since", connected_since_ns_ ? nlohmann::json(format_rfc3339_ns(connected_since_ns_)) : nullptr},
      {"consecutive_failures", consecutive_failures_},
      {"reports_sent", reports_sent_},
      {"acks", acks_},
      {"commands_executed", commands_executed_},
  };
  if (state_ == "waiting") {
    out["next_attempt_in_ms"] = std::max<int64_t>(0, (next_attempt_ns_ - now_wall_ns()) / 1'000'000);
  }
  return out;
}

void CollectorLink::run() {
  Backoff backoff(options_.initial_backoff, options_.max_backoff, std::random_device{}());
  auto last_reminder = std::chrono::steady_clock::now();
  while (!stopping_) {
    set_state("connecting");
    bool had_welcome = false;
    const std::string why = run_session();
    if (stopping_) break;
    {
      std::lock_guard lock(mutex_);
      had_welcome = connected_since_ns_ != 0;
      connected_since_ns_ = 0;
      ++attempts_finished_;
    }
    wake_.notify_all();
    if (had_welcome) backoff.reset();
    const auto delay = backoff.next();
    uint32_t failures = 0;
    {
      std::lock_guard lock(mutex_);
      failures = ++consecutive_failures_;
      next_attempt_ns_ = now_wall_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count();
    }
    const auto pending = outbox_.stats();
    const auto now = std::chrono::steady_clock::now();
    if (failures == 1) {
      spdlog::warn(
          "collector {}: {}; the agent keeps writing reports to its outbox {} ({} pending, through sequence "
          "{}) and retries in {}ms",
          options_.address, why, outbox_.path(), pending.last_seq - pending.acked_seq, pending.last_seq, delay.count());
      last_reminder = now;
    } else if (now - last_reminder >= kReminderInterval) {
      spdlog::warn("collector {} still unreachable after {} attempts (last: {}); {} report(s) pending in the outbox",
                   options_.address, failures, why, pending.last_seq - pending.acked_seq);
      last_reminder = now;
    } else {
      spdlog::debug("collector {}: attempt {} failed: {}; retrying in {}ms", options_.address, failures, why,
                    delay.count());
    }
    set_state("waiting", why);
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, delay, [&] { return stopping_.load(); });
  }
  set_state("stopped");
}

std::string CollectorLink::run_session() {
  pki::ChannelOptions channel_options;
  // A collector that vanished without closing the connection (power loss, partition) is noticed
  // within about 30 s instead of the kernel's TCP timeout.
  channel_options.keepalive_time = std::chrono::seconds(20);
  channel_options.keepalive_timeout = std::chrono::seconds(10);
  std::string agent_id;
  if (options_.insecure) {
    agent_id = options_.hostname;
  } else {
    // Read at every attempt: renewed certificates are used without restarting the agent.
    auto pki = pki::load_tls_material(options_.pki_dir, "agent");
    if (!pki) return fmt::format("collector.pki {}: {}", options_.pki_dir, pki.error().message);
    auto identity = pki::read_certificate_identity(pki->cert_pem);
    if (!identity) {
      return fmt::format("collector.pki {}/agent.pem: {}", pki::tls_material_dir(options_.pki_dir, "agent"),
                         identity.error().message);
    }
    channel_options.tls = std::move(*pki);
    agent_id = identity->common_name;  // the collector knows the agent by its certificate's CN
  }
  {
    std::lock_guard lock(mutex_);
    agent_id_ = agent_id;
  }
  auto channel = pki::collector_channel(options_.address, channel_options);

  // Wait for the connection in short slices so stop() is not held up by a dead address.
  const auto give_up = std::chrono::steady_clock::now() + options_.connect_timeout;
  bool connected = false;
  bool refused = false;  // the attempt already failed (refused, TLS handshake): no point waiting longer
  while (!stopping_ && !connected && !refused && std::chrono::steady_clock::now() < give_up) {
    connected = channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    refused = !connected && channel->GetState(false) == GRPC_CHANNEL_TRANSIENT_FAILURE;
  }
  if (stopping_) return "stopping";
  auto stub = v1::AgentService::NewStub(channel);
  if (refused) {
    // The channel only says "transient failure"; a fail-fast call says why (refused, TLS, ...).
    grpc::ClientContext probe;
    probe.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    auto stream = stub->Connect(&probe);
    stream->WritesDone();
    return "cannot connect: " + describe(stream->Finish());
  }
  if (!connected) {
    return fmt::format("cannot connect within {}ms (channel {})", options_.connect_timeout.count(),
                       channel_state_name(channel->GetState(false)));
  }

  Session session;
  session.stream = stub->Connect(&session.context);
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return "stopping";
    session_ = &session;
  }
  // Any certificate of the fleet CA passes the handshake: before anything is sent (the Hello names
  // the agent and its outbox), the server must prove it is the collector, not another agent's or an
  // operator's key under a name this address matches.
  std::string why;
  if (!options_.insecure) {
    auto auth = session.context.auth_context();
    if (auto role = pki::require_peer_role(auth.get(), pki::Role::collector, options_.address); !role) {
      why = fmt::format("refused the server, nothing was sent: {}", role.error().message);
      spdlog::error("collector {}: {}", options_.address, why);
    }
  }
  const auto outbox = outbox_.stats();
  v1::AgentMessage hello_message;
  auto* hello = hello_message.mutable_hello();
  hello->set_agent_id(agent_id);
  hello->set_hostname(options_.hostname);
  hello->set_agent_version(NHIGUARD_VERSION);
  hello->set_mode(mode_to_wire(handler_.current_mode()));
  hello->set_outbox_id(outbox.stream_id);
  hello->set_highest_sequence(outbox.last_seq);
  hello->set_lowest_pending_sequence(outbox.rows > 0 ? outbox.acked_seq + 1 : 0);
  hello->set_trust_domain(options_.trust_domain);
  hello->set_sent_at_unix_ns(now_wall_ns());

  std::thread reader;
  if (!why.empty()) {
    // Refused above: fall through to the teardown.
  } else if (!session.stream->Write(hello_message)) {
    why = "the stream closed before the Hello was sent";
  } else {
    reader = std::thread([this, &session] { read_loop(session); });
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, kWelcomeTimeout, [&] { return stopping_ || session.welcomed || session.broken; });
    if (!session.welcomed && !stopping_) why = session.broken ? session.broken_why : "no Welcome within 10s";
  }

  bool welcomed = false;
  v1::Welcome welcome;
  {
    std::lock_guard lock(mutex_);
    welcomed = session.welcomed && !stopping_;
    welcome = session.welcome;
  }
  if (welcomed) {
    if (auto acked = outbox_.acknowledge(welcome.acked_through_sequence()); !acked) {
      spdlog::error("collector {} says it holds outbox {} through sequence {}: {}; sending from sequence {} anyway",
                    options_.address, outbox.stream_id, welcome.acked_through_sequence(), acked.error().message,
                    outbox.acked_seq + 1);
    } else if (welcome.acked_through_sequence() < outbox.acked_seq) {
      spdlog::warn(
          "collector {} holds outbox {} only through sequence {}, but an earlier acknowledgement already "
          "deleted reports through {} here: those cannot be sent again",
          options_.address, outbox.stream_id, welcome.acked_through_sequence(), outbox.acked_seq);
    }
    handler_.apply_required_mode(mode_from_wire(welcome.required_mode()));
    const auto resumed = outbox_.stats();
    session.acked_through = resumed.acked_seq;
    {
      std::lock_guard lock(mutex_);
      connected_since_ns_ = now_wall_ns();
      consecutive_failures_ = 0;
      state_ = "connected";
      last_error_.clear();
      outbox_changed_ = true;
      welcomed_once_ = true;
    }
    wake_.notify_all();
    spdlog::info("collector {} connected as agent {} ({}); {} report(s) pending, sending from sequence {}",
                 options_.address, welcome.agent_id().empty() ? agent_id : welcome.agent_id(),
                 options_.insecure ? "plaintext" : "mTLS", resumed.last_seq - resumed.acked_seq, resumed.acked_seq + 1);

    const uint32_t max_message =
        welcome.max_message_bytes() > 0 ? welcome.max_message_bytes() : kDefaultMaxMessageBytes;
    uint64_t sent_through = resumed.acked_seq;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || session.broken || outbox_changed_; });
        if (stopping_) break;
        if (session.broken) {
          why = session.broken_why;
          break;
        }
        outbox_changed_ = false;
      }
      const uint64_t in_flight = sent_through - std::min(sent_through, session.acked_through.load());
      if (in_flight >= options_.window_reports) continue;  // an ack will wake us
      const size_t count = std::min(kBatchReports, options_.window_reports - static_cast<size_t>(in_flight));
      auto rows = outbox_.take_for_send(sent_through, count, options_.window_bytes);
      if (!rows) {
        why = "outbox: " + rows.error().message;
        break;
      }
      bool write_failed = false;
      for (const auto& row : *rows) {
        auto wire = to_wire(row);
        v1::AgentMessage message;
        if (!wire) {
          spdlog::error("{}; the collector gets an alert in its place", wire.error().message);
          *message.mutable_report() = replacement_alert(row, wire.error().message);
        } else {
          *message.mutable_report() = std::move(*wire);
          if (message.ByteSizeLong() + 64 > max_message) {
            spdlog::error(
                "report {} ({}) is {} bytes, over the collector's limit of {}; the collector gets an alert "
                "in its place",
                row.seq, row.report.type, message.ByteSizeLong(), max_message);
            *message.mutable_report() = replacement_alert(
                row, fmt::format("{} bytes, over the collector's limit of {}", message.ByteSizeLong(), max_message));
          }
        }
        if (!session.stream->Write(message)) {
          write_failed = true;
          break;
        }
        sent_through = row.seq_end;
        std::lock_guard lock(mutex_);
        ++reports_sent_;
      }
      if (write_failed) {
        why = "the stream broke while sending";
        break;
      }
      if (rows->size() == count) {
        std::lock_guard lock(mutex_);
        outbox_changed_ = true;  // there may be more
      }
    }
  }

  session.context.TryCancel();
  if (reader.joinable()) reader.join();
  const grpc::Status status = session.stream->Finish();
  {
    std::lock_guard lock(mutex_);
    session_ = nullptr;
  }
  outbox_.release_in_flight();
  if (stopping_) return "stopping";
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    why = why.empty() ? describe(status) : fmt::format("{}: {}", why, describe(status));
  }
  return why.empty() ? "the collector closed the stream" : why;
}

void CollectorLink::read_loop(Session& session) {
  v1::CollectorMessage message;
  std::string why = "the collector closed the stream";
  while (session.stream->Read(&message)) {
    switch (message.body_case()) {
      case v1::CollectorMessage::kWelcome: {
        std::lock_guard lock(mutex_);
        if (session.welcomed) {
          spdlog::warn("collector {} sent a second Welcome; ignored", options_.address);
          break;
        }
        session.welcome = message.welcome();
        session.welcomed = true;
        break;
      }
      case v1::CollectorMessage::kAck: {
        const uint64_t through = message.ack().acked_through_sequence();
        if (auto acked = outbox_.acknowledge(through); !acked) {
          spdlog::error("collector {} acknowledgement: {}", options_.address, acked.error().message);
          break;
        }
        if (through > session.acked_through) session.acked_through = through;
        std::lock_guard lock(mutex_);
        ++acks_;
        outbox_changed_ = true;
        std::erase_if(command_result_seq_, [&](const auto& entry) { return entry.second <= through; });
        break;
      }
      case v1::CollectorMessage::kCommand: {
        std::lock_guard lock(mutex_);
        if (commands_.size() >= kMaxQueuedCommands) {
          // The collector delivers a command again until its result is stored: nothing is lost.
          spdlog::warn("collector {}: {} commands already wait here; command {} is left for redelivery",
                       options_.address, commands_.size(), message.command().command_id());
          break;
        }
        commands_.push_back(message.command());
        commands_ready_.notify_one();
        break;
      }
      default:
        spdlog::warn("collector {} sent a message this agent does not know (field {}); ignored", options_.address,
                     static_cast<int>(message.body_case()));
    }
    wake_.notify_all();
  }
  {
    std::lock_guard lock(mutex_);
    session.broken = true;
    session.broken_why = why;
  }
  wake_.notify_all();
}

void CollectorLink::command_loop() {
  for (;;) {
    v1::Command command;
    {
      std::unique_lock lock(mutex_);
      commands_ready_.wait(lock, [&] { return stopping_ || !commands_.empty(); });
      if (stopping_) return;
      command = std::move(commands_.front());
      commands_.pop_front();
      if (command_result_seq_.contains(command.command_id())) {
        spdlog::debug("collector command {} delivered again; its result (sequence {}) is already in the outbox",
                      command.command_id(), command_result_seq_.at(command.command_id()));
        continue;
      }
    }
    v1::CommandResult result = handler_.execute(command);
    result.set_command_id(command.command_id());
    if (result.completed_at_unix_ns() == 0) result.set_completed_at_unix_ns(now_wall_ns());
    const Report report = command_result_report(result);
    auto appended = outbox_.append(std::span<const Report>(&report, 1));
    if (!appended) {
      // The collector delivers the command again until a result arrives; the handler is idempotent.
      spdlog::error(
          "collector command {}: result not stored in the outbox: {}; the collector will deliver the "
          "command again",
          command.command_id(), appended.error().message);
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      command_result_seq_[command.command_id()] = appended->last;
      ++commands_executed_;
    }
    notify();
  }
}

}  // namespace nhiguard::reporter
