// Who is calling: the verified client certificate's CN and role (OU), from gRPC's auth context.
//
// The TLS layer has already verified the chain to the fleet CA (the server requests client
// certificates and verifies any that is sent); a client that sent none reaches the handlers with no
// identity and is refused here (ENOKEY -> UNAUTHENTICATED). A certificate of the wrong role is
// EACCES (PERMISSION_DENIED). With --insecure there is no certificate at all: agents are trusted by
// their Hello, and operator calls are accepted from loopback peers only.
#pragma once

#include <optional>
#include <string>

#include <grpcpp/server_context.h>

#include "common/result.h"
#include "pki/fleet_pki.h"

namespace nhiguard::collector {

struct PeerIdentity {
  std::string common_name;  // empty with --insecure
  std::string peer;         // "ipv4:127.0.0.1:53412"
};

// Requires a verified certificate with `role` (mTLS), or, with `insecure`, nothing for agents and a
// loopback peer for operators.
Result<PeerIdentity> authenticate_peer(const grpc::ServerContext& context, pki::Role role, bool insecure);

// True for "ipv4:127.x.x.x:port", "ipv6:[::1]:port" and unix sockets.
bool is_loopback_peer(const std::string& peer);

}  // namespace nhiguard::collector
