#include "pipeline/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace nhiguard::pipeline {
namespace {

Result<void> add(int epoll_fd, int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) return fail(Error::from_current_errno("epoll_ctl add"));
  return {};
}

// Empties a timerfd or eventfd (both hold a u64 counter; nonblocking, so a spurious wake costs nothing).
void drain(int fd) {
  uint64_t count = 0;
  while (read(fd, &count, sizeof(count)) == sizeof(count)) {
  }
}

}  // namespace

Result<std::unique_ptr<EventLoop>> EventLoop::create(std::chrono::milliseconds tick) {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  loop->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epoll_fd_ < 0) return fail(Error::from_current_errno("epoll_create1"));
  // CLOCK_BOOTTIME, as the sweeper counts: a suspended host's expiries are due at resume.
  loop->timer_fd_ = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
  if (loop->timer_fd_ < 0) return fail(Error::from_current_errno("timerfd_create"));
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(tick).count();
  const timespec period{.tv_sec = static_cast<time_t>(ns / 1'000'000'000),
                        .tv_nsec = static_cast<long>(ns % 1'000'000'000)};
  const itimerspec spec{.it_interval = period, .it_value = period};
  if (timerfd_settime(loop->timer_fd_, 0, &spec, nullptr) != 0)
    return fail(Error::from_current_errno("timerfd_settime"));
  loop->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake_fd_ < 0) return fail(Error::from_current_errno("eventfd"));
  for (int fd : {loop->timer_fd_, loop->wake_fd_}) {
    if (auto added = add(loop->epoll_fd_, fd); !added) return fail(added.error());
  }
  return loop;
}

EventLoop::~EventLoop() {
  for (int fd : {wake_fd_, timer_fd_, epoll_fd_}) {
    if (fd >= 0) close(fd);
  }
}

Result<void> EventLoop::watch(int fd) {
  if (fd < 0) return {};
  return add(epoll_fd_, fd);
}

Result<EventLoop::Woken> EventLoop::wait(int timeout_ms) {
  epoll_event events[8];
  const int n = epoll_wait(epoll_fd_, events, 8, timeout_ms);
  Woken woken;
  if (n < 0) {
    if (errno != EINTR) return fail(Error::from_current_errno("epoll_wait"));
    woken.woken = true;  // a signal: the caller looks at its stop flag
    return woken;
  }
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == timer_fd_) {
      drain(fd);
      woken.tick = true;
    } else if (fd == wake_fd_) {
      drain(fd);
      woken.woken = true;
    } else {
      woken.records = true;
    }
  }
  return woken;
}

void EventLoop::wake() const {
  const uint64_t one = 1;
  // A full counter (2^64 - 2 pending wakes) already wakes the loop: nothing to handle.
  [[maybe_unused]] const ssize_t written = write(wake_fd_, &one, sizeof(one));
}

}  // namespace nhiguard::pipeline
