// The fleet's PKI: one CA and the certificates of the collector, the agents and the operators,
// made with OpenSSL by `nhiguardctl certs init DIR`, and read back by the collector, nhiguardctl and
// the agent to set up mTLS.
//
// Roles are part of the certificate: the subject's OU is "collector", "agent" or "operator"
// (O = "nhiguard"), and the extended key usage matches (serverAuth for the collector, clientAuth for
// agents and operators). The collector trusts only certificates signed by the fleet CA, takes the
// agent id from the CN and allows operator calls only for OU=operator.
//
// Layout of DIR (keys 0600, certificates 0644, DIR itself created 0700):
//   ca.pem, ca-key.pem                 the fleet CA (keep ca-key.pem offline in production)
//   collector.pem, collector-key.pem   SAN: localhost, 127.0.0.1, ::1, this hostname, --collector-san
//   agent.pem, agent-key.pem           this host's agent (CN = hostname): `collector.pki: DIR` works as is
//   operator.pem, operator-key.pem     CN = operator name
//   agents/<NAME>/{ca.pem,agent.pem,agent-key.pem}   one ready-to-copy PKI directory per --agent NAME
// init_pki never overwrites: an existing CA is reused and existing certificates are kept, so running
// it again with a new --agent adds that agent only.
//
// Keys are ECDSA P-256; certificates are SHA-256 signed, CA valid 10 years, leaves 825 days.
// Thread-safety: free functions without shared state.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nhiguard::pki {

enum class Role { collector, agent, operator_ };
std::string_view to_string(Role role);  // "collector", "agent", "operator"
std::optional<Role> parse_role(std::string_view text);

// Agent and operator names become a CN and a directory name: 1-64 of [A-Za-z0-9._-], not "." or "..".
bool is_valid_identity_name(std::string_view name);

struct InitOptions {
  std::string dir;
  std::string hostname;                     // this host: the default agent's CN and a collector SAN
  std::vector<std::string> agents;          // extra agents, each under agents/<NAME>/
  std::vector<std::string> collector_sans;  // extra collector SANs: DNS names or IP addresses
  std::string operator_name = "operator";
};

struct InitReport {
  std::vector<std::string> created;  // files written
  std::vector<std::string> kept;     // files that existed and were left as they are
};

Result<InitReport> init_pki(const InitOptions& options);

// What a peer's certificate says about it.
struct CertificateIdentity {
  std::string common_name;
  std::optional<Role> role;  // from the OU; none when absent or unknown
};
Result<CertificateIdentity> read_certificate_identity(std::string_view pem);

// PEM texts for one side of an mTLS connection.
struct TlsMaterial {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};
// Reads DIR/ca.pem, DIR/<base>.pem and DIR/<base>-key.pem ("collector", "operator", "agent").
// Errors name the missing or unreadable file.
Result<TlsMaterial> load_tls_material(const std::string& dir, std::string_view base);

}  // namespace nhiguard::pki
