// KernelSensor: the loaded sensor, assembled from its parts: the SensorLoader (the only owner of
// the skeletons), the ring buffer as an EventSource, the detection maps (CredentialTables), the
// enforcement maps (EnforcementMaps) and the counters. The agent's stages see only the interfaces;
// this type exists for the start-up wiring and the kernel tests.
//
// start() loads, lets the map writers adopt the pinned state (filters rebuilt, enforcement counted)
// before anything is attached, attaches, and opens the ring buffer. The destructor frees the parts
// in the reverse order (the ring and the map writers before the loader whose descriptors they use).
//
// Thread-safety: poll() and events() from one thread; see each part for the rest.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "kernel/credential_tables.h"
#include "kernel/enforcement_maps.h"
#include "kernel/event_source.h"
#include "kernel/kernel_counters.h"
#include "kernel/kernel_credential_tables.h"
#include "kernel/kernel_enforcement_maps.h"
#include "kernel/ring_buffer_source.h"
#include "kernel/sensor_loader.h"

namespace nhiguard::kernel {

class KernelSensor final {
 public:
  // Called by poll() for every ring-buffer record; the span is valid only during the call.
  using RecordHandler = std::function<void(std::span<const std::byte>)>;

  static Result<std::unique_ptr<KernelSensor>> start(const SensorOptions& options, RecordHandler handler = {});
  KernelSensor(const KernelSensor&) = delete;
  KernelSensor& operator=(const KernelSensor&) = delete;

  // Waits up to timeout_ms for a wake-up and hands what is there to the handler given to start().
  Result<int> poll(int timeout_ms);

  RingBufferSource& events() { return *events_; }
  KernelCredentialTables& credential_tables() { return *tables_; }
  const KernelCredentialTables& credential_tables() const { return *tables_; }
  KernelEnforcementMaps& enforcement() { return *enforcement_; }
  const KernelEnforcementMaps& enforcement() const { return *enforcement_; }
  const KernelCounters& counters() const { return counters_; }
  std::vector<std::string> attached_programs() const { return loader_->attached_programs(); }
  const EnforcementPath& enforcement_path() const { return loader_->enforcement_path(); }

 private:
  class HandlerSink final : public RecordSink {
   public:
    explicit HandlerSink(RecordHandler handler) : handler_(std::move(handler)) {}
    void on_record(std::span<const std::byte> record) override {
      if (handler_) handler_(record);
    }

   private:
    RecordHandler handler_;
  };

  KernelSensor(std::unique_ptr<SensorLoader> loader, RecordHandler handler);

  // Declared first: destroyed last.
  std::unique_ptr<SensorLoader> loader_;
  KernelCounters counters_;
  std::unique_ptr<KernelCredentialTables> tables_;
  std::unique_ptr<KernelEnforcementMaps> enforcement_;
  std::unique_ptr<RingBufferSource> events_;
  HandlerSink handler_;
};

}  // namespace nhiguard::kernel
