#include "ingest/ingest_pipeline.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include <fmt/format.h>
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

IngestPipeline::IngestPipeline(IngestStore& store, CommandWaiters& waiters, Options options)
    : store_(store), waiters_(waiters), options_(options), writer_([this] { run(); }) {}

IngestPipeline::~IngestPipeline() {
  stop();
}

bool IngestPipeline::submit(IngestRecord record, std::shared_ptr<IngestStream> stream) {
  const size_t bytes = 2 * record.raw.size() + 256;
  std::unique_lock lock(mutex_);
  auto has_room = [&] {
    return queue_.empty() ||
           (queue_.size() < options_.max_queued && queued_bytes_ + bytes <= options_.max_queued_bytes);
  };
  if (!stopping_ && !has_room()) {
    ++stats_.waits;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_wait_logged_ >= std::chrono::minutes(1)) {
      last_wait_logged_ = now;
      spdlog::warn(
          "ingest queue full ({} reports, {} bytes; limits {} reports, {} bytes): agent {} waits until the "
          "store catches up (back-pressure, nothing is refused)",
          queue_.size(), queued_bytes_, options_.max_queued, options_.max_queued_bytes, record.agent_id);
    }
  }
  not_full_.wait(lock, [&] { return stopping_ || has_room(); });
  if (stopping_) return false;
  queued_bytes_ += bytes;
  stats_.max_queued_bytes_seen = std::max<uint64_t>(stats_.max_queued_bytes_seen, queued_bytes_);
  queue_.push_back({std::move(record), std::move(stream), bytes});
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
  Stats out = stats_;
  out.queued_bytes = queued_bytes_;
  return out;
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
        queued_bytes_ -= queue_.front().bytes;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    not_full_.notify_all();
    store_batch(batch);
  }
}

void IngestPipeline::acknowledge(const StoreOutcome& outcome, const std::vector<Item*>& items) {
  std::map<std::pair<std::string, std::string>, uint64_t> acks;
  for (const auto& ack : outcome.acks) acks[{ack.agent_id, ack.outbox_id}] = ack.acked_through;
  std::set<std::shared_ptr<IngestStream>> streams;
  for (const Item* item : items) streams.insert(item->stream);
  for (const auto& stream : streams) {
    auto it = acks.find({stream->agent_id(), stream->outbox_id()});
    if (it != acks.end()) stream->push_ack(it->second);
  }
  if (!outcome.completed_commands.empty()) waiters_.notify();
  std::lock_guard lock(mutex_);
  stats_.stored += outcome.stored;
  stats_.duplicates += outcome.duplicates;
}

void IngestPipeline::store_batch(std::vector<Item>& batch) {
  std::vector<IngestRecord> records;
  records.reserve(batch.size());
  for (auto& item : batch) records.push_back(std::move(item.record));
  auto outcome = store_.store_reports(records);
  std::vector<Item*> all;
  for (auto& item : batch) all.push_back(&item);
  if (outcome) {
    acknowledge(*outcome, all);
    std::lock_guard lock(mutex_);
    ++stats_.batches;
    return;
  }

  // Agent by agent, each agent's records in the order they came.
  std::map<std::string, std::vector<size_t>> by_agent;
  for (size_t i = 0; i < records.size(); ++i) by_agent[records[i].agent_id].push_back(i);
  spdlog::warn("ingest: a batch of {} report(s) from {} agent(s) did not commit ({}); storing it agent by agent",
               records.size(), by_agent.size(), outcome.error().message);
  size_t refused = 0;
  for (const auto& [agent_id, indexes] : by_agent) {
    std::vector<IngestRecord> own;
    std::vector<Item*> items;
    own.reserve(indexes.size());
    for (size_t i : indexes) {
      own.push_back(std::move(records[i]));
      items.push_back(&batch[i]);
    }
    auto stored = store_.store_reports(own);
    if (stored) {
      acknowledge(*stored, items);
      continue;
    }
    ++refused;
    std::set<std::shared_ptr<IngestStream>> streams;
    for (const Item* item : items) streams.insert(item->stream);
    spdlog::error(
        "ingest: agent {}: {}; none of its {} report(s) in this batch is acked, its stream is closed so it "
        "resends (other agents are not affected)",
        agent_id, stored.error().message, own.size());
    for (const auto& stream : streams)
      stream->cancel(fmt::format("its reports could not be stored: {}", stored.error().message));
  }
  std::lock_guard lock(mutex_);
  ++stats_.batches;
  ++stats_.failed_batches;
  stats_.refused_agents += refused;
}

}  // namespace nhiguard::collector
