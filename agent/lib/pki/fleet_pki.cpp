#include "pki/fleet_pki.h"

#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include <fmt/format.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/enum_names.h"
#include "common/filesystem.h"

namespace nhiguard::pki {
namespace {

constexpr long kCaValidDays = 3650;
constexpr long kLeafValidDays = 825;
constexpr std::string_view kOrganization = "nhiguard";

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
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

Error ssl_error(const std::string& what) {
  return Error{EIO, what + ": " + openssl_error()};
}

bool file_exists(const std::string& path) {
  struct stat st{};
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
  const bool is_ip = name.find(':') != std::string::npos || name.find_first_not_of("0123456789.") == std::string::npos;
  return (is_ip ? "IP:" : "DNS:") + name;
}

class PkiWriter {
 public:
  explicit PkiWriter(InitReport& report) : report_(report) {}

  // Writes key + certificate for `subject` as dir/<base>.pem and dir/<base>-key.pem (dir made 0700)
  // unless the certificate already exists, and ca.pem beside them; returns the certificate PEM.
  Result<std::string> leaf(const std::string& dir, const std::string& base, const Subject& subject, const Signer& ca,
                           const std::string& ca_pem, const std::vector<std::string>& sans) {
    if (auto ok = make_directories(dir, 0700); !ok) return fail(std::move(ok.error()));
    if (auto ok = copy_if_missing(dir + "/ca.pem", ca_pem, 0644); !ok) return fail(std::move(ok.error()));
    const std::string cert_path = dir + "/" + base + ".pem";
    const std::string key_path = dir + "/" + base + "-key.pem";
    if (file_exists(cert_path)) {
      if (!file_exists(key_path)) return fail(Error{ENOENT, cert_path + " exists without its key " + key_path});
      report_.kept.push_back(cert_path);
      report_.kept.push_back(key_path);
      return read_text_file(cert_path);
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

  // Moves `from` to `to` (same file system: a rename, so the key never exists as a copy). When `to`
  // already is the same file (a hard link an installer made), `from` is only unlinked; when it is
  // another file, nothing is touched and the caller learns which two differ.
  Result<void> move(const std::string& from, const std::string& to) {
    struct stat src{}, dst{};
    if (::stat(from.c_str(), &src) != 0) return {};
    if (::stat(to.c_str(), &dst) == 0) {
      if (src.st_dev != dst.st_dev || src.st_ino != dst.st_ino)
        return fail(Error{EEXIST, fmt::format("certs init: both {} and {} exist and differ; keep the one in use and "
                                              "remove the other",
                                              from, to)});
      if (::unlink(from.c_str()) != 0) return fail(Error::from_current_errno("unlink " + from));
    } else if (::rename(from.c_str(), to.c_str()) != 0) {
      return fail(Error::from_current_errno(fmt::format("move {} to {}", from, to)));
    }
    report_.moved.push_back(from + " -> " + to);
    return {};
  }

 private:
  InitReport& report_;
};

// The CA of a PKI directory: dir/ca/ (this layout) or dir itself (a flat, older one).
struct LoadedCa {
  X509Ptr cert;
  KeyPtr key;
  std::string pem;
};

Result<std::optional<LoadedCa>> load_ca(const std::string& dir, std::string_view command) {
  for (const std::string& ca_dir : {dir + "/ca", dir}) {
    const std::string ca_path = ca_dir + "/ca.pem";
    const std::string key_path = ca_dir + "/ca-key.pem";
    if (!file_exists(key_path)) continue;
    auto cert_text = read_text_file(ca_path);
    if (!cert_text) return fail(std::move(cert_text.error()));
    auto key_text = read_text_file(key_path);
    if (!key_text) return fail(Error{key_text.error().code, fmt::format("{}: {}", command, key_text.error().message)});
    auto cert = parse_cert(*cert_text, ca_path);
    if (!cert) return fail(std::move(cert.error()));
    auto key = parse_key(*key_text, key_path);
    if (!key) return fail(std::move(key.error()));
    if (X509_check_private_key(cert->get(), key->get()) != 1)
      return fail(Error{EINVAL, fmt::format("{}: {} is not the key of {}", command, key_path, ca_path)});
    return std::optional<LoadedCa>(LoadedCa{std::move(*cert), std::move(*key), std::move(*cert_text)});
  }
  return std::optional<LoadedCa>();
}

// A flat directory (every file in DIR, as certs init wrote it before role directories): moves the
// CA key to ca/ and each role's pair to its directory, so the directory an agent is pointed at no
// longer holds the CA or operator key. ca.pem stays where it is (public) and is copied beside each.
Result<void> migrate_flat_layout(const std::string& dir, PkiWriter& writer) {
  const std::string flat_ca = dir + "/ca.pem";
  if (!file_exists(dir + "/ca-key.pem") && !file_exists(dir + "/collector-key.pem") &&
      !file_exists(dir + "/agent-key.pem") && !file_exists(dir + "/operator-key.pem"))
    return {};
  auto ca_text = read_text_file(flat_ca);
  if (!ca_text)
    return fail(
        Error{ca_text.error().code, "certs init: a flat PKI without its CA certificate: " + ca_text.error().message});
  if (file_exists(dir + "/ca-key.pem")) {
    if (auto ok = make_directories(dir + "/ca", 0700); !ok) return ok;
    if (auto ok = writer.copy_if_missing(dir + "/ca/ca.pem", *ca_text, 0644); !ok) return ok;
    if (auto ok = writer.move(dir + "/ca-key.pem", dir + "/ca/ca-key.pem"); !ok) return ok;
  }
  for (const char* base : {"collector", "agent", "operator"}) {
    const std::string key = dir + "/" + base + "-key.pem", cert = dir + "/" + base + ".pem";
    if (!file_exists(key) && !file_exists(cert)) continue;
    const std::string role_dir = dir + "/" + base;
    if (auto ok = make_directories(role_dir, 0700); !ok) return ok;
    if (auto ok = writer.copy_if_missing(role_dir + "/ca.pem", *ca_text, 0644); !ok) return ok;
    // The key first: a certificate alone in the role directory would be read without its key.
    if (auto ok = writer.move(key, role_dir + "/" + base + "-key.pem"); !ok) return ok;
    if (auto ok = writer.move(cert, role_dir + "/" + base + ".pem"); !ok) return ok;
  }
  return {};
}

std::string_view plural_dir(Role role) {
  switch (role) {
    case Role::collector:
      return "collectors";
    case Role::agent:
      return "agents";
    case Role::operator_:
      return "operators";
  }
  return "unknown";
}

}  // namespace

constexpr auto kRoles =
    enum_names<Role>({{Role::collector, "collector"}, {Role::agent, "agent"}, {Role::operator_, "operator"}});

std::string_view to_string(Role role) {
  return kRoles.name(role);
}

std::optional<Role> parse_role(std::string_view text) {
  return kRoles.parse(text);
}

bool is_valid_identity_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
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
    return fail(
        Error{EINVAL, "certs init: operator name '" + options.operator_name + "' is not 1-64 of [A-Za-z0-9._-]"});
  if (auto ok = make_directories(options.dir, 0700); !ok) return fail(std::move(ok.error()));

  InitReport report;
  PkiWriter writer(report);
  const std::string ca_dir = options.dir + "/ca";
  auto loaded = load_ca(options.dir, "certs init");
  if (!loaded) return fail(std::move(loaded.error()));
  if (!*loaded && file_exists(options.dir + "/ca.pem")) {
    return fail(Error{ENOENT, fmt::format("certs init: {}/ca.pem exists but no CA key is here ({}/ca-key.pem): "
                                          "this is not the CA host; issue certificates where the CA key is kept "
                                          "(`nhiguardctl certs issue ROLE NAME --pki DIR`) and copy them here",
                                          options.dir, ca_dir)});
  }
  // Only once the CA is known to be here: a failed init leaves an older layout as it was.
  if (auto ok = migrate_flat_layout(options.dir, writer); !ok) return fail(std::move(ok.error()));
  LoadedCa ca;
  if (*loaded) {
    // Reuse the fleet's CA: certificates issued now must chain to the one agents already trust.
    ca = std::move(**loaded);
    report.kept.push_back(ca_dir + "/ca.pem");
    report.kept.push_back(ca_dir + "/ca-key.pem");
  } else {
    auto key = new_key();
    if (!key) return fail(std::move(key.error()));
    auto cert = make_certificate({"nhiguard fleet CA", Role::collector}, key->get(), {}, true, {});
    if (!cert) return fail(std::move(cert.error()));
    auto kpem = key_pem(key->get());
    if (!kpem) return fail(std::move(kpem.error()));
    auto cpem = cert_pem(cert->get());
    if (!cpem) return fail(std::move(cpem.error()));
    if (auto ok = make_directories(ca_dir, 0700); !ok) return fail(std::move(ok.error()));
    if (auto ok = writer.write(ca_dir + "/ca-key.pem", *kpem, 0600); !ok) return fail(std::move(ok.error()));
    if (auto ok = writer.write(ca_dir + "/ca.pem", *cpem, 0644); !ok) return fail(std::move(ok.error()));
    ca = {std::move(*cert), std::move(*key), std::move(*cpem)};
  }
  if (auto ok = writer.copy_if_missing(options.dir + "/ca.pem", ca.pem, 0644); !ok) return fail(std::move(ok.error()));
  if (options.ca_only) return report;
  const Signer signer{ca.cert.get(), ca.key.get()};

  std::vector<std::string> collector_sans = {"DNS:localhost", "IP:127.0.0.1", "IP:::1", san_entry(options.hostname)};
  for (const auto& san : options.collector_sans) collector_sans.push_back(san_entry(san));
  const std::string& dir = options.dir;
  if (auto ok = writer.leaf(dir + "/collector", "collector", {options.hostname, Role::collector}, signer, ca.pem,
                            collector_sans);
      !ok)
    return fail(std::move(ok.error()));
  if (auto ok = writer.leaf(dir + "/agent", "agent", {options.hostname, Role::agent}, signer, ca.pem, {}); !ok)
    return fail(std::move(ok.error()));
  if (auto ok =
          writer.leaf(dir + "/operator", "operator", {options.operator_name, Role::operator_}, signer, ca.pem, {});
      !ok)
    return fail(std::move(ok.error()));
  for (const auto& name : options.agents) {
    if (auto ok = writer.leaf(dir + "/agents/" + name, "agent", {name, Role::agent}, signer, ca.pem, {}); !ok)
      return fail(std::move(ok.error()));
  }
  return report;
}

Result<InitReport> issue_certificate(const IssueOptions& options) {
  if (options.pki_dir.empty()) return fail(Error{EINVAL, "certs issue: no PKI directory given"});
  if (!is_valid_identity_name(options.name))
    return fail(Error{EINVAL, "certs issue: name '" + options.name + "' is not 1-64 of [A-Za-z0-9._-]"});
  if (!options.collector_sans.empty() && options.role != Role::collector)
    return fail(Error{EINVAL, "certs issue: --collector-san is for collector certificates only"});
  auto loaded = load_ca(options.pki_dir, "certs issue");
  if (!loaded) return fail(std::move(loaded.error()));
  if (!*loaded)
    return fail(Error{ENOENT, fmt::format("certs issue: no CA key in {0}/ca/ca-key.pem (nor {0}/ca-key.pem): run "
                                          "this on the CA host, where `nhiguardctl certs init {0} --ca-only` made it",
                                          options.pki_dir)});
  const LoadedCa& ca = **loaded;
  const std::string out = options.out_dir.empty()
                              ? fmt::format("{}/{}/{}", options.pki_dir, plural_dir(options.role), options.name)
                              : options.out_dir;
  std::vector<std::string> sans;
  if (options.role == Role::collector) {
    sans.push_back(san_entry(options.name));
    for (const auto& san : options.collector_sans) sans.push_back(san_entry(san));
  }
  InitReport report;
  PkiWriter writer(report);
  if (auto ok = writer.leaf(out, std::string(to_string(options.role)), {options.name, options.role},
                            {ca.cert.get(), ca.key.get()}, ca.pem, sans);
      !ok)
    return fail(std::move(ok.error()));
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

std::string tls_material_dir(const std::string& dir, std::string_view base) {
  const std::string role_dir = dir + "/" + std::string(base);
  return file_exists(role_dir + "/" + std::string(base) + ".pem") ? role_dir : dir;
}

Result<TlsMaterial> load_tls_material(const std::string& dir, std::string_view base) {
  TlsMaterial material;
  const std::string from = tls_material_dir(dir, base);
  const std::string paths[3] = {from + "/ca.pem", from + "/" + std::string(base) + ".pem",
                                from + "/" + std::string(base) + "-key.pem"};
  std::string* targets[3] = {&material.ca_pem, &material.cert_pem, &material.key_pem};
  for (int i = 0; i < 3; ++i) {
    auto text = read_text_file(paths[i]);
    if (!text)
      return fail(Error{text.error().code,
                        fmt::format("{} (looked in {}/{} and {}; create the PKI with `nhiguardctl certs init {}`)",
                                    text.error().message, dir, base, dir, dir)});
    *targets[i] = std::move(*text);
  }
  return material;
}

}  // namespace nhiguard::pki
