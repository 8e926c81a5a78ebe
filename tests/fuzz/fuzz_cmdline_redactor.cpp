// libFuzzer target: arbitrary bytes as an argv (NUL-separated; the first byte's low bit says the
// argv was cut by a length limit). The redactor must return as many arguments as it was given,
// never crash or hang, and be idempotent: its own output, redacted again, comes back unchanged (a
// second pass that found more would mean the first left something behind or mangled a marker).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "identity/cmdline_redactor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const nhiguard::identity::CmdlineRedactor redactor([] {
    nhiguard::identity::RedactionKey key{};
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i * 7 + 1);
    return key;
  }());
  const bool truncated = (data[0] & 1) != 0;
  std::vector<std::string> argv(1);
  for (size_t i = 1; i < size; ++i) {
    if (data[i] == 0) {
      argv.emplace_back();
    } else {
      argv.back() += static_cast<char>(data[i]);
    }
  }
  const auto once = redactor.redact(argv, truncated);
  if (once.size() != argv.size()) __builtin_trap();
  const auto twice = redactor.redact(once, truncated);
  if (twice != once) __builtin_trap();
  return 0;
}
