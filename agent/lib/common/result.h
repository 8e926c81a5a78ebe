// Errors as values for the agent: Result<T> is std::expected<T, Error>.
//
// An Error carries the errno (0 when none applies) and a message that says what failed and on what
// ("open /etc/passwd: Permission denied"). libbpf's negative errnos are converted at the call site
// with Error::from_errno(-err, ...). Exceptions are reserved for start-up configuration.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace nhiguard {

struct Error {
  int code = 0;         // errno value, 0 when the failure is not a system error
  std::string message;  // what failed, on what, and why

  static Error from_errno(int err, std::string what) { return Error{err, std::move(what) + ": " + std::strerror(err)}; }
  static Error from_current_errno(std::string what) { return from_errno(errno, std::move(what)); }
  static Error plain(std::string what) { return Error{0, std::move(what)}; }
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Error e) {
  return std::unexpected<Error>(std::move(e));
}

}  // namespace nhiguard
