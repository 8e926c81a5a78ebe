#include "server/agent_streams.h"

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

void AgentStream::cancel() {
  std::lock_guard lock(mutex_);
  if (context_ != nullptr) context_->TryCancel();
}

void AgentStream::detach() {
  std::lock_guard lock(mutex_);
  context_ = nullptr;
}

uint64_t AgentStream::last_acked() const {
  std::lock_guard lock(mutex_);
  return ack_pending_ != 0 ? ack_pending_ : ack_sent_;
}

void AgentStreams::add(const std::shared_ptr<AgentStream>& stream) {
  std::shared_ptr<AgentStream> older;
  {
    std::lock_guard lock(mutex_);
    auto& slot = by_agent_[stream->agent_id()];
    older = std::move(slot);
    slot = stream;
  }
  if (older) older->cancel();
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
    if (it == by_agent_.end()) return false;
    stream = it->second;
  }
  stream->push_command(command);
  return true;
}

void AgentStreams::cancel_all() {
  std::lock_guard lock(mutex_);
  for (auto& [id, stream] : by_agent_) stream->cancel();
}

size_t AgentStreams::size() const {
  std::lock_guard lock(mutex_);
  return by_agent_.size();
}

}  // namespace nhiguard::collector
