#include "pki/fleet_pki.h"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/filesystem.h"
#include "identity/mountinfo.h"

namespace nhiguard::pki {
namespace {

constexpr long kCaValidDays = 3650;
constexpr long kLeafValidDays = 825;
constexpr std::string_view kOrganization = "nhiguard";

struct X509Deleter { void operator()(X509* x) const { X509_free(x); } };
struct KeyDeleter { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct BioDeleter { void operator()(BIO* b) const { BIO_free(b); } };
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// The most recent OpenSSL error queue entry, for messages; the queue is cleared.
std::string openssl_error() {
  unsigned long code = 0, last = 0;
  while ((code = ERR_get_error()) != 0) last = code;
  if (last == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  return buf;
}

Error ssl_error(const std::string& what) { return Error{EIO, what + ": " + openssl_error()}; }

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<KeyPtr> new_key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail(ssl_error("generate P-256 key"));
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

Result<std::string> key_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail(ssl_error("encode private key"));
  return bio_text(bio.get());
}

Result<std::string> cert_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return fail(ssl_error("encode certificate"));
  return bio_text(bio.get());
}

Result<X509Ptr> parse_cert(std::string_view pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return fail(Error{EINVAL, "parse certificate " + what + ": " + openssl_error()});
  return cert;
}

Result<KeyPtr> parse_key(std::string_view pem, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return fail(Error{EINVAL, "parse private key " + what + ": " + openssl_error()});
  return key;
}

Result<void> add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return fail(ssl_error(std::string("certificate extension ") + OBJ_nid2sn(nid) + "=" + value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return fail(ssl_error(std::string("add extension ") + OBJ_nid2sn(nid)));
  return {};
}

struct Subject {
  std::string common_name;
  Role role;
};

struct Signer {
  X509* cert = nullptr;  // null: self-signed (the CA)
  EVP_PKEY* key = nullptr;
};

// Builds and signs one certificate for `key`. `sans` are "DNS:x" / "IP:y" entries (leaves only).
Result<X509Ptr> make_certificate(const Subject& subject, EVP_PKEY* key, const Signer& signer, bool is_ca,
                                 const std::vector<std::string>& sans) {
  X509Ptr cert(X509_new());
  if (!cert) return fail(ssl_error("allocate certificate"));
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial_bytes[16];
  if (RAND_bytes(serial_bytes, sizeof serial_bytes) != 1) return fail(ssl_error("random serial"));
  serial_bytes[0] &= 0x7f;  // positive
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  if (!serial || !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get()))) {
    BN_free(serial);
    return fail(ssl_error("set serial"));
  }
  BN_free(serial);
  // Five minutes of slack for clocks that are slightly behind the one that issued it.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), (is_ca ? kCaValidDays : kLeafValidDays) * 86400L);

  X509_NAME* name = X509_get_subject_name(cert.get());
  auto add_name = [&](const char* field, std::string_view value) {
    return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                      static_cast<int>(value.size()), -1, 0) == 1;
  };
  const std::string_view ou = is_ca ? std::string_view("ca") : to_string(subject.role);
  if (!add_name("O", kOrganization) || !add_name("OU", ou) || !add_name("CN", subject.common_name))
    return fail(ssl_error("certificate subject"));
  X509* issuer = signer.cert ? signer.cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1 || X509_set_pubkey(cert.get(), key) != 1)
    return fail(ssl_error("certificate issuer/key"));

  std::vector<std::pair<int, std::string>> extensions;
  if (is_ca) {
    extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"},
                  {NID_subject_key_identifier, "hash"}};
  } else {
    extensions = {{NID_basic_constraints, "critical,CA:FALSE"},
                  {NID_key_usage, "critical,digitalSignature,keyAgreement"},
                  {NID_ext_key_usage, subject.role == Role::collector ? "serverAuth" : "clientAuth"},
                  {NID_subject_key_identifier, "hash"},
                  {NID_authority_key_identifier, "keyid:always"}};
    if (!sans.empty()) {
      std::string joined;
      for (const auto& san : sans) joined += (joined.empty() ? "" : ",") + san;
      extensions.emplace_back(NID_subject_alt_name, joined);
    }
  }
  for (const auto& [nid, value] : extensions) {
    if (auto ok = add_extension(cert.get(), issuer, nid, value); !ok) return fail(std::move(ok.error()));
  }
  if (X509_sign(cert.get(), signer.key ? signer.key : key, EVP_sha256()) <= 0)
    return fail(ssl_error("sign certificate for " + subject.common_name));
  return cert;
}

// An address in a SAN list: literal IPs as IP:, everything else as DNS:.
std::string san_entry(const std::string& name) {
  const bool is_ip = name.find(':') != std::string::npos ||
                     name.find_first_not_of("0123456789.") == std::string::npos;
  return (is_ip ? "IP:" : "DNS:") + name;
}

class PkiWriter {
 public:
  PkiWriter(std::string dir, InitReport& report) : dir_(std::move(dir)), report_(report) {}

  // Writes key + certificate for `subject` under `base` ("collector", "agents/x/agent") unless the
  // certificate already exists; returns the certificate PEM either way.
  Result<std::string> leaf(const std::string& base, const Subject& subject, const Signer& ca,
                           const std::vector<std::string>& sans) {
    const std::string cert_path = dir_ + "/" + base + ".pem";
    const std::string key_path = dir_ + "/" + base + "-key.pem";
    if (file_exists(cert_path)) {
      if (!file_exists(key_path)) return fail(Error{ENOENT, cert_path + " exists without its key " + key_path});
      report_.kept.push_back(cert_path);
      report_.kept.push_back(key_path);
      return identity::read_text_file(cert_path);
    }
    auto key = new_key();
    if (!key) return fail(std::move(key.error()));
    auto cert = make_certificate(subject, key->get(), ca, false, sans);
    if (!cert) return fail(std::move(cert.error()));
    auto kpem = key_pem(key->get());
    auto cpem = cert_pem(cert->get());
    if (!kpem) return fail(std::move(kpem.error()));
    if (!cpem) return fail(std::move(cpem.error()));
    if (auto ok = write(key_path, *kpem, 0600); !ok) return fail(std::move(ok.error()));
    if (auto ok = write(cert_path, *cpem, 0644); !ok) return fail(std::move(ok.error()));
    return *cpem;
  }

  Result<void> write(const std::string& path, std::string_view content, mode_t mode) {
    if (auto ok = write_file_atomically(path, content, mode); !ok) return ok;
    // write_file_atomically creates with `mode` under the umask; state the mode exactly.
    if (::chmod(path.c_str(), mode) != 0) return fail(Error::from_current_errno("chmod " + path));
    report_.created.push_back(path);
    return {};
  }

  // Copies `content` to `path` unless it exists.
  Result<void> copy_if_missing(const std::string& path, std::string_view content, mode_t mode) {
    if (file_exists(path)) {
      report_.kept.push_back(path);
      return {};
    }
    return write(path, content, mode);
  }

 private:
  std::string dir_;
  InitReport& report_;
};

}  // namespace

std::string_view to_string(Role role) {
  switch (role) {
    case Role::collector: return "collector";
    case Role::agent: return "agent";
    case Role::operator_: return "operator";
  }
  return "unknown";
}

std::optional<Role> parse_role(std::string_view text) {
  if (text == "collector") return Role::collector;
  if (text == "agent") return Role::agent;
  if (text == "operator") return Role::operator_;
  return std::nullopt;
}

bool is_valid_identity_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<InitReport> init_pki(const InitOptions& options) {
  if (options.dir.empty()) return fail(Error{EINVAL, "certs init: no directory given"});
  for (const auto& name : options.agents) {
    if (!is_valid_identity_name(name))
      return fail(Error{EINVAL, "certs init: agent name '" + name + "' is not 1-64 of [A-Za-z0-9._-]"});
  }
  if (!is_valid_identity_name(options.hostname))
    return fail(Error{EINVAL, "certs init: hostname '" + options.hostname + "' is not 1-64 of [A-Za-z0-9._-]"});
  if (!is_valid_identity_name(options.operator_name))
    return fail(Error{EINVAL, "certs init: operator name '" + options.operator_name + "' is not 1-64 of [A-Za-z0-9._-]"});
  if (auto ok = make_directories(options.dir, 0700); !ok) return fail(std::move(ok.error()));

  InitReport report;
  PkiWriter writer(options.dir, report);
  const std::string ca_path = options.dir + "/ca.pem";
  const std::string ca_key_path = options.dir + "/ca-key.pem";

  X509Ptr ca_cert;
  KeyPtr ca_key;
  std::string ca_text;
  if (file_exists(ca_path) || file_exists(ca_key_path)) {
    // Reuse the fleet's CA: certificates issued now must chain to the one agents already trust.
    auto cert_text = identity::read_text_file(ca_path);
    if (!cert_text) return fail(std::move(cert_text.error()));
    auto key_text = identity::read_text_file(ca_key_path);
    if (!key_text)
      return fail(Error{key_text.error().code, "certs init: " + key_text.error().message +
                                                   " (the CA certificate exists but its key cannot be read; "
                                                   "nothing can be issued)"});
    auto cert = parse_cert(*cert_text, ca_path);
    if (!cert) return fail(std::move(cert.error()));
    auto key = parse_key(*key_text, ca_key_path);
    if (!key) return fail(std::move(key.error()));
    if (X509_check_private_key(cert->get(), key->get()) != 1)
      return fail(Error{EINVAL, "certs init: " + ca_key_path + " is not the key of " + ca_path});
    ca_cert = std::move(*cert);
    ca_key = std::move(*key);
    ca_text = std::move(*cert_text);
    report.kept.push_back(ca_path);
    report.kept.push_back(ca_key_path);
  } else {
    auto key = new_key();
    if (!key) return fail(std::move(key.error()));
    auto cert = make_certificate({"nhiguard fleet CA", Role::collector}, key->get(), {}, true, {});
    if (!cert) return fail(std::move(cert.error()));
    auto kpem = key_pem(key->get());
    if (!kpem) return fail(std::move(kpem.error()));
    auto cpem = cert_pem(cert->get());
    if (!cpem) return fail(std::move(cpem.error()));
    if (auto ok = writer.write(ca_key_path, *kpem, 0600); !ok) return fail(std::move(ok.error()));
    if (auto ok = writer.write(ca_path, *cpem, 0644); !ok) return fail(std::move(ok.error()));
    ca_cert = std::move(*cert);
    ca_key = std::move(*key);
    ca_text = std::move(*cpem);
  }
  const Signer ca{ca_cert.get(), ca_key.get()};

  std::vector<std::string> collector_sans = {"DNS:localhost", "IP:127.0.0.1", "IP:::1", san_entry(options.hostname)};
  for (const auto& san : options.collector_sans) collector_sans.push_back(san_entry(san));
  if (auto ok = writer.leaf("collector", {options.hostname, Role::collector}, ca, collector_sans); !ok)
    return fail(std::move(ok.error()));
  if (auto ok = writer.leaf("agent", {options.hostname, Role::agent}, ca, {}); !ok) return fail(std::move(ok.error()));
  if (auto ok = writer.leaf("operator", {options.operator_name, Role::operator_}, ca, {}); !ok)
    return fail(std::move(ok.error()));
  for (const auto& name : options.agents) {
    const std::string sub = options.dir + "/agents/" + name;
    if (auto ok = make_directories(sub, 0700); !ok) return fail(std::move(ok.error()));
    if (auto ok = writer.leaf("agents/" + name + "/agent", {name, Role::agent}, ca, {}); !ok)
      return fail(std::move(ok.error()));
    if (auto ok = writer.copy_if_missing(sub + "/ca.pem", ca_text, 0644); !ok) return fail(std::move(ok.error()));
  }
  return report;
}

Result<CertificateIdentity> read_certificate_identity(std::string_view pem) {
  auto cert = parse_cert(pem, "of the peer");
  if (!cert) return fail(std::move(cert.error()));
  X509_NAME* name = X509_get_subject_name(cert->get());
  auto field = [&](int nid) -> std::optional<std::string> {
    const int index = X509_NAME_get_index_by_NID(name, nid, -1);
    if (index < 0) return std::nullopt;
    // A second entry of the same field would make the identity ambiguous: refuse it.
    if (X509_NAME_get_index_by_NID(name, nid, index) >= 0) return std::nullopt;
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) return std::nullopt;
    std::string text(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return text;
  };
  CertificateIdentity identity;
  auto cn = field(NID_commonName);
  if (!cn || cn->empty()) return fail(Error{EINVAL, "peer certificate has no single common name"});
  identity.common_name = std::move(*cn);
  if (auto ou = field(NID_organizationalUnitName)) identity.role = parse_role(*ou);
  return identity;
}

Result<TlsMaterial> load_tls_material(const std::string& dir, std::string_view base) {
  TlsMaterial material;
  const std::string paths[3] = {dir + "/ca.pem", dir + "/" + std::string(base) + ".pem",
                                dir + "/" + std::string(base) + "-key.pem"};
  std::string* targets[3] = {&material.ca_pem, &material.cert_pem, &material.key_pem};
  for (int i = 0; i < 3; ++i) {
    auto text = identity::read_text_file(paths[i]);
    if (!text)
      return fail(Error{text.error().code, text.error().message + " (create the PKI with `nhiguardctl certs init " +
                                               dir + "`)"});
    *targets[i] = std::move(*text);
  }
  return material;
}

}  // namespace nhiguard::pki
