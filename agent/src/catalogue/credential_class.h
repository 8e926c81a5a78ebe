// CredentialClass: what kind of secret a catalogued file holds (aws, ssh-key, ...).
//
// The numeric values are explicit and stable: they are written into the kernel's credential map
// (nhg_credential_value.class_id), into the event log and into reports. Add new classes at the end;
// never renumber or reuse a value. The text forms are the ones used in agent.yaml, policy files and
// JSON output (see DESIGN.md, "credential identity").
//
// Thread-safety: pure functions over constant data.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace nhiguard::catalogue {

enum class CredentialClass : uint32_t {
  aws = 1,
  gcp = 2,
  azure = 3,
  kube_sa_token = 4,
  kubeconfig = 5,
  ssh_key = 6,
  docker_config = 7,
  vault_token = 8,
  netrc = 9,
  git = 10,
  pgpass = 11,
  dotenv = 12,
  custom = 13,
};

// The text form: "aws", "kube-sa-token", "ssh-key", ... An out-of-range value gives "unknown".
std::string_view to_string(CredentialClass credential_class);

// Inverse of to_string; exact, case-sensitive. std::nullopt for any other text.
std::optional<CredentialClass> parse_credential_class(std::string_view text);

// Every class, in numeric order (for help texts and "did you mean" lists).
std::string_view credential_class_names();

}  // namespace nhiguard::catalogue
