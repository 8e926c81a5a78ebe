// Readiness and stop notifications to the service manager (systemd `Type=notify`).
//
// The sd_notify protocol: one datagram of newline-separated VAR=VALUE assignments ("READY=1",
// "STOPPING=1", "STATUS=...") sent to the AF_UNIX datagram socket named by $NOTIFY_SOCKET — a
// filesystem path, or an abstract-namespace name written with a leading '@'. Written here rather
// than linking libsystemd, because the agent needs only these few lines of it.
//
// Stateless; safe to call from any thread (each call opens and closes its own socket). Sending
// never blocks on a full receiver: the socket is non-blocking and the failure is returned.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace nhiguard {

// Sends `state` to the socket named by `notify_socket` (a path or '@abstract').
Result<void> notify_service_manager(std::string_view notify_socket, std::string_view state);

// Sends `state` to $NOTIFY_SOCKET. Returns false, sending nothing, when the variable is unset or
// empty (not started by a service manager that listens), true when the datagram was sent.
Result<bool> notify_service_manager(std::string_view state);

}  // namespace nhiguard
