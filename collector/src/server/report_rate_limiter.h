// A per-agent report rate limit: a token bucket per agent id, `reports_per_second` sustained with
// bursts of up to `burst` reports. The bucket belongs to the agent id, not to a stream, so a
// reconnect does not refill it. An agent over its rate has its stream refused with
// RESOURCE_EXHAUSTED ("rate limit ..."); it backs off, reconnects and resends (nothing acked is lost).
// reports_per_second = 0 turns the limit off.
//
// Thread-safety: admit() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace nhiguard::collector {

struct ReportRateLimit {
  uint32_t reports_per_second = 2000;
  uint32_t burst = 20000;
};

class ReportRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ReportRateLimiter(ReportRateLimit limit) : limit_(limit) {}

  // Takes one report of `agent_id` at `now`: false when the agent is over its rate.
  bool admit(const std::string& agent_id, Clock::time_point now);
  const ReportRateLimit& limit() const { return limit_; }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled;
  };
  void refill(Bucket& bucket, Clock::time_point now) const;

  const ReportRateLimit limit_;
  std::mutex mutex_;
  std::map<std::string, Bucket> buckets_;
};

}  // namespace nhiguard::collector
