#include "reporter/agent_pki.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

namespace nhiguard::reporter {
namespace {

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Error::from_current_errno("read " + path));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().empty()) return fail(Error{EINVAL, "read " + path + ": empty file"});
  return text.str();
}

}  // namespace

Result<std::string> certificate_common_name(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return fail(Error{ENOMEM, "certificate: out of memory"});
  std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return fail(Error{EINVAL, "not a PEM certificate"});
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const int index = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
  if (index < 0) return fail(Error{EINVAL, "the certificate's subject has no CN"});
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return fail(Error{EINVAL, "the certificate's CN is not valid text"});
  std::string name(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return name;
}

Result<AgentPki> load_agent_pki(const std::string& dir) {
  AgentPki pki;
  const std::string ca = dir + "/ca.pem";
  const std::string cert = dir + "/agent.pem";
  const std::string key = dir + "/agent-key.pem";
  auto ca_pem = read_file(ca);
  if (!ca_pem) return fail(std::move(ca_pem.error()));
  auto cert_pem = read_file(cert);
  if (!cert_pem) return fail(std::move(cert_pem.error()));
  auto key_pem = read_file(key);
  if (!key_pem) return fail(std::move(key_pem.error()));
  auto name = certificate_common_name(*cert_pem);
  if (!name) return fail(Error{name.error().code, fmt::format("{}: {}", cert, name.error().message)});
  pki.ca_pem = std::move(*ca_pem);
  pki.cert_pem = std::move(*cert_pem);
  pki.key_pem = std::move(*key_pem);
  pki.common_name = std::move(*name);
  return pki;
}

}  // namespace nhiguard::reporter
