// The fleet's PKI: one CA and the certificates of the collector, the agents and the operators,
// made with OpenSSL by `nhiguardctl certs init DIR`, and read back by the collector, nhiguardctl and
// the agent to set up mTLS.
//
// Roles are part of the certificate: the subject's OU is "collector", "agent" or "operator"
// (O = "nhiguard"), and the extended key usage matches (serverAuth for the collector, clientAuth for
// agents and operators). The collector trusts only certificates signed by the fleet CA, takes the
// agent id from the CN and allows operator calls only for OU=operator.
//
// Layout of DIR made by init_pki (keys 0600, certificates 0644, every directory 0700). Each role has
// a directory of its own holding only the CA certificate and its own pair, so a service can be
// given (or sandboxed to) its directory alone; the CA key and the operator key are never in a
// directory an agent or the collector is told to use:
//   ca.pem                             the fleet CA certificate (public, the trust anchor)
//   ca/ca.pem, ca/ca-key.pem           the fleet CA: read only by `certs init` and `certs issue`
//                                      (in production, on an offline CA host: see issue_certificate)
//   collector/{ca.pem, collector.pem, collector-key.pem}   SAN: localhost, 127.0.0.1, ::1, this
//                                      hostname, --collector-san
//   agent/{ca.pem, agent.pem, agent-key.pem}     this host's agent (CN = hostname)
//   operator/{ca.pem, operator.pem, operator-key.pem}     CN = operator name
//   agents/<NAME>/, collectors/<NAME>/, operators/<NAME>/  issued for other hosts (--agent NAME,
//                                      `certs issue`), each {ca.pem, <role>.pem, <role>-key.pem},
//                                      ready to copy to that host
// init_pki never overwrites: an existing CA is reused and existing certificates are kept, so running
// it again with a new --agent adds that agent only.
//
// Readers (load_tls_material) take DIR/<role>/ when it holds <role>.pem, else DIR itself: so
// `collector.pki: /etc/nhiguard/pki`, `--pki /etc/nhiguard/pki` and a copied agents/<NAME>/ all work.
// The layout before role directories (every file flat in DIR, ca-key.pem beside agent-key.pem)
// is still read as it is; init_pki run on such a directory moves its files into the role
// directories (same keys, same certificates: nothing needs re-issuing) and reports each move.
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
  bool ca_only = false;                     // only DIR/ca/ and DIR/ca.pem (an offline CA host)
  std::string hostname;                     // this host: the default agent's CN and a collector SAN
  std::vector<std::string> agents;          // extra agents, each under agents/<NAME>/
  std::vector<std::string> collector_sans;  // extra collector SANs: DNS names or IP addresses
  std::string operator_name = "operator";
};

struct InitReport {
  std::vector<std::string> created;  // files written
  std::vector<std::string> kept;     // files that existed and were left as they are
  std::vector<std::string> moved;    // "FROM -> TO": a flat (older) layout's files put in role directories
};

Result<InitReport> init_pki(const InitOptions& options);

// `nhiguardctl certs issue ROLE NAME`: one certificate signed by the CA of the PKI directory
// `pki_dir` (its ca/ subdirectory, or an older flat directory holding ca-key.pem), written with
// ca.pem into `out_dir` (default: pki_dir/agents|collectors|operators/NAME). The offline-CA flow:
// the CA host runs `certs init DIR --ca-only` once and `certs issue` per host; only the issued
// directory is copied to that host, and no host but the CA host ever holds ca-key.pem. An existing
// certificate in out_dir is kept (reported), never re-issued.
struct IssueOptions {
  std::string pki_dir;
  Role role = Role::agent;
  std::string name;                         // the CN; for a collector also a SAN
  std::string out_dir;                      // empty: the default above
  std::vector<std::string> collector_sans;  // collector only: more DNS names or IP addresses
};
Result<InitReport> issue_certificate(const IssueOptions& options);

// The directory holding `base`.pem for a role under `dir`: dir/<base> when it has <base>.pem, else
// dir (flat layouts, issued directories, systemd's credentials directory).
std::string tls_material_dir(const std::string& dir, std::string_view base);

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
// Reads ca.pem, <base>.pem and <base>-key.pem ("collector", "operator", "agent") from
// tls_material_dir(dir, base). Errors name the missing or unreadable file.
Result<TlsMaterial> load_tls_material(const std::string& dir, std::string_view base);

}  // namespace nhiguard::pki
