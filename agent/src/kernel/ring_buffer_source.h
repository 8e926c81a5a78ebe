// RingBufferSource: the EventSource of the loaded sensor, over its ring buffer (nhg_events; the
// descriptor from the SensorLoader, which must outlive this).
//
// Wake-ups: the programs wake user space at most once per millisecond per CPU (maps.bpf.h); a
// record submitted within that millisecond after a wake-up raises none. Such a record is always
// preceded by a wake-up less than a millisecond earlier, so a consumer that, after consuming
// records, looks again once more after a short wait (the event loop does) never leaves one behind,
// and may block without a timeout once a look finds nothing.
//
// Thread-safety: one thread (the event loop, or a test's poller).
#pragma once

#include <memory>

#include "kernel/event_source.h"

struct ring_buffer;

namespace nhiguard::kernel {

class RingBufferSource final : public EventSource {
 public:
  static Result<std::unique_ptr<RingBufferSource>> open(int ring_fd);
  ~RingBufferSource() override;
  RingBufferSource(const RingBufferSource&) = delete;
  RingBufferSource& operator=(const RingBufferSource&) = delete;

  Result<int> consume(RecordSink& sink) override;
  // The ring buffer map itself: readable while it holds records (after a wake-up, to an epoll
  // set that watches it level-triggered).
  int ready_fd() const override { return ring_fd_; }

  // Waits up to timeout_ms for a wake-up, then consumes what is there (also records that came
  // without a wake-up). Returns how many.
  Result<int> poll(RecordSink& sink, int timeout_ms);

 private:
  RingBufferSource() = default;
  static int on_record(void* ctx, void* data, size_t size);

  ring_buffer* ring_ = nullptr;
  int ring_fd_ = -1;
  RecordSink* sink_ = nullptr;  // the sink of the consume or poll in progress
};

}  // namespace nhiguard::kernel
