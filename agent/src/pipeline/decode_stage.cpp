#include "pipeline/decode_stage.h"

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
  next_.on_event(*event);
}

}  // namespace nhiguard::pipeline
