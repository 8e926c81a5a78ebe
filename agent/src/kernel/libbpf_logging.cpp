#include "kernel/libbpf_logging.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <string>

#include <spdlog/spdlog.h>

namespace nhiguard::kernel {
namespace {

int print_to_spdlog(enum libbpf_print_level level, const char* format, va_list args) {
  // A verifier log arrives as one message of many kilobytes, and its end says why a load failed:
  // size the buffer to the message instead of cutting it.
  va_list measure;
  va_copy(measure, args);
  const int n = vsnprintf(nullptr, 0, format, measure);
  va_end(measure);
  if (n <= 0) return n;
  std::string line(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(line.data(), line.size(), format, args);
  line.resize(static_cast<size_t>(n));
  while (!line.empty() && line.back() == '\n') line.pop_back();
  switch (level) {
    case LIBBPF_WARN:
      spdlog::warn("libbpf: {}", line);
      break;
    case LIBBPF_INFO:
      spdlog::info("libbpf: {}", line);
      break;
    case LIBBPF_DEBUG:
      spdlog::debug("libbpf: {}", line);
      break;
  }
  return n;
}

}  // namespace

void route_libbpf_logging_to_spdlog() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(print_to_spdlog); });
}

}  // namespace nhiguard::kernel
