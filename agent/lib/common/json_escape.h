// Byte strings (paths, command lines, comm names from the kernel) made safe for JSON, reversibly.
//
// Kernel strings are arbitrary bytes: a file name may hold invalid UTF-8, a newline or an escape
// sequence meant for a terminal. JSON strings must be valid UTF-8, and nlohmann::json throws when
// asked to dump anything else. escape_bytes turns any byte string into valid, printable UTF-8:
//   - well-formed UTF-8 sequences (U+0080 and up, no overlongs, no surrogates) pass through as is;
//   - printable ASCII (0x20..0x7e) passes through, except the backslash;
//   - a backslash becomes two backslashes, so every backslash in the output starts an escape;
//   - every other byte (C0 controls, DEL, stray continuation bytes, overlong or surrogate
//     encodings, truncated sequences, 0xf5..0xff) becomes the four characters \xNN, lowercase hex.
// The mapping is injective: unescape_bytes(escape_bytes(s)) == s for every s.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard {

std::string escape_bytes(std::string_view raw);

// Inverse of escape_bytes. Fails on text escape_bytes cannot produce: a lone trailing backslash, a
// backslash followed by anything but '\' or 'x', or \x without two lowercase hex digits.
Result<std::string> unescape_bytes(std::string_view escaped);

}  // namespace nhiguard
