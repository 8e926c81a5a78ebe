#include "config/duration.h"

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

#include <fmt/format.h>

namespace nhiguard::config {
namespace {

struct Unit {
  std::string_view suffix;
  int64_t millis;
};

// Longest suffix first so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 5> kUnits{{
    {"ms", 1},
    {"d", 24LL * 3600 * 1000},
    {"h", 3600LL * 1000},
    {"m", 60LL * 1000},
    {"s", 1000},
}};

Error invalid(std::string_view text, std::string_view why) {
  return Error{EINVAL, fmt::format("invalid duration \"{}\": {}", text, why)};
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return fail(invalid(text, "empty (write e.g. \"30s\", \"15m\" or \"2h\")"));
  int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') {
      return fail(invalid(text, fmt::format("expected a number at \"{}\"", text.substr(i))));
    }
    int64_t value = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (value > (std::numeric_limits<int64_t>::max() - 9) / 10) return fail(invalid(text, "too large"));
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    if (i == text.size()) {
      return fail(invalid(text, fmt::format("missing unit after {} (write e.g. \"{}s\", \"{}m\" or \"{}h\"; "
                                            "units: ms, s, m, h, d)",
                                            value, value, value, value)));
    }
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (text.substr(i).starts_with(candidate.suffix)) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) {
      return fail(invalid(text, fmt::format("unknown unit at \"{}\" (units: ms, s, m, h, d)", text.substr(i))));
    }
    i += unit->suffix.size();
    if (value > (std::numeric_limits<int64_t>::max() - total) / unit->millis) return fail(invalid(text, "too large"));
    total += value * unit->millis;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds duration) {
  int64_t rest = duration.count();
  if (rest == 0) return "0s";
  std::string out;
  if (rest < 0) {
    out += '-';  // not parseable, but never silently wrong when printing
    rest = -rest;
  }
  for (const Unit& unit : {kUnits[1], kUnits[2], kUnits[3], kUnits[4], kUnits[0]}) {
    if (rest >= unit.millis) {
      out += fmt::format("{}{}", rest / unit.millis, unit.suffix);
      rest %= unit.millis;
    }
  }
  return out;
}

}  // namespace nhiguard::config
