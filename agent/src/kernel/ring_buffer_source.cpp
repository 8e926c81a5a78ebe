#include "kernel/ring_buffer_source.h"

#include <bpf/libbpf.h>

#include <cerrno>

#include "kernel/bpf_map_ops.h"

namespace nhiguard::kernel {

Result<std::unique_ptr<RingBufferSource>> RingBufferSource::open(int ring_fd) {
  std::unique_ptr<RingBufferSource> source(new RingBufferSource());
  source->ring_ = ring_buffer__new(ring_fd, &RingBufferSource::on_record, source.get(), nullptr);
  if (!source->ring_) return fail(Error::from_current_errno("ring_buffer__new for nhg_events"));
  source->ring_fd_ = ring_fd;
  return source;
}

RingBufferSource::~RingBufferSource() {
  if (ring_) ring_buffer__free(ring_);
}

int RingBufferSource::on_record(void* ctx, void* data, size_t size) {
  auto* self = static_cast<RingBufferSource*>(ctx);
  self->sink_->on_record(std::span<const std::byte>(static_cast<const std::byte*>(data), size));
  return 0;
}

Result<int> RingBufferSource::consume(RecordSink& sink) {
  sink_ = &sink;
  const int n = ring_buffer__consume(ring_);
  sink_ = nullptr;
  if (n < 0 && n != -EINTR) return fail(libbpf_error(n, "consume ring buffer nhg_events"));
  return n < 0 ? 0 : n;
}

Result<int> RingBufferSource::poll(RecordSink& sink, int timeout_ms) {
  sink_ = &sink;
  const int n = ring_buffer__poll(ring_, timeout_ms);
  sink_ = nullptr;
  if (n < 0 && n != -EINTR) return fail(libbpf_error(n, "poll ring buffer nhg_events"));
  // Records submitted without a wake-up (header comment) are taken here, so none waits longer
  // than one poll timeout.
  auto rest = consume(sink);
  if (!rest) return rest;
  return (n < 0 ? 0 : n) + *rest;
}

}  // namespace nhiguard::kernel
