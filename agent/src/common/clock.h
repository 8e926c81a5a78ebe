// Clocks and time formats. The kernel stamps CLOCK_BOOTTIME; people and reports read CLOCK_REALTIME.
#pragma once

#include <time.h>

#include <cstdint>
#include <string>

namespace nhiguard {

// The clock's current value in nanoseconds.
uint64_t clock_ns(clockid_t clock);

// A CLOCK_BOOTTIME instant (from the kernel) on the wall clock, as of now.
uint64_t boot_to_wall_ns(uint64_t boot_ns);

// RFC 3339 UTC with nanoseconds: "2026-11-22T07:53:01.123456789Z".
std::string format_rfc3339_ns(uint64_t wall_time_ns);

}  // namespace nhiguard
