// EnumNames: an enum's text forms, one table for both directions, so to_string and parse can
// never disagree and a new value is named in one place.
//
//   constexpr auto kModes = enum_names<RuleMode>({{RuleMode::observe, "observe"}, {RuleMode::alert, "alert"}});
//   kModes.name(RuleMode::alert)  -> "alert"       (a value not in the table -> the fallback)
//   kModes.parse("alert")         -> RuleMode::alert  (exact, case-sensitive; anything else -> nullopt)
//   kModes.list()                 -> "observe, alert"  (table order; for "one of: ..." messages)
//
// A linear search: the tables are a handful of entries, and the names stay in declaration order.
// Thread-safety: immutable after construction; constexpr tables are constant data.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace nhiguard {

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

template <typename E, std::size_t N>
class EnumNames {
 public:
  constexpr explicit EnumNames(const std::array<EnumName<E>, N>& entries) : entries_(entries) {}

  // The value's name; `fallback` for a value the table does not hold (a newer or damaged value).
  constexpr std::string_view name(E value, std::string_view fallback = "unknown") const {
    for (const auto& entry : entries_) {
      if (entry.value == value) return entry.name;
    }
    return fallback;
  }

  constexpr std::optional<E> parse(std::string_view text) const {
    for (const auto& entry : entries_) {
      if (entry.name == text) return entry.value;
    }
    return std::nullopt;
  }

  // Every name in table order, joined by `separator`.
  std::string list(std::string_view separator = ", ") const {
    std::string out;
    for (const auto& entry : entries_) {
      if (!out.empty()) out += separator;
      out += entry.name;
    }
    return out;
  }

  constexpr const std::array<EnumName<E>, N>& entries() const { return entries_; }

 private:
  std::array<EnumName<E>, N> entries_;
};

// E is named, N is counted: enum_names<Impact>({{Impact::low, "low"}, ...}).
template <typename E, std::size_t N>
constexpr EnumNames<E, N> enum_names(const EnumName<E> (&entries)[N]) {
  std::array<EnumName<E>, N> table{};
  for (std::size_t i = 0; i < N; ++i) table[i] = entries[i];
  return EnumNames<E, N>(table);
}

}  // namespace nhiguard
