// Durations as written by people in agent.yaml, policy files and on the nhiguardctl command line:
// "90s", "15m", "2h", "1h30m", "500ms", "1d".
//
// A duration is one or more <digits><unit> groups, units ms, s, m, h, d (d = 24h), no spaces, no
// sign, no fractions. A bare number is rejected rather than guessed at: "30" could mean seconds or
// minutes, and a TTL off by 60x is the kind of mistake containment must not make.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard::config {

Result<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest text parse_duration reads back to the same value: 5400000ms -> "1h30m", 0 -> "0s".
std::string format_duration(std::chrono::milliseconds duration);

}  // namespace nhiguard::config
