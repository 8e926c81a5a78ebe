// DecodeStage: the pipeline's first stage. Turns each kernel record into a typed event
// (events::decode_kernel_event, pure) and redacts the argv the kernel copied at a credential open,
// so the process table, the event line, the report and every log line see only the redacted form.
// An undecodable record is counted and logged (at most once per power of two, so a broken stream
// cannot flood the log), never misread. Thread-safety: the event loop's thread; the count may be
// read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "identity/cmdline_redactor.h"
#include "kernel/event_source.h"
#include "pipeline/stages.h"

namespace nhiguard::pipeline {

class DecodeStage final : public kernel::RecordSink {
 public:
  // redactor null: argv kept as the kernel sent it (agent.yaml redact_cmdlines: false).
  DecodeStage(std::shared_ptr<const identity::CmdlineRedactor> redactor, EventSink& next)
      : redactor_(std::move(redactor)), next_(next) {}

  void on_record(std::span<const std::byte> record) override;
  uint64_t undecodable() const { return decode_errors_.load(); }

 private:
  std::shared_ptr<const identity::CmdlineRedactor> redactor_;
  EventSink& next_;
  std::atomic<uint64_t> decode_errors_ = 0;
};

}  // namespace nhiguard::pipeline
