#include "common/json_escape.h"

#include <fmt/format.h>

namespace nhiguard {
namespace {

constexpr char kHex[] = "0123456789abcdef";

bool is_continuation(unsigned char byte) {
  return (byte & 0xc0) == 0x80;
}

// Length of the well-formed UTF-8 sequence starting at raw[i] (2..4), or 0 when the bytes there are
// not one. Follows the table of well-formed byte sequences in the Unicode standard (ch. 3, D92):
// the second byte's range is narrowed for E0 (no overlongs), ED (no surrogates), F0 (no overlongs)
// and F4 (nothing above U+10FFFF); C0, C1 and F5..FF never start a sequence.
std::size_t utf8_sequence_length(std::string_view raw, std::size_t i) {
  const auto lead = static_cast<unsigned char>(raw[i]);
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) second_min = 0xa0;
    if (lead == 0xed) second_max = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) second_min = 0x90;
    if (lead == 0xf4) second_max = 0x8f;
  } else {
    return 0;
  }
  if (i + length > raw.size()) return 0;
  const auto second = static_cast<unsigned char>(raw[i + 1]);
  if (second < second_min || second > second_max) return 0;
  for (std::size_t k = 2; k < length; ++k) {
    if (!is_continuation(static_cast<unsigned char>(raw[i + k]))) return 0;
  }
  return length;
}

void append_hex_escape(std::string& out, unsigned char byte) {
  out += "\\x";
  out += kHex[byte >> 4];
  out += kHex[byte & 0x0f];
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // uppercase is never produced, so it is rejected to keep the encoding canonical
}

}  // namespace

std::string escape_bytes(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  std::size_t i = 0;
  while (i < raw.size()) {
    const auto byte = static_cast<unsigned char>(raw[i]);
    if (byte == '\\') {
      out += "\\\\";
      ++i;
    } else if (byte >= 0x20 && byte < 0x7f) {
      out += static_cast<char>(byte);
      ++i;
    } else if (byte < 0x80) {  // C0 controls and DEL
      append_hex_escape(out, byte);
      ++i;
    } else if (const std::size_t length = utf8_sequence_length(raw, i); length != 0) {
      out.append(raw.substr(i, length));
      i += length;
    } else {
      // Escape only this byte and resynchronise on the next one, so one bad byte does not swallow
      // a valid character that follows it.
      append_hex_escape(out, byte);
      ++i;
    }
  }
  return out;
}

Result<std::string> unescape_bytes(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '\\') {
      out += escaped[i];
      continue;
    }
    if (i + 1 >= escaped.size()) {
      return fail(Error::plain(fmt::format("unescape: lone backslash at offset {}", i)));
    }
    if (escaped[i + 1] == '\\') {
      out += '\\';
      i += 1;
      continue;
    }
    // \xNN needs four characters: the backslash, 'x' and two hex digits.
    if (escaped[i + 1] != 'x' || escaped.size() - i < 4) {
      return fail(Error::plain(fmt::format("unescape: invalid escape at offset {}", i)));
    }
    const int high = hex_value(escaped[i + 2]);
    const int low = hex_value(escaped[i + 3]);
    if (high < 0 || low < 0) {
      return fail(Error::plain(fmt::format("unescape: invalid \\x escape at offset {}", i)));
    }
    out += static_cast<char>((high << 4) | low);
    i += 3;
  }
  return out;
}

}  // namespace nhiguard
