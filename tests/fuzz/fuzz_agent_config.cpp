// libFuzzer target: arbitrary bytes as agent.yaml. The parser must return a config or a list of
// errors, never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/agent_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = nhiguard::config::parse_agent_config_collecting(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.yaml");
  for (const auto& error : parsed.errors) (void)error.to_string();
  return 0;
}
