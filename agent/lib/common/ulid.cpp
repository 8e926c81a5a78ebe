#include "common/ulid.h"

#include <sys/random.h>
#include <time.h>

#include <cerrno>
#include <random>

#include "common/clock.h"

namespace nhiguard {
namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr uint64_t kMaxTimeMs = (uint64_t{1} << 48) - 1;

int decode_char(char c) {
  const size_t at = kAlphabet.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// 80 bits from getrandom(2). Flags 0 reads the urandom pool and only blocks before it is first
// seeded at boot; requests of <= 256 bytes are never short once it is. std::random_device is a
// last resort for a kernel without the syscall: uniqueness within the process comes from the
// monotonic increment anyway, the randomness only separates processes and hosts.
void fill_random(uint16_t& hi, uint64_t& lo) {
  unsigned char bytes[10];
  ssize_t got;
  do {
    got = getrandom(bytes, sizeof bytes, 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof bytes)) {
    std::random_device device;
    for (auto& b : bytes) b = static_cast<unsigned char>(device());
  }
  hi = static_cast<uint16_t>(bytes[0] << 8 | bytes[1]);
  lo = 0;
  for (int i = 2; i < 10; ++i) lo = lo << 8 | bytes[i];
}

std::string encode(uint64_t time_ms, uint16_t random_hi, uint64_t random_lo) {
  // 128 bits as (hi 64, lo 64): time in the top 48 of hi, then the 80 random bits.
  const uint64_t hi = time_ms << 16 | random_hi;
  const uint64_t lo = random_lo;
  std::string out(kUlidLength, '0');
  // Character i holds bits [125 - 5i, 129 - 5i] of the 130-bit number (the top 2 are zero).
  for (size_t i = 0; i < kUlidLength; ++i) {
    const int shift = static_cast<int>(5 * (kUlidLength - 1 - i));  // low bit of this character
    uint64_t value;
    if (shift >= 64) {
      value = hi >> (shift - 64);
    } else if (shift + 5 <= 64) {
      value = lo >> shift;
    } else {  // straddles the two words
      value = lo >> shift | hi << (64 - shift);
    }
    out[i] = kAlphabet[value & 31];
  }
  return out;
}

UlidGenerator& process_generator() {
  static UlidGenerator generator;
  return generator;
}

}  // namespace

std::string UlidGenerator::next(uint64_t now_ms) {
  std::lock_guard lock(mutex_);
  now_ms = std::min(now_ms, kMaxTimeMs);
  if (!started_ || now_ms > last_ms_) {
    started_ = true;
    last_ms_ = now_ms;
    fill_random(random_hi_, random_lo_);
  } else if (++random_lo_ == 0 && ++random_hi_ == 0) {
    // All 80 bits overflowed (2^80 ids in one ms, or a pathological random start): the spec would
    // fail here; moving to the next millisecond keeps ids unique and ordered instead.
    ++last_ms_;
    fill_random(random_hi_, random_lo_);
  }
  return encode(last_ms_, random_hi_, random_lo_);
}

std::string new_ulid() {
  return process_generator().next(clock_ns(CLOCK_REALTIME) / 1'000'000);
}

std::string new_handle_id() {
  return std::string(kHandlePrefix) + new_ulid();
}

bool is_ulid(std::string_view text) {
  if (text.size() != kUlidLength || text[0] > '7') return false;
  for (char c : text) {
    if (decode_char(c) < 0) return false;
  }
  return true;
}

bool is_handle_id(std::string_view text) {
  return text.size() == kHandleIdLength && text.starts_with(kHandlePrefix) &&
         is_ulid(text.substr(kHandlePrefix.size()));
}

std::optional<uint64_t> ulid_time_ms(std::string_view text) {
  if (text.starts_with(kHandlePrefix)) text.remove_prefix(kHandlePrefix.size());
  if (!is_ulid(text)) return std::nullopt;
  // The first 10 characters are 50 bits whose top 2 are zero: exactly the 48-bit timestamp.
  uint64_t ms = 0;
  for (size_t i = 0; i < 10; ++i) ms = ms << 5 | static_cast<uint64_t>(decode_char(text[i]));
  return ms;
}

}  // namespace nhiguard
