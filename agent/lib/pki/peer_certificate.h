// The fleet identity of the other end of a gRPC call: the CN and role of the certificate the peer
// presented, read from the call's auth context (verified against the fleet CA by the TLS layer).
//
// The collector uses it to tell agents from operators (collector/src/server/peer_identity.h); the
// agent and nhiguardctl use require_peer_role(..., Role::collector) before they trust an answer:
// any certificate of the fleet CA passes the TLS handshake, so without this check an agent's or an
// operator's key (with a name the client's address matches) could pose as the collector, take the
// agents' reports and feed them commands, or tell an operator the kill switch is on.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <grpcpp/security/auth_context.h>

#include <string_view>

#include "common/result.h"
#include "pki/fleet_pki.h"

namespace nhiguard::pki {

// ENOKEY when the peer presented no certificate (or the auth context has none, as over plaintext).
Result<CertificateIdentity> peer_certificate_identity(const grpc::AuthContext* auth);

// OK when the peer's certificate has `role`. EACCES otherwise, with a message naming `peer` (an
// address, for the log), the certificate's CN and the role it holds.
Result<void> require_peer_role(const grpc::AuthContext* auth, Role role, std::string_view peer);

}  // namespace nhiguard::pki
