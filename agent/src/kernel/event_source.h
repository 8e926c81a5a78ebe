// EventSource: where the agent's kernel records come from, as bytes in the layout of
// bpf/nhiguard_abi.h. The ring buffer of the loaded sensor (RingBufferSource) is one; a replay file
// or the golden blobs (ReplaySource) and synthetic records in tests are others. Everything after the
// source (decode, enrichment, decision, containment) is the same code for all of them, so the
// decision path runs without root or a kernel.
//
// A source hands records to a RecordSink, the first stage of the pipeline, one at a time and in the
// order it holds them. The span is valid only during the call: a sink that keeps bytes copies them.
//
// Thread-safety: a source is consumed from one thread (the event loop).
#pragma once

#include <cstddef>
#include <span>

#include "common/result.h"

namespace nhiguard::kernel {

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void on_record(std::span<const std::byte> record) = 0;
};

class EventSource {
 public:
  virtual ~EventSource() = default;

  // Hands every record available now to `sink`, without waiting; returns how many.
  virtual Result<int> consume(RecordSink& sink) = 0;

  // A descriptor that becomes readable when records arrive, for the event loop's epoll set; -1 when
  // the source has none (its records are all there from the start, as in a replay).
  virtual int ready_fd() const { return -1; }
};

}  // namespace nhiguard::kernel
