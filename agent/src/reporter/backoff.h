// Backoff: the delays between reconnection attempts to the collector.
//
// Exponential with full jitter: the n-th consecutive failure waits a uniformly random time in
// [ceiling/2, ceiling], where ceiling = min(initial * 2^n, max). The random half keeps a fleet of
// agents that lost the collector at the same moment from reconnecting in lockstep; the lower half
// bound keeps one agent from hammering a collector that just refused it. reset() after a
// connection that worked starts again from `initial`.
//
// Pure apart from its random source (a seeded std::mt19937_64), so tests pin the sequence.
// Thread-safety: none; the reporter thread owns its Backoff.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace nhiguard::reporter {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t seed)
      : initial_(initial), max_(max), random_(seed) {}

  // The delay before the next attempt; each call counts one more consecutive failure.
  std::chrono::milliseconds next() {
    const auto ceiling = ceiling_for(failures_);
    if (failures_ < 62) ++failures_;
    std::uniform_int_distribution<int64_t> pick(ceiling.count() / 2, ceiling.count());
    return std::chrono::milliseconds(pick(random_));
  }

  void reset() { failures_ = 0; }
  uint32_t failures() const { return failures_; }

  // min(initial * 2^n, max), without overflow for any n.
  std::chrono::milliseconds ceiling_for(uint32_t n) const {
    auto ceiling = initial_;
    for (uint32_t i = 0; i < n && ceiling < max_; ++i) ceiling *= 2;
    return ceiling < max_ ? ceiling : max_;
  }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::mt19937_64 random_;
  uint32_t failures_ = 0;
};

}  // namespace nhiguard::reporter
