// CredentialTables: the detection maps the agent writes: the credential inodes the open programs
// match (nhg_credentials with its prefilter) and the candidate-name table for credential files that
// appear later (nhg_candidate_names, _pairs, _prefixes with their prefilter). KernelCredentialTables
// writes the pinned BPF maps; a unit test keeps them in memory, so catalogue sync runs without root.
//
// Thread-safety: as the implementation (KernelCredentialTables: one thread at a time).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "nhiguard_abi.h"

namespace nhiguard::kernel {

// A (parent directory name, file name) pair for files that may appear later; parent "" = any.
struct CandidateName {
  std::string parent;
  std::string name;
};

class CredentialTables {
 public:
  virtual ~CredentialTables() = default;

  virtual Result<void> upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value) = 0;
  virtual Result<void> remove_credential(const nhg_inode_key& key) = 0;
  virtual Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> credentials() const = 0;
  // Replaces the candidate-name table with exactly these entries (names over 63 bytes are refused).
  virtual Result<void> set_candidate_names(const std::vector<CandidateName>& names) = 0;
};

}  // namespace nhiguard::kernel
