// Group commit for every agent's reports: streams submit validated reports; one writer thread
// stores whatever has queued up (from all agents) in one transaction, then pushes each stream its
// new cumulative ack and wakes operators waiting for command results. One fsync thus covers many
// reports, and nothing is acked before its transaction committed.
//
// Backpressure: submit() blocks while `max_queued` reports wait, so a fast agent slows down
// instead of growing the collector's memory. A failed transaction acks nothing: the streams of that
// batch are cancelled (the agents reconnect and resend; ingest is idempotent) and the error logged.
//
// Thread-safety: submit() from any number of stream threads; stop() once, from the owner.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "server/agent_streams.h"
#include "store/report_store.h"

namespace nhiguard::collector {

// Operators waiting for a command's result (OperatorService with wait_ms): woken after every batch
// that completed a command.
class CommandWaiters {
 public:
  void notify();
  // Waits until notify() was called after `seen` or `deadline` passed; returns the new generation.
  uint64_t wait(uint64_t seen, std::chrono::steady_clock::time_point deadline);
  uint64_t generation() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t generation_ = 0;
};

class IngestPipeline {
 public:
  struct Options {
    size_t max_queued = 16384;
    size_t max_batch = 4096;
  };

  IngestPipeline(ReportStore& store, CommandWaiters& waiters, Options options);
  ~IngestPipeline();

  // Queues `record` from `stream`; blocks while the queue is full. False once stopped.
  bool submit(IngestRecord record, std::shared_ptr<AgentStream> stream);
  // Stores what is queued, then ends the writer thread.
  void stop();

  struct Stats {
    uint64_t stored = 0;
    uint64_t duplicates = 0;
    uint64_t batches = 0;
    uint64_t failed_batches = 0;
  };
  Stats stats() const;

 private:
  struct Item {
    IngestRecord record;
    std::shared_ptr<AgentStream> stream;
  };
  void run();

  ReportStore& store_;
  CommandWaiters& waiters_;
  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Item> queue_;
  bool stopping_ = false;
  Stats stats_;
  std::thread writer_;
};

}  // namespace nhiguard::collector
