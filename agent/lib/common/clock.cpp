#include "common/clock.h"

#include <fstream>

#include <fmt/format.h>

namespace nhiguard {

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t boot_to_wall_ns(uint64_t boot_ns) {
  return clock_ns(CLOCK_REALTIME) - (clock_ns(CLOCK_BOOTTIME) - boot_ns);
}

std::string format_rfc3339_ns(uint64_t wall_time_ns) {
  const time_t seconds = static_cast<time_t>(wall_time_ns / 1'000'000'000ull);
  tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
                     utc.tm_hour, utc.tm_min, utc.tm_sec, wall_time_ns % 1'000'000'000ull);
}

std::string read_boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

SystemClock::SystemClock() : boot_id_(read_boot_id()) {}

}  // namespace nhiguard
