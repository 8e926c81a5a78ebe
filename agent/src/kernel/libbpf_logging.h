// Routes libbpf's diagnostics to spdlog, so a failed load explains itself in the agent's log.
#pragma once

namespace nhiguard::kernel {

// Idempotent; thread-safe after the first call. libbpf debug output goes to spdlog's debug level.
void route_libbpf_logging_to_spdlog();

}  // namespace nhiguard::kernel
