#include "policy/rate_limiter.h"

namespace nhiguard::policy {

void ActionRateLimiter::record(TimePoint at) {
  std::lock_guard lock(mutex_);
  taken_.push_back(at);
}

size_t ActionRateLimiter::recent(TimePoint now, std::chrono::milliseconds window) {
  std::lock_guard lock(mutex_);
  while (!taken_.empty() && taken_.front() <= now - window) taken_.pop_front();
  return taken_.size();
}

}  // namespace nhiguard::policy
