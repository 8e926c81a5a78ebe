#include "policy/decision_engine.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "config/duration.h"

namespace nhiguard::policy {
namespace {

using containment::ActionKind;

bool owner_matches(const std::string& owner, const IdentityFacts& identity) {
  return owner == identity.uri || (!identity.unit.empty() && owner == identity.unit);
}

bool is_canary(const Policy& policy, const CredentialFacts& credential) {
  for (const auto& canary : policy.canaries) {
    if (canary.path == credential.path) return true;
    if (std::find(credential.aliases.begin(), credential.aliases.end(), canary.path) != credential.aliases.end()) {
      return true;
    }
  }
  return false;
}

Outcome cap(Outcome outcome, Outcome ceiling) {
  return std::min(outcome, ceiling);
}

Outcome mode_ceiling(RuleMode mode) {
  switch (mode) {
    case RuleMode::observe:
      return Outcome::observe;
    case RuleMode::alert:
      return Outcome::alert;
    case RuleMode::hold:
      return Outcome::hold;
    case RuleMode::enforce:
      return Outcome::contain;
  }
  return Outcome::observe;
}

std::string who(const IdentityFacts& identity) {
  std::string process = identity.comm.empty() ? fmt::format("pid {}", identity.pid)
                                              : fmt::format("{} (pid {})", identity.comm, identity.pid);
  return fmt::format("{} of {}", process, identity.uri.empty() ? identity.cgroup_path : identity.uri);
}

}  // namespace

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::observe:
      return "observe";
    case Outcome::alert:
      return "alert";
    case Outcome::hold:
      return "hold";
    case Outcome::contain:
      return "contain";
  }
  return "unknown";
}

std::string_view to_string(TriggerInput::Event event) {
  switch (event) {
    case TriggerInput::Event::credential_read:
      return "credential_read";
    case TriggerInput::Event::tainted_egress:
      return "tainted_egress";
    case TriggerInput::Event::memory_access:
      return "memory_access";
    case TriggerInput::Event::block_device_open:
      return "block_device_open";
  }
  return "unknown";
}

Outcome matrix_outcome(Confidence confidence, Impact impact) {
  static constexpr Outcome kMatrix[4][4] = {
      // impact:   low               medium            high              critical
      {Outcome::observe, Outcome::alert, Outcome::alert, Outcome::alert},     // low confidence
      {Outcome::contain, Outcome::hold, Outcome::hold, Outcome::hold},        // medium
      {Outcome::contain, Outcome::contain, Outcome::hold, Outcome::hold},     // high
      {Outcome::contain, Outcome::contain, Outcome::contain, Outcome::hold},  // certain
  };
  return kMatrix[static_cast<int>(confidence) - 1][static_cast<int>(impact) - 1];
}

const IdentityPolicy* DecisionEngine::class_entry(const IdentityFacts& identity) const {
  for (const auto& entry : policy_->identities) {
    if (!entry.class_name.empty() && entry.match.matches(identity)) return &entry;
  }
  return nullptr;
}

bool DecisionEngine::is_protected(const IdentityFacts& identity) const {
  for (const auto& selector : policy_->protected_identities) {
    if (selector.matches(identity)) return true;
  }
  const auto* entry = class_entry(identity);
  const auto* c = entry ? policy_->find_class(entry->class_name) : nullptr;
  return c && c->is_protected;
}

bool DecisionEngine::reader_allowed(const CredentialFacts& credential, const IdentityFacts& identity) const {
  for (const auto& entry : policy_->credentials) {
    if (!entry.covers(credential)) continue;
    if (entry.owner && owner_matches(*entry.owner, identity)) return true;
    for (const auto& reader : entry.readers) {
      if (reader.matches(identity)) return true;
    }
  }
  return false;
}

std::set<std::string> DecisionEngine::declared_readers(const CredentialFacts& credential) const {
  std::set<std::string> readers;
  for (const auto& entry : policy_->credentials) {
    if (!entry.covers(credential)) continue;
    // Written the way IdentitySelector::describe() writes the same workload, so that an owner
    // also listed as a reader (or learned) counts once.
    if (entry.owner) readers.insert((entry.owner->starts_with("spiffe://") ? "uri=" : "unit=") + *entry.owner);
    for (const auto& reader : entry.readers) readers.insert(reader.describe());
  }
  return readers;
}

bool DecisionEngine::block_device_reader_allowed(const IdentityFacts& identity) const {
  static const std::vector<IdentitySelector> kBuiltIn = default_block_device_readers();
  const auto& readers = policy_->block_device_readers ? *policy_->block_device_readers : kBuiltIn;
  return std::any_of(readers.begin(), readers.end(),
                     [&](const IdentitySelector& selector) { return selector.matches(identity); });
}

std::optional<TriggerKind> DecisionEngine::trigger_of(const TriggerInput& input) const {
  if (input.event == TriggerInput::Event::block_device_open) {
    if (block_device_reader_allowed(input.identity)) return std::nullopt;
    return TriggerKind::block_device_read;
  }
  if (!input.credential) return std::nullopt;
  if (input.event == TriggerInput::Event::memory_access) return TriggerKind::credential_memory_access;
  const auto& credential = *input.credential;
  if (input.event == TriggerInput::Event::credential_read) {
    if (is_canary(*policy_, credential)) return TriggerKind::canary_read;
    const bool covered = std::any_of(policy_->credentials.begin(), policy_->credentials.end(),
                                     [&](const CredentialPolicy& entry) { return entry.covers(credential); });
    if (covered && !reader_allowed(credential, input.identity)) return TriggerKind::unexpected_reader;
    return std::nullopt;
  }
  if (!input.destination) return std::nullopt;
  const auto& d = *input.destination;
  if (egress_allowed(policy_->default_egress, d.address, d.port)) return std::nullopt;
  for (const auto& entry : policy_->identities) {
    if (entry.match.matches(input.identity) && egress_allowed(entry.egress, d.address, d.port)) return std::nullopt;
  }
  return TriggerKind::unexpected_egress;
}

std::optional<Decision> DecisionEngine::decide(const TriggerInput& input, const GateFacts& facts) const {
  auto trigger = trigger_of(input);
  if (!trigger) return std::nullopt;

  const IdentityPolicy* entry = class_entry(input.identity);
  const IdentityClass* identity_class = entry ? policy_->find_class(entry->class_name) : nullptr;
  const Rule* rule = nullptr;
  for (const auto& candidate : policy_->rules) {
    if (candidate.trigger != *trigger) continue;
    if (!candidate.credential_classes.empty() &&
        (!input.credential || std::find(candidate.credential_classes.begin(), candidate.credential_classes.end(),
                                        input.credential->credential_class) == candidate.credential_classes.end())) {
      continue;
    }
    if (!candidate.identity_classes.empty() &&
        (!identity_class || std::find(candidate.identity_classes.begin(), candidate.identity_classes.end(),
                                      identity_class->name) == candidate.identity_classes.end())) {
      continue;
    }
    rule = &candidate;
    break;
  }
  if (!rule) return std::nullopt;

  Decision d;
  d.rule = rule->name;
  d.trigger = *trigger;
  d.confidence = rule->confidence;
  if (input.taint_inferred) {
    // Another process of the cgroup read the credential: a pipe's sender, or unrelated egress.
    const Confidence lowered =
        d.confidence == Confidence::low ? Confidence::low : static_cast<Confidence>(static_cast<int>(d.confidence) - 1);
    d.gates.push_back({"inferred_taint", true,
                       fmt::format("the process read no credential; its cgroup's window attributed it: confidence "
                                   "{} -> {}",
                                   to_string(d.confidence), to_string(lowered))});
    d.confidence = lowered;
  }
  d.rule_mode = rule->mode;
  d.identity_class = identity_class ? identity_class->name : "";
  d.impact = identity_class ? identity_class->impact : policy_->default_impact;
  // A raw block device read concerns no catalogued credential: the device stands in its place.
  const CredentialFacts device_facts{.path = input.device};
  const auto& credential = input.credential ? *input.credential : device_facts;
  const auto& identity = input.identity;

  // 1. The matrix.
  d.matrix_outcome = matrix_outcome(d.confidence, d.impact);
  Outcome outcome = d.matrix_outcome;
  d.gates.push_back({"matrix", outcome < Outcome::contain,
                     fmt::format("confidence {} x impact {}{} -> {}", to_string(d.confidence), to_string(d.impact),
                                 identity_class ? fmt::format(" (class {})", identity_class->name) : " (no class)",
                                 to_string(outcome))});

  // 2. The action: narrowest of the response; irreversible only when certain and unshared.
  std::set<std::string> reader_set = declared_readers(credential);
  const size_t declared = reader_set.size();
  reader_set.insert(facts.learned_readers.begin(), facts.learned_readers.end());
  const size_t readers = reader_set.size();
  const bool shared_identity = (identity_class && identity_class->shared) || readers > 1;
  std::vector<ActionKind> response =
      rule->response.empty() ? std::vector<ActionKind>{ActionKind::block_egress} : rule->response;
  std::optional<ActionKind> action;
  for (ActionKind kind : response) {
    if (containment::is_reversible(kind)) {
      action = kind;
      break;
    }
    const bool allowed = d.confidence == Confidence::certain && !shared_identity;
    d.gates.push_back(
        {"irreversible", !allowed,
         allowed ? fmt::format("{} allowed: confidence certain, identity not shared", containment::to_string(kind))
                 : fmt::format("{} refused: needs confidence certain (is {}) and an unshared identity "
                               "(class shared: {}, credential readers: {})",
                               containment::to_string(kind), to_string(d.confidence),
                               identity_class && identity_class->shared, readers)});
    if (allowed) {
      action = kind;
      break;
    }
  }
  if (!action) {
    outcome = cap(outcome, Outcome::hold);
    action = response.front();  // a person may still approve the irreversible action
  }
  const bool needs_cgroup =
      *action == ActionKind::block_egress || *action == ActionKind::freeze || *action == ActionKind::deny_credential;
  const bool narrow = needs_cgroup ? !identity.cgroup_path.empty() && identity.cgroup_path != "/" : identity.pid != 0;
  d.gates.push_back(
      {"narrow_target", !narrow,
       narrow ? fmt::format("{} on {}", containment::to_string(*action),
                            needs_cgroup ? "cgroup " + identity.cgroup_path : fmt::format("pid {}", identity.pid))
              : fmt::format("no narrow target for {}: the process is in the cgroup root",
                            containment::to_string(*action))});
  if (!narrow) outcome = cap(outcome, Outcome::alert);

  // 3. The rule's mode.
  const Outcome ceiling = mode_ceiling(rule->mode);
  d.gates.push_back({"rule_mode", outcome > ceiling,
                     fmt::format("rule mode {} allows at most {}", to_string(rule->mode), to_string(ceiling))});
  outcome = cap(outcome, ceiling);

  // 4. Safety gates.
  const bool is_protected_identity = is_protected(identity) || facts.target_protected;
  d.gates.push_back({"protected_identity", is_protected_identity,
                     is_protected_identity
                         ? (facts.target_protected ? facts.target_protected_reason : "identity is protected by policy")
                         : "identity not protected"});
  if (is_protected_identity) outcome = cap(outcome, Outcome::alert);

  const bool shared_credential = readers > 1;
  const bool blast = shared_credential || facts.cgroup_hosts_protected;
  d.gates.push_back({"blast_radius", blast,
                     fmt::format("{} reader(s) of {} (declared {}, learned {}){}", readers, credential.path, declared,
                                 facts.learned_readers.size(),
                                 facts.cgroup_hosts_protected ? "; " + facts.cgroup_hosts_protected_reason : "")});
  if (blast) outcome = cap(outcome, Outcome::hold);

  const auto& limit = policy_->rate_limit;
  const bool over_limit = outcome == Outcome::contain && facts.recent_automated_actions >= limit.max_actions;
  d.gates.push_back(
      {"rate_limit", over_limit,
       fmt::format("{} automated containment(s) in the last {} (limit {})", facts.recent_automated_actions,
                   config::format_duration(limit.window), limit.max_actions)});
  if (over_limit) {
    outcome = Outcome::hold;
    d.alert = true;
  }

  // 5. Dry run.
  d.outcome = outcome;
  if (outcome >= Outcome::hold) {
    d.action = action;
    d.dry_run = rule->dry_run || facts.agent_observe_mode;
    d.gates.push_back({"dry_run", d.dry_run,
                       rule->dry_run              ? "rule is dry_run: recorded as would have, nothing applied"
                       : facts.agent_observe_mode ? "agent mode observe: recorded as would have, nothing applied"
                                                  : "live"});
    // 6. TTL.
    if (containment::is_reversible(*action)) {
      d.ttl = rule->ttl.value_or(policy_->default_ttl);
      d.gates.push_back({"ttl", false, fmt::format("expires after {}", config::format_duration(d.ttl))});
    }
  }
  if (outcome >= Outcome::alert) d.alert = true;

  // The sentence that explains it.
  std::string what;
  switch (*trigger) {
    case TriggerKind::canary_read:
      what = fmt::format("{} read canary {}", who(identity), credential.path);
      break;
    case TriggerKind::unexpected_reader:
      what = fmt::format("{} read {} ({}) and is not an allowed reader", who(identity), credential.path,
                         catalogue::to_string(credential.credential_class));
      break;
    case TriggerKind::unexpected_egress:
      what = fmt::format("{} connected to {} after reading {}, outside its allowed egress", who(identity),
                         input.destination ? input.destination->text : "?", credential.path);
      break;
    case TriggerKind::credential_memory_access:
      what = fmt::format("{} reached into the memory of a process holding {} ({})", who(identity), credential.path,
                         catalogue::to_string(credential.credential_class));
      break;
    case TriggerKind::block_device_read:
      what = fmt::format("{} opened block device {} for reading and is not an allowed block device reader",
                         who(identity), input.device);
      break;
  }
  std::vector<std::string> tripped;
  for (const auto& gate : d.gates) {
    if (gate.tripped) tripped.push_back(gate.gate);
  }
  d.reason = fmt::format("{}: {} by rule {}{}{}", what,
                         d.action && outcome >= Outcome::hold
                             ? fmt::format("{} {}", to_string(outcome), containment::to_string(*d.action))
                             : std::string(to_string(outcome)),
                         rule->name, tripped.empty() ? "" : fmt::format(" (gates: {})", fmt::join(tripped, ", ")),
                         d.dry_run ? " [dry run]" : "");
  return d;
}

}  // namespace nhiguard::policy
