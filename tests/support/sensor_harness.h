// The loaded sensor as the bpf tier's newer tests use it: loaded and attached for real (root,
// BTF), its pins under a directory of the test's own, its records decoded into events; the events
// of given processes are collected until their exit events arrive (records of one process reach
// the ring buffer in order, so none of its records can follow its exit). The open programs come in
// two variants (sensor.bpf.c SENSOR_OPEN_EXIT); DirectReads / ProbeReads name them for typed tests.
// Header-only; failures are gtest failures.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "events/kernel_event.h"
#include "kernel/feature_probe.h"
#include "kernel/host_prerequisites.h"
#include "kernel/kernel_sensor.h"

namespace nhiguard::testing {

struct DirectReads {
  static constexpr bool kDirect = true;
};
struct ProbeReads {
  static constexpr bool kDirect = false;
};
struct VariantNames {
  template <typename Variant>
  static std::string GetName(int) {
    return Variant::kDirect ? "direct" : "probe_read";
  }
};

// Whether this kernel can load the direct variant (bpf_rdonly_cast, 6.2+).
inline bool kernel_has_direct_reads() {
  return kernel::probe_kernel_features().supports("rdonly_cast");
}

class SensorHarness {
 public:
  // Loads the sensor with the direct or probe-read open programs; null (with a test failure) when
  // it cannot.
  static std::unique_ptr<SensorHarness> start(const std::string& name, bool direct) {
    EXPECT_EQ(geteuid(), 0) << "the bpf tier needs root";
    EXPECT_TRUE(kernel::check_kernel_btf().has_value());
    EXPECT_TRUE(kernel::ensure_bpffs().has_value());
    EXPECT_TRUE(kernel::ensure_tracefs().has_value());
    std::unique_ptr<SensorHarness> harness(new SensorHarness());
    harness->pin_dir_ = "/sys/fs/bpf/nhiguard-test-" + name + "-" + std::to_string(getpid());
    kernel::SensorOptions options{
        .pin_dir = harness->pin_dir_, .ringbuf_bytes = 1u << 20, .ignore_tgid = 0, .direct_file_reads = direct};
    SensorHarness* self = harness.get();
    auto sensor = kernel::KernelSensor::start(options, [self](std::span<const std::byte> record) {
      auto event = events::decode_kernel_event(record);
      EXPECT_TRUE(event.has_value()) << event.error().message;
      if (event) self->events_.push_back(std::move(*event));
    });
    EXPECT_TRUE(sensor.has_value()) << sensor.error().message;
    if (!sensor) return nullptr;
    harness->sensor_ = std::move(*sensor);
    return harness;
  }

  ~SensorHarness() {
    sensor_.reset();
    std::filesystem::remove_all(pin_dir_);
  }

  kernel::KernelSensor& sensor() { return *sensor_; }

  // Drops what was collected so far (the whole host's lifecycle events accumulate).
  void clear() { events_.clear(); }

  // Every event of these processes, polled for until each one's exit event arrived (5 s at most).
  std::vector<events::KernelEvent> events_of(const std::set<uint32_t>& pids) {
    std::vector<events::KernelEvent> mine;
    std::set<uint32_t> running = pids;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!running.empty() && std::chrono::steady_clock::now() < deadline) {
      EXPECT_TRUE(sensor_->poll(50).has_value());
      for (auto it = events_.begin(); it != events_.end();) {
        const uint32_t tgid = tgid_of(*it);
        if (!pids.contains(tgid)) {
          ++it;
          continue;
        }
        if (std::holds_alternative<events::ExitEvent>(*it)) running.erase(tgid);
        mine.push_back(std::move(*it));
        it = events_.erase(it);
      }
    }
    EXPECT_TRUE(running.empty()) << "no exit event for " << running.size() << " process(es)";
    return mine;
  }

  static uint32_t tgid_of(const events::KernelEvent& event) {
    return std::visit(
        [](const auto& e) -> uint32_t {
          if constexpr (std::is_same_v<std::decay_t<decltype(e)>, events::ForkEvent>) {
            return e.parent.tgid;
          } else {
            return e.process.tgid;
          }
        },
        event);
  }

  template <typename T>
  static std::vector<T> of_type(const std::vector<events::KernelEvent>& events) {
    std::vector<T> out;
    for (const auto& e : events) {
      if (auto* x = std::get_if<T>(&e)) out.push_back(*x);
    }
    return out;
  }

 private:
  SensorHarness() = default;
  std::string pin_dir_;
  std::unique_ptr<kernel::KernelSensor> sensor_;
  std::vector<events::KernelEvent> events_;
};

}  // namespace nhiguard::testing
