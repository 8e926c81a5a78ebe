#include "server/peer_identity.h"

#include <cerrno>

#include <fmt/format.h>

#include "pki/peer_certificate.h"

namespace nhiguard::collector {

bool is_loopback_peer(const std::string& peer) {
  return peer.starts_with("ipv4:127.") || peer.starts_with("ipv6:[::1]:") || peer.starts_with("unix:") ||
         peer.starts_with("ipv6:[::ffff:127.");
}

Result<PeerIdentity> authenticate_peer(const grpc::ServerContext& context, pki::Role role, bool insecure) {
  PeerIdentity identity;
  identity.peer = context.peer();
  if (insecure) {
    if (role == pki::Role::operator_ && !is_loopback_peer(identity.peer))
      return fail(Error{EACCES, fmt::format("operator call from {} refused: without mTLS (--insecure) only "
                                            "loopback clients may call the operator API",
                                            identity.peer)});
    return identity;
  }
  auto auth = context.auth_context();
  auto cert = pki::peer_certificate_identity(auth.get());
  if (!cert && cert.error().code == ENOKEY)
    return fail(Error{ENOKEY, fmt::format("client {} presented no certificate (mTLS is required)", identity.peer)});
  if (!cert) return fail(Error{ENOKEY, fmt::format("client {}: {}", identity.peer, cert.error().message)});
  if (cert->role != role) {
    return fail(Error{EACCES, fmt::format("client {} ({}) has a certificate for role '{}', this call needs '{}'",
                                          identity.peer, cert->common_name,
                                          cert->role ? pki::to_string(*cert->role) : "none", pki::to_string(role))});
  }
  identity.common_name = std::move(cert->common_name);
  return identity;
}

}  // namespace nhiguard::collector
