// Group commit for every agent's reports: streams submit validated reports; one writer thread
// stores whatever has queued up (from all agents) in one transaction, then pushes each stream its
// new cumulative ack and wakes operators waiting for command results. One fsync thus covers many
// reports, and nothing is acked before its transaction committed.
//
// Backpressure: submit() blocks while `max_queued` reports or `max_queued_bytes` wait (a report
// counts twice its size: the bytes kept whole and the parsed copy), so fast or large-message agents
// slow down instead of growing the collector's memory; nothing is refused or lost, and a report is
// always accepted into an empty queue. The first wait in a minute is logged.
//
// A failed transaction acks nothing. One agent's records must not cost the others theirs: the batch
// is then stored again agent by agent; the agents whose records now commit are acked, and only the
// streams of an agent whose own records fail are cancelled (it reconnects and resends; ingest is
// idempotent), with the error logged. A storage failure that hits everyone cancels everyone.
//
// Thread-safety: submit() from any number of stream threads; stop() once, from the owner.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ingest/ingest_stream.h"
#include "store/ingest_store.h"

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
    size_t max_queued_bytes = 64u << 20;
    size_t max_batch = 4096;
  };

  IngestPipeline(IngestStore& store, CommandWaiters& waiters, Options options);
  ~IngestPipeline();

  // Queues `record` from `stream`; blocks while the queue is full. False once stopped.
  bool submit(IngestRecord record, std::shared_ptr<IngestStream> stream);
  // Stores what is queued, then ends the writer thread.
  void stop();

  struct Stats {
    uint64_t stored = 0;
    uint64_t duplicates = 0;
    uint64_t batches = 0;
    uint64_t failed_batches = 0;  // batches that did not commit whole (then stored agent by agent)
    uint64_t refused_agents = 0;  // agents whose own records failed, streams cancelled
    uint64_t queued_bytes = 0;    // now
    uint64_t max_queued_bytes_seen = 0;
    uint64_t waits = 0;  // submit() calls that waited for room
  };
  Stats stats() const;

 private:
  struct Item {
    IngestRecord record;
    std::shared_ptr<IngestStream> stream;
    size_t bytes = 0;
  };
  void run();
  // Stores `batch`; on failure, agent by agent (see the header comment).
  void store_batch(std::vector<Item>& batch);
  void acknowledge(const StoreOutcome& outcome, const std::vector<Item*>& items);

  IngestStore& store_;
  CommandWaiters& waiters_;
  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<Item> queue_;
  size_t queued_bytes_ = 0;
  std::chrono::steady_clock::time_point last_wait_logged_{};
  bool stopping_ = false;
  Stats stats_;
  std::thread writer_;
};

}  // namespace nhiguard::collector
