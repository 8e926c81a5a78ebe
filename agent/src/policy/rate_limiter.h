// ActionRateLimiter: the per-host circuit breaker of automated containment. The daemon records
// every containment the policy takes (not a person's approval, not a dry run) and asks how many
// happened within the policy's window before the next decision; at the limit the engine turns a
// contain into hold + alert (DecisionEngine, gate rate_limit).
//
// Times are steady-clock instants passed in by the caller, so tests need no clock.
// Thread-safety: internally locked.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>

namespace nhiguard::policy {

class ActionRateLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  void record(TimePoint at);
  // Containments recorded in (now - window, now]; older ones are forgotten.
  size_t recent(TimePoint now, std::chrono::milliseconds window);

 private:
  std::mutex mutex_;
  std::deque<TimePoint> taken_;
};

}  // namespace nhiguard::policy
