// EnumNames: one table names an enum both ways; a value outside it gets the fallback, a text
// outside it no value, and the list keeps the table's order (the "one of: ..." of error messages).
#include <gtest/gtest.h>

#include "common/enum_names.h"

namespace nhiguard {
namespace {

enum class Colour : uint8_t { red = 1, green = 2, blue = 7 };

constexpr auto kColours = enum_names<Colour>({{Colour::red, "red"}, {Colour::green, "green"}, {Colour::blue, "blue"}});

// Usable at compile time, as the tables are constant data.
static_assert(kColours.name(Colour::green) == "green");
static_assert(kColours.parse("blue") == Colour::blue);
static_assert(kColours.entries().size() == 3);

TEST(EnumNames, NamesBothWays) {
  for (const auto& entry : kColours.entries()) {
    EXPECT_EQ(kColours.name(entry.value), entry.name);
    EXPECT_EQ(kColours.parse(entry.name), entry.value);
  }
}

TEST(EnumNames, UnknownValuesAndTexts) {
  EXPECT_EQ(kColours.name(static_cast<Colour>(3)), "unknown");
  EXPECT_EQ(kColours.name(static_cast<Colour>(3), "internal"), "internal");
  EXPECT_EQ(kColours.parse("Red"), std::nullopt) << "exact, case-sensitive";
  EXPECT_EQ(kColours.parse(""), std::nullopt);
  EXPECT_EQ(kColours.parse("red "), std::nullopt);
}

TEST(EnumNames, ListsInTableOrder) {
  EXPECT_EQ(kColours.list(), "red, green, blue");
  EXPECT_EQ(kColours.list("|"), "red|green|blue");
}

}  // namespace
}  // namespace nhiguard
