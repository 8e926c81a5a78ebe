#include "pki/peer_certificate.h"

#include <cerrno>

#include <fmt/format.h>

namespace nhiguard::pki {

Result<CertificateIdentity> peer_certificate_identity(const grpc::AuthContext* auth) {
  const auto certs = auth ? auth->FindPropertyValues("x509_pem_cert") : std::vector<grpc::string_ref>{};
  if (certs.empty()) return fail(Error{ENOKEY, "no certificate presented"});
  return read_certificate_identity(std::string_view(certs.front().data(), certs.front().size()));
}

Result<void> require_peer_role(const grpc::AuthContext* auth, Role role, std::string_view peer) {
  auto identity = peer_certificate_identity(auth);
  if (!identity) return fail(Error{identity.error().code, fmt::format("{}: {}", peer, identity.error().message)});
  if (identity->role == role) return {};
  return fail(Error{EACCES, fmt::format("{} presented a certificate of the fleet CA for role '{}' (CN {}), not '{}'",
                                        peer, identity->role ? to_string(*identity->role) : "none",
                                        identity->common_name, to_string(role))});
}

}  // namespace nhiguard::pki
