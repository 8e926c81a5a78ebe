// LearnedSet: what the agent saw while learning — which identities read which credentials and where
// tainted processes of each identity connected — and the allow-list policy that permits exactly that.
//
// Learning runs for a period (start(), `nhiguardctl policy learn --for DUR`); outside it nothing is
// recorded. What was learned stays: it is the "learned set" of the blast-radius gate (a credential
// read by more than one workload is shared) and survives restarts through to_json()/load_json()
// (the daemon keeps it in <state_dir>/learned.json).
//
// Identities are recorded as the selector a policy would use for them: the unit of a system
// service, the container id of a container, the pod uid of a pod, the user unit and uid of a user
// unit, else exe and uid. suggest_yaml() writes a complete policy document (version 1,
// credentials with their readers, identities with their egress) that `nhiguardctl policy check`
// accepts.
//
// Bounded: at most kMaxCredentials credentials with kMaxReadersPerCredential readers each, and
// kMaxIdentities identities with kMaxDestinationsPerIdentity destinations each; what does not fit
// is counted (summary "dropped"), never silently lost, and the suggested policy says so.
//
// Thread-safety: internally locked; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"
#include "policy/decision_engine.h"
#include "policy/policy.h"

namespace nhiguard::policy {

// The selector learning records for an identity (see the header comment). Values are escaped so
// they match literally.
IdentitySelector learned_selector(const IdentityFacts& identity);

class LearnedSet {
 public:
  static constexpr size_t kMaxCredentials = 4096;
  static constexpr size_t kMaxReadersPerCredential = 256;
  static constexpr size_t kMaxIdentities = 4096;
  static constexpr size_t kMaxDestinationsPerIdentity = 256;

  // Learning from now_ns until until_ns (CLOCK_REALTIME ns); extends or restarts a running period.
  void start(int64_t now_ns, int64_t until_ns);
  void stop();
  bool active(int64_t now_ns) const;

  // Record one observation while active(now_ns); true when it added something new.
  bool record_read(int64_t now_ns, const CredentialFacts& credential, const IdentityFacts& identity);
  bool record_egress(int64_t now_ns, const IdentityFacts& identity, const DestinationFacts& destination);

  // The identities seen reading the credential (by path or one of its aliases), as selector
  // descriptions (IdentitySelector::describe of learned_selector).
  std::set<std::string> readers_of(const CredentialFacts& credential) const;

  // {"learning": bool, "since", "until", "credentials": N, "identities": N, "observations": N,
  //  "dropped": N}
  nlohmann::json summary(int64_t now_ns) const;

  nlohmann::json to_json() const;
  // Replaces the content with a to_json() value; EINVAL naming the first bad field.
  Result<void> load_json(const nlohmann::json& value);

  // The allow-list policy document; `comment` lines go at the top as YAML comments.
  std::string suggest_yaml(std::string_view comment) const;

  // True once after each change (the daemon persists then).
  bool take_dirty();

 private:
  struct Credential {
    catalogue::CredentialClass credential_class = catalogue::CredentialClass::custom;
    std::map<std::string, IdentitySelector> readers;  // by describe()
  };
  struct Identity {
    IdentitySelector selector;
    std::set<std::string> destinations;  // "a.b.c.d:port", "[v6]:port"
  };

  mutable std::mutex mutex_;
  int64_t since_ns_ = 0;
  int64_t until_ns_ = 0;
  uint64_t observations_ = 0;
  uint64_t dropped_ = 0;                           // observations that did not fit the bounds
  std::map<std::string, Credential> credentials_;  // by path
  std::map<std::string, Identity> identities_;     // by selector describe()
  bool dirty_ = false;
};

}  // namespace nhiguard::policy
