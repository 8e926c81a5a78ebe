#include "server/agent_streams.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

namespace nhiguard::collector {

void AgentStream::push_ack(uint64_t acked_through) {
  {
    std::lock_guard lock(mutex_);
    if (acked_through <= ack_sent_ || acked_through <= ack_pending_) return;
    ack_pending_ = acked_through;
  }
  wake_.notify_one();
}

void AgentStream::push_command(v1::Command command) {
  {
    std::lock_guard lock(mutex_);
    if (!pushed_commands_.insert(command.command_id()).second) return;
    commands_.push_back(std::move(command));
  }
  wake_.notify_one();
}

std::optional<v1::CollectorMessage> AgentStream::next() {
  std::unique_lock lock(mutex_);
  wake_.wait(lock, [&] { return closed_ || ack_pending_ != 0 || !commands_.empty(); });
  v1::CollectorMessage message;
  // Acks first: they let the agent free its outbox, and commands do not depend on them.
  if (ack_pending_ != 0) {
    message.mutable_ack()->set_acked_through_sequence(ack_pending_);
    ack_sent_ = ack_pending_;
    ack_pending_ = 0;
    return message;
  }
  if (!commands_.empty()) {
    *message.mutable_command() = std::move(commands_.front());
    commands_.pop_front();
    return message;
  }
  return std::nullopt;
}

void AgentStream::close(bool drain) {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (!drain) {
      ack_pending_ = 0;
      commands_.clear();
    }
  }
  wake_.notify_all();
}

void AgentStream::cancel(std::string reason) {
  std::lock_guard lock(mutex_);
  if (cancel_reason_.empty()) cancel_reason_ = std::move(reason);
  if (context_ != nullptr) context_->TryCancel();
}

std::string AgentStream::cancel_reason() const {
  std::lock_guard lock(mutex_);
  return cancel_reason_;
}

void AgentStream::detach() {
  std::lock_guard lock(mutex_);
  context_ = nullptr;
}

uint64_t AgentStream::last_acked() const {
  std::lock_guard lock(mutex_);
  return ack_pending_ != 0 ? ack_pending_ : ack_sent_;
}

bool AgentStreams::admit(const std::string& agent_id, size_t max_streams) {
  std::lock_guard lock(mutex_);
  if (by_agent_.contains(agent_id)) return true;
  if (by_agent_.size() >= max_streams) return false;
  by_agent_.emplace(agent_id, nullptr);
  return true;
}

void AgentStreams::release(const std::string& agent_id) {
  std::lock_guard lock(mutex_);
  auto it = by_agent_.find(agent_id);
  if (it != by_agent_.end() && it->second == nullptr) by_agent_.erase(it);
}

void AgentStreams::add(const std::shared_ptr<AgentStream>& stream) {
  std::shared_ptr<AgentStream> older;
  {
    std::lock_guard lock(mutex_);
    auto& slot = by_agent_[stream->agent_id()];
    older = std::move(slot);
    slot = stream;
  }
  if (older)
    older->cancel(fmt::format("replaced by a newer stream of agent {} from {}", stream->agent_id(), stream->peer()));
}

void AgentStreams::remove(const std::shared_ptr<AgentStream>& stream) {
  std::lock_guard lock(mutex_);
  auto it = by_agent_.find(stream->agent_id());
  if (it != by_agent_.end() && it->second == stream) by_agent_.erase(it);
}

bool AgentStreams::deliver(const std::string& agent_id, const v1::Command& command) {
  std::shared_ptr<AgentStream> stream;
  {
    std::lock_guard lock(mutex_);
    auto it = by_agent_.find(agent_id);
    if (it == by_agent_.end() || it->second == nullptr) return false;
    stream = it->second;
  }
  stream->push_command(command);
  return true;
}

void AgentStreams::cancel_all(const std::string& reason) {
  std::lock_guard lock(mutex_);
  for (auto& [id, stream] : by_agent_) {
    if (stream) stream->cancel(reason);
  }
}

std::vector<std::string> AgentStreams::agent_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [id, stream] : by_agent_) {
    if (stream) out.push_back(id);
  }
  return out;
}

size_t AgentStreams::size() const {
  std::lock_guard lock(mutex_);
  return by_agent_.size();
}

struct PendingHellos::Entry {
  std::function<void()> cancel;  // empty once left or cancelled
  std::string certified_id;
  std::chrono::steady_clock::time_point deadline;
  std::string cancelled_because;
};

PendingHellos::PendingHellos(std::chrono::milliseconds deadline, size_t max_pending)
    : deadline_(deadline), max_pending_(max_pending), watchdog_([this] { run(); }) {}

PendingHellos::~PendingHellos() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  watchdog_.join();
}

std::optional<PendingHellos::Ticket> PendingHellos::enter(const std::string& certified_id,
                                                          std::function<void()> cancel) {
  auto entry = std::make_shared<Entry>();
  entry->cancel = std::move(cancel);
  entry->certified_id = certified_id;
  entry->deadline = std::chrono::steady_clock::now() + deadline_;
  {
    std::lock_guard lock(mutex_);
    if (!certified_id.empty()) {
      for (auto& older : pending_) {
        if (older->certified_id != certified_id || !older->cancel) continue;
        older->cancelled_because = fmt::format("replaced by a newer stream of agent {} before its hello", certified_id);
        std::exchange(older->cancel, nullptr)();
      }
      std::erase_if(pending_, [](const Ticket& t) { return !t->cancel; });
    }
    if (pending_.size() >= max_pending_) return std::nullopt;
    pending_.push_back(entry);
  }
  wake_.notify_all();
  return entry;
}

std::string PendingHellos::leave(const Ticket& ticket) {
  std::lock_guard lock(mutex_);
  ticket->cancel = nullptr;
  std::erase(pending_, ticket);
  return ticket->cancelled_because;
}

size_t PendingHellos::size() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

void PendingHellos::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    auto next = now + std::chrono::hours(1);
    for (auto& entry : pending_) {
      if (!entry->cancel) continue;
      if (entry->deadline <= now) {
        entry->cancelled_because = fmt::format("no hello within {}s", deadline_.count() / 1000.0);
        std::exchange(entry->cancel, nullptr)();
      } else {
        next = std::min(next, entry->deadline);
      }
    }
    std::erase_if(pending_, [](const Ticket& t) { return !t->cancel; });
    wake_.wait_until(lock, next);
  }
}

}  // namespace nhiguard::collector
