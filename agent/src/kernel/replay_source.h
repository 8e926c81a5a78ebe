// ReplaySource: an EventSource over kernel records kept on disk, so the agent's path runs on what
// a sensor once produced: the golden blobs of the decoder tests (one record per file), or a
// recording of many records (each a little-endian u32 byte count followed by the record's bytes,
// the records exactly as the ring buffer delivered them). Records are handed out once, in order.
//
// Thread-safety: one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kernel/event_source.h"

namespace nhiguard::kernel {

class ReplaySource final : public EventSource {
 public:
  // Each file is one record.
  static Result<std::unique_ptr<ReplaySource>> from_files(const std::vector<std::string>& paths);
  // A recording: frames of (u32 little-endian size, bytes). A torn last frame is an error naming it.
  static Result<std::unique_ptr<ReplaySource>> from_recording(const std::string& path);
  explicit ReplaySource(std::vector<std::vector<std::byte>> records) : records_(std::move(records)) {}

  Result<int> consume(RecordSink& sink) override;
  size_t remaining() const { return records_.size() - next_; }

 private:
  std::vector<std::vector<std::byte>> records_;
  size_t next_ = 0;
};

// One frame of a recording, as from_recording() reads it (for the tools that write recordings).
std::vector<std::byte> recording_frame(std::span<const std::byte> record);

}  // namespace nhiguard::kernel
