#include "kernel/kernel_sensor.h"

#include "kernel/libbpf_logging.h"

namespace nhiguard::kernel {

KernelSensor::KernelSensor(std::unique_ptr<SensorLoader> loader, RecordHandler handler)
    : loader_(std::move(loader)), counters_(loader_->maps().counters), handler_(std::move(handler)) {}

Result<std::unique_ptr<KernelSensor>> KernelSensor::start(const SensorOptions& options, RecordHandler handler) {
  route_libbpf_logging_to_spdlog();
  auto loader = SensorLoader::load(options);
  if (!loader) return fail(loader.error());
  std::unique_ptr<KernelSensor> sensor(new KernelSensor(std::move(*loader), std::move(handler)));
  const SensorMapFds& fds = sensor->loader_->maps();
  auto tables = KernelCredentialTables::adopt(fds);
  if (!tables) return fail(tables.error());
  sensor->tables_ = std::move(*tables);
  auto enforcement = KernelEnforcementMaps::adopt(fds);
  if (!enforcement) return fail(enforcement.error());
  sensor->enforcement_ = std::move(*enforcement);
  if (auto attached = sensor->loader_->attach(options); !attached) return fail(attached.error());
  auto events = RingBufferSource::open(fds.events);
  if (!events) return fail(events.error());
  sensor->events_ = std::move(*events);
  return sensor;
}

Result<int> KernelSensor::poll(int timeout_ms) {
  return events_->poll(handler_, timeout_ms);
}

}  // namespace nhiguard::kernel
