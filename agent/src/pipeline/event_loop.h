// EventLoop: where the agent's main thread sleeps. It blocks in one epoll_wait until a source has
// records (the ring buffer's descriptor), the tick timer fires (a timerfd: the sweeper's and the
// housekeeping's clock), or another thread or a signal handler calls wake() (an eventfd), so an
// idle agent wakes once per tick instead of polling.
//
// The caller bounds a wait only when it must look again soon: after consuming records, once more
// after a short wait, because records the programs submit within a millisecond of a wake-up raise
// none (kernel/ring_buffer_source.h). A look that finds nothing may block until the next tick.
//
// Thread-safety: wait() from one thread; wake() from any thread and from a signal handler.
#pragma once

#include <chrono>
#include <memory>

#include "common/result.h"

namespace nhiguard::pipeline {

class EventLoop {
 public:
  struct Woken {
    bool records = false;  // a watched descriptor is readable
    bool tick = false;     // the tick timer fired (once or more since the last wait)
    bool woken = false;    // wake() was called
  };

  static Result<std::unique_ptr<EventLoop>> create(std::chrono::milliseconds tick);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Adds a descriptor whose readability means records to consume (-1 is ignored).
  Result<void> watch(int fd);
  // Waits for any of the above, at most timeout_ms (-1: no bound but the tick). EINTR is a wake-up.
  Result<Woken> wait(int timeout_ms);
  // Makes the current or next wait() return. Async-signal-safe (one write(2)).
  void wake() const;

 private:
  EventLoop() = default;
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int wake_fd_ = -1;
};

}  // namespace nhiguard::pipeline
