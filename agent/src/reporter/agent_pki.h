// The agent's side of the fleet PKI (made by `nhiguardctl certs init DIR`): the CA that signs the
// collector's certificate, and the agent's own certificate and key, read from collector.pki.
//
// Files: <dir>/ca.pem, <dir>/agent.pem, <dir>/agent-key.pem. They are read again at every
// connection attempt, so renewed certificates are used without restarting the agent. The key is
// never logged; errors name the file and what is wrong with it.
//
// Pure apart from reading the files; thread-safe.
#pragma once

#include <string>

#include "common/result.h"

namespace nhiguard::reporter {

struct AgentPki {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  std::string common_name;  // the agent certificate's subject CN: the agent id the collector sees
};

Result<AgentPki> load_agent_pki(const std::string& dir);

// The subject CN of the first certificate in `pem`. EINVAL when it does not parse or has no CN.
Result<std::string> certificate_common_name(const std::string& pem);

}  // namespace nhiguard::reporter
