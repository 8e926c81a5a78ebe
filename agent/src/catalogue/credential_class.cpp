#include "catalogue/credential_class.h"

#include <string>

#include "common/enum_names.h"

namespace nhiguard::catalogue {
namespace {

constexpr auto kNames = enum_names<CredentialClass>({
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
});

}  // namespace

std::string_view to_string(CredentialClass credential_class) {
  return kNames.name(credential_class);
}

std::optional<CredentialClass> parse_credential_class(std::string_view text) {
  return kNames.parse(text);
}

std::string_view credential_class_names() {
  static const std::string names = kNames.list();
  return names;
}

}  // namespace nhiguard::catalogue
