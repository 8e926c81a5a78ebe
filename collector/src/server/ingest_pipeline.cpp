#include "server/ingest_pipeline.h"

#include <map>
#include <set>
#include <vector>

#include <spdlog/spdlog.h>

namespace nhiguard::collector {

void CommandWaiters::notify() {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
  }
  changed_.notify_all();
}

uint64_t CommandWaiters::wait(uint64_t seen, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return generation_ != seen; });
  return generation_;
}

uint64_t CommandWaiters::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

IngestPipeline::IngestPipeline(ReportStore& store, CommandWaiters& waiters, Options options)
    : store_(store), waiters_(waiters), options_(options), writer_([this] { run(); }) {}

IngestPipeline::~IngestPipeline() { stop(); }

bool IngestPipeline::submit(IngestRecord record, std::shared_ptr<AgentStream> stream) {
  std::unique_lock lock(mutex_);
  not_full_.wait(lock, [&] { return stopping_ || queue_.size() < options_.max_queued; });
  if (stopping_) return false;
  queue_.push_back({std::move(record), std::move(stream)});
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

void IngestPipeline::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  not_empty_.notify_all();
  not_full_.notify_all();
  if (writer_.joinable()) writer_.join();
}

IngestPipeline::Stats IngestPipeline::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void IngestPipeline::run() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock lock(mutex_);
      not_empty_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    not_full_.notify_all();

    std::vector<IngestRecord> records;
    records.reserve(batch.size());
    for (auto& item : batch) records.push_back(std::move(item.record));
    auto outcome = store_.store_reports(records);

    std::set<std::shared_ptr<AgentStream>> streams;
    for (auto& item : batch) streams.insert(item.stream);
    if (!outcome) {
      spdlog::error("ingest: {}; nothing of this batch is acked, closing the {} stream(s) it came from so the "
                    "agents resend",
                    outcome.error().message, streams.size());
      for (const auto& stream : streams) stream->cancel();
      std::lock_guard lock(mutex_);
      ++stats_.failed_batches;
      continue;
    }
    std::map<std::pair<std::string, std::string>, uint64_t> acks;
    for (const auto& ack : outcome->acks) acks[{ack.agent_id, ack.outbox_id}] = ack.acked_through;
    for (const auto& stream : streams) {
      auto it = acks.find({stream->agent_id(), stream->outbox_id()});
      if (it != acks.end()) stream->push_ack(it->second);
    }
    if (!outcome->completed_commands.empty()) waiters_.notify();
    std::lock_guard lock(mutex_);
    stats_.stored += outcome->stored;
    stats_.duplicates += outcome->duplicates;
    ++stats_.batches;
  }
}

}  // namespace nhiguard::collector
