// Clocks and time formats. The kernel stamps and expires on CLOCK_BOOTTIME; people and reports read
// CLOCK_REALTIME. Anything that decides *when* (TTLs, expiry, the sweeper) uses the boot clock,
// which no one can step; the wall clock is for display and for comparing across a reboot only.
#pragma once

#include <time.h>

#include <cstdint>
#include <string>

namespace nhiguard {

// The clock's current value in nanoseconds.
uint64_t clock_ns(clockid_t clock);

// A CLOCK_BOOTTIME instant (from the kernel) on the wall clock, as of now.
uint64_t boot_to_wall_ns(uint64_t boot_ns);

// RFC 3339 UTC with nanoseconds: "2026-11-22T07:53:01.123456789Z".
std::string format_rfc3339_ns(uint64_t wall_time_ns);

// The kernel's id of this boot (/proc/sys/kernel/random/boot_id, a UUID; empty if unreadable): a
// CLOCK_BOOTTIME value means something only together with the boot it was read in.
std::string read_boot_id();

// The time source of the components that decide expiry (the containment executor and its
// sweeper), injectable so a test can step the wall clock or pretend a reboot.
// Thread-safety: implementations are safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual uint64_t wall_ns() const = 0;  // CLOCK_REALTIME: display, reports, across reboots
  virtual uint64_t boot_ns() const = 0;  // CLOCK_BOOTTIME: TTLs and expiry, as the kernel
  virtual std::string boot_id() const = 0;
};

// The host's clocks; the boot id is read once (it cannot change while a process runs).
class SystemClock final : public Clock {
 public:
  SystemClock();
  uint64_t wall_ns() const override { return clock_ns(CLOCK_REALTIME); }
  uint64_t boot_ns() const override { return clock_ns(CLOCK_BOOTTIME); }
  std::string boot_id() const override { return boot_id_; }

 private:
  std::string boot_id_;
};

}  // namespace nhiguard
