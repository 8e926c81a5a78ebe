#include "pipeline/decode_stage.h"

#include <variant>

#include <spdlog/spdlog.h>

namespace nhiguard::pipeline {

void DecodeStage::on_record(std::span<const std::byte> record) {
  auto event = events::decode_kernel_event(record);
  if (!event) {
    const uint64_t n = ++decode_errors_;
    if ((n & (n - 1)) == 0) {
      spdlog::error("undecodable kernel record #{}: {}", n, event.error().message);
    }
    return;
  }
  if (auto* open = std::get_if<events::FileOpenEvent>(&*event); open && redactor_ && !open->cmdline.empty()) {
    open->cmdline = redactor_->redact(open->cmdline, open->cmdline_truncated);
  }
  if (redactor_) {
    // The process named itself: its comm goes through the redactor as its argv does.
    std::visit(
        [&](auto& e) {
          if constexpr (requires { e.process.comm; }) e.process.comm = redactor_->redact_comm(e.process.comm);
        },
        *event);
  }
  next_.on_event(*event);
}

}  // namespace nhiguard::pipeline
