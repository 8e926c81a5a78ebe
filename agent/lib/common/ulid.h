// ULIDs (https://github.com/ulid/spec) and the rollback-handle ids built on them.
//
// A ULID is 128 bits: a 48-bit Unix time in milliseconds, then 80 random bits (getrandom(2)),
// written as 26 characters of Crockford base32 (0-9 A-Z without I L O U), most significant first,
// so the text sorts like the number and handles created later sort after earlier ones.
//
// Invariants: every id a UlidGenerator returns is strictly greater than the one before it, even
// within one millisecond (the random part is incremented by one) and even if the wall clock steps
// back (the generator keeps its last timestamp until the clock passes it). Output is always the
// canonical upper-case form; the first character is 0-7 (26 x 5 bits = 130, the top 2 are zero).
//
// Thread-safety: UlidGenerator is internally locked; new_ulid() and new_handle_id() share one
// process-wide generator and may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace nhiguard {

inline constexpr size_t kUlidLength = 26;
inline constexpr std::string_view kHandlePrefix = "rb_";
inline constexpr size_t kHandleIdLength = kHandlePrefix.size() + kUlidLength;  // 29

class UlidGenerator {
 public:
  // The ULID for time `now_ms` (Unix ms), monotonic as described above. Taking the time as an
  // argument keeps the same-millisecond path testable without a fake clock.
  std::string next(uint64_t now_ms);

 private:
  std::mutex mutex_;
  uint64_t last_ms_ = 0;
  uint16_t random_hi_ = 0;  // top 16 of the 80 random bits
  uint64_t random_lo_ = 0;  // low 64
  bool started_ = false;
};

// A new ULID from the process-wide generator at the current CLOCK_REALTIME millisecond.
std::string new_ulid();

// "rb_" + a new ULID: the id of a rollback handle.
std::string new_handle_id();

// True for a canonical ULID: exactly 26 characters of upper-case Crockford base32, first one 0-7.
// Lower case and the excluded letters (I L O U) are rejected: ids are compared as text.
bool is_ulid(std::string_view text);

// True for "rb_" followed by a canonical ULID (see is_ulid), nothing before or after.
bool is_handle_id(std::string_view text);

// The millisecond timestamp of a canonical ULID (with or without the "rb_" prefix).
std::optional<uint64_t> ulid_time_ms(std::string_view text);

}  // namespace nhiguard
