#include "server/report_rate_limiter.h"

#include <algorithm>
#include <iterator>

namespace nhiguard::collector {
namespace {

// With --insecure agent ids are whatever hellos say: buckets that refilled completely are dropped
// beyond this many, so made-up ids cannot grow the map without bound.
constexpr size_t kMaxIdleBuckets = 4096;

}  // namespace

void ReportRateLimiter::refill(Bucket& bucket, Clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - bucket.refilled).count();
  if (elapsed > 0) {
    bucket.tokens =
        std::min<double>(std::max<uint32_t>(limit_.burst, 1), bucket.tokens + elapsed * limit_.reports_per_second);
    bucket.refilled = now;
  }
}

bool ReportRateLimiter::admit(const std::string& agent_id, Clock::time_point now) {
  if (limit_.reports_per_second == 0) return true;
  std::lock_guard lock(mutex_);
  auto [it, inserted] = buckets_.try_emplace(agent_id);
  Bucket& bucket = it->second;
  if (inserted) {
    bucket.tokens = std::max<uint32_t>(limit_.burst, 1);
    bucket.refilled = now;
    if (buckets_.size() > kMaxIdleBuckets) {
      for (auto idle = buckets_.begin(); idle != buckets_.end();) {
        refill(idle->second, now);
        const bool full = idle->first != agent_id && idle->second.tokens >= std::max<uint32_t>(limit_.burst, 1);
        idle = full ? buckets_.erase(idle) : std::next(idle);
      }
    }
  }
  refill(bucket, now);
  if (bucket.tokens < 1) return false;
  bucket.tokens -= 1;
  return true;
}

}  // namespace nhiguard::collector
