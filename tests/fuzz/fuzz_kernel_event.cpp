// libFuzzer target: arbitrary bytes as a ring-buffer record. decode_kernel_event must reject or
// decode every input without reading outside it.
#include <cstddef>
#include <cstdint>
#include <span>

#include "events/kernel_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto event = nhiguard::events::decode_kernel_event(std::span(reinterpret_cast<const std::byte*>(data), size));
  if (event) {
    if (auto* open = std::get_if<nhiguard::events::FileOpenEvent>(&*event)) {
      // Touch the strings so a bad length would show under AddressSanitizer.
      volatile size_t total = open->name.size() + open->parent.size() + open->requested_path.size();
      (void)total;
    }
  }
  return 0;
}
