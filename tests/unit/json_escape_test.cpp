// escape_bytes must make any byte string valid JSON text and be exactly reversible.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/json_escape.h"

namespace nhiguard {
namespace {

std::string roundtrip(std::string_view raw) {
  auto back = unescape_bytes(escape_bytes(raw));
  EXPECT_TRUE(back.has_value()) << (back ? "" : back.error().message);
  return back.value_or("<error>");
}

void expect_dumps(std::string_view raw) {
  nlohmann::json j;
  j["path"] = escape_bytes(raw);
  EXPECT_NO_THROW((void)j.dump()) << escape_bytes(raw);
  // And the JSON text parses back to the same escaped string.
  const auto parsed = nlohmann::json::parse(j.dump());
  EXPECT_EQ(parsed["path"].get<std::string>(), escape_bytes(raw));
}

TEST(JsonEscape, EverySingleByteRoundTripsAndDumps) {
  for (int b = 0; b < 256; ++b) {
    const std::string raw(1, static_cast<char>(b));
    EXPECT_EQ(roundtrip(raw), raw) << "byte " << b;
    expect_dumps(raw);
  }
}

TEST(JsonEscape, SingleBytesEncodeAsExpected) {
  EXPECT_EQ(escape_bytes("a"), "a");
  EXPECT_EQ(escape_bytes(std::string(1, '\0')), "\\x00");
  EXPECT_EQ(escape_bytes("\n"), "\\x0a");
  EXPECT_EQ(escape_bytes("\x1b"), "\\x1b");
  EXPECT_EQ(escape_bytes("\x7f"), "\\x7f");
  EXPECT_EQ(escape_bytes("\x80"), "\\x80");
  EXPECT_EQ(escape_bytes("\xff"), "\\xff");
  EXPECT_EQ(escape_bytes("\\"), "\\\\");
  EXPECT_EQ(escape_bytes("\""), "\"");
}

TEST(JsonEscape, ValidUtf8PassesThrough) {
  const std::string text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xef\xbf\xbf \xf4\x8f\xbf\xbf";
  EXPECT_EQ(escape_bytes(text), text);
  EXPECT_EQ(escape_bytes("\xc2\x80"), "\xc2\x80");  // C1 controls are valid UTF-8
}

TEST(JsonEscape, InvalidUtf8IsEscapedBytewise) {
  EXPECT_EQ(escape_bytes("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(escape_bytes("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");           // overlong 3-byte
  EXPECT_EQ(escape_bytes("\xf0\x80\x80\xaf"), "\\xf0\\x80\\x80\\xaf");  // overlong 4-byte
  EXPECT_EQ(escape_bytes("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate U+D800
  EXPECT_EQ(escape_bytes("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(escape_bytes("\xe2\x82"), "\\xe2\\x82");                    // truncated
  // A bad byte does not swallow the valid character after it.
  EXPECT_EQ(escape_bytes("\xe2\xc3\xa9"), "\\xe2\xc3\xa9");
}

TEST(JsonEscape, MixedStringsRoundTrip) {
  const std::string cases[] = {
      std::string("/home/u/.aws/credentials"),
      std::string("/tmp/new\nline/.aws/credentials"),
      std::string("/srv/\"quoted\" 'single'/file"),
      std::string("C:\\windows\\x41\\\\x"),
      std::string("\\x41"),
      std::string("/bad/\xff\xfe/\xc3\xa9t\xc3\xa9\x00tail", sizeof("/bad/\xff\xfe/\xc3\xa9t\xc3\xa9\x00tail") - 1),
      std::string("\x1b[31mred\x1b[0m"),
  };
  for (const std::string& raw : cases) {
    EXPECT_EQ(roundtrip(raw), raw);
    expect_dumps(raw);
  }
  // An escaped-looking input is not confused with an escape.
  EXPECT_EQ(escape_bytes("\\x41"), "\\\\x41");
}

TEST(JsonEscape, PseudoRandomBytesRoundTrip) {
  uint32_t state = 12345;
  for (int n = 0; n < 2000; ++n) {
    std::string raw;
    const int length = n % 40;
    for (int i = 0; i < length; ++i) {
      state = state * 1103515245u + 12345u;
      raw += static_cast<char>(state >> 16);
    }
    ASSERT_EQ(roundtrip(raw), raw);
    expect_dumps(raw);
  }
}

TEST(JsonEscape, UnescapeRejectsWhatEscapeNeverProduces) {
  EXPECT_FALSE(unescape_bytes("abc\\").has_value());
  EXPECT_FALSE(unescape_bytes("\\n").has_value());
  EXPECT_FALSE(unescape_bytes("\\x4").has_value());
  EXPECT_FALSE(unescape_bytes("\\xZZ").has_value());
  EXPECT_FALSE(unescape_bytes("\\x4F").has_value());  // uppercase is not canonical
  EXPECT_EQ(unescape_bytes("\\x41\\\\").value(), "A\\");
}

}  // namespace
}  // namespace nhiguard
