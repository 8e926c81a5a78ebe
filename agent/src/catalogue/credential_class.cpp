#include "catalogue/credential_class.h"

#include <array>
#include <utility>

namespace nhiguard::catalogue {
namespace {

// One table for both directions so the two can never disagree.
constexpr std::array<std::pair<CredentialClass, std::string_view>, 13> kNames{{
    {CredentialClass::aws, "aws"},
    {CredentialClass::gcp, "gcp"},
    {CredentialClass::azure, "azure"},
    {CredentialClass::kube_sa_token, "kube-sa-token"},
    {CredentialClass::kubeconfig, "kubeconfig"},
    {CredentialClass::ssh_key, "ssh-key"},
    {CredentialClass::docker_config, "docker-config"},
    {CredentialClass::vault_token, "vault-token"},
    {CredentialClass::netrc, "netrc"},
    {CredentialClass::git, "git"},
    {CredentialClass::pgpass, "pgpass"},
    {CredentialClass::dotenv, "dotenv"},
    {CredentialClass::custom, "custom"},
}};

}  // namespace

std::string_view to_string(CredentialClass credential_class) {
  for (const auto& [value, name] : kNames) {
    if (value == credential_class) return name;
  }
  return "unknown";
}

std::optional<CredentialClass> parse_credential_class(std::string_view text) {
  for (const auto& [value, name] : kNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view credential_class_names() {
  return "aws, gcp, azure, kube-sa-token, kubeconfig, ssh-key, docker-config, vault-token, netrc, git, "
         "pgpass, dotenv, custom";
}

}  // namespace nhiguard::catalogue
