// Policy: what the agent allows, what it watches for, and how it responds — the typed form of the
// YAML files in policy_dir (schema documented in packaging/policy.d/00-default.yaml and README).
//
// A policy names credentials (by path, glob or catalogue class) with their allowed readers, allowed
// egress per identity, identity classes with their impact, protected identities, canary
// credentials, rules (trigger, confidence, mode, dry_run, response, ttl), default TTL and the
// host's rate limit. Several files merge into one Policy: lists concatenate in file order (files
// sorted by name); `defaults` and `rate_limit` may be set by one file only; identity class and
// rule names are unique across files.
//
// Parsing collects every error (unknown key, wrong type, bad glob, bad CIDR, unknown action,
// unknown class, duplicate name, ...) with file, line, column and field, and never stops at the
// first. A Policy returned by an ok() parse satisfies: every rule has a known trigger, a response
// of known actions sorted narrowest first, and names only identity classes that exist; every
// identity's class exists; every pattern is a valid fnmatch(3) pattern; every egress entry parsed.
//
// Matching (pure, used by the decision engine): IdentitySelector::matches compares every key it
// sets (all must match; unit, user_unit, session, container, pod, cgroup, exe and uri are fnmatch
// patterns, uid is exact). Each key names one kind of workload by what only that workload can
// show, so no process can claim another's selector (and its protection) by naming a cgroup:
//   unit       a system unit (cgroup_classifier.h rule 4: /system.slice/x.service, or below any
//              slice of the system manager), never a directory of that name elsewhere, nor a user
//              unit. It also matches everything inside the unit's cgroup (its containers).
//   user_unit  a unit of a user's own service manager (user@UID.service); needs uid, which is then
//              both the manager's owner and the process's uid: user 1000 cannot pose as user
//              2000's units.
//   session    a login session scope (session-N.scope of user-UID.slice); with uid, the session
//              belongs to that user and the process runs as that user.
//   container  a container id; pod a pod uid.
//   cgroup     a cgroup path relative to the cgroup2 root ('*' does not cross '/'); matches that
//              cgroup and every cgroup below it. The way to name a workload that is none of the
//              above (a bare cgroup, a look-alike unit) or a unit in an unusual place.
//
// Thread-safety: a Policy is an immutable value once parsed; share it as shared_ptr<const Policy>.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "catalogue/credential_class.h"
#include "config/yaml_schema.h"
#include "containment/action.h"
#include "containment/egress_destination.h"

namespace nhiguard::policy {

// How sure a trigger is that something is wrong. Canary reads are `certain` by construction.
enum class Confidence : uint8_t { low = 1, medium = 2, high = 3, certain = 4 };
// What containing an identity of a class costs the business.
enum class Impact : uint8_t { low = 1, medium = 2, high = 3, critical = 4 };
// The most a rule may do: observe (record), alert, hold (ask a person), enforce (contain).
enum class RuleMode : uint8_t { observe = 1, alert = 2, hold = 3, enforce = 4 };
enum class TriggerKind : uint8_t {
  unexpected_reader = 1,
  unexpected_egress = 2,
  canary_read = 3,
  credential_memory_access = 4,  // ptrace / process_vm_readv / /proc/PID/{mem,environ} of a credential holder
  block_device_read = 5,         // a block device opened for reading by a process block_device_readers do not allow
};

std::string_view to_string(Confidence value);
std::string_view to_string(Impact value);
std::string_view to_string(RuleMode value);
std::string_view to_string(TriggerKind value);
std::optional<Confidence> parse_confidence(std::string_view text);
std::optional<Impact> parse_impact(std::string_view text);
std::optional<RuleMode> parse_rule_mode(std::string_view text);
std::optional<TriggerKind> parse_trigger(std::string_view text);

// Where an item was written, for messages about it.
struct Origin {
  std::string source;
  int line = 0;
  int column = 0;
  std::string to_string() const;  // "file:line:column"
};

// The identity of a process as the policy sees it (built by the daemon from ResolvedIdentity).
struct IdentityFacts {
  std::string uri;                      // spiffe://...
  std::string kind;                     // identity::to_string(WorkloadKind): systemd, container, k8s_pod, ...
  std::string unit;                     // the system unit the cgroup is in (identity::CgroupWorkload::unit)
  std::string user_unit;                // user_session below user@UID.service: the user unit
  std::string session;                  // user_session: the login session scope
  std::optional<uint32_t> session_uid;  // user_session: the owner named by the cgroup path
  std::string container_id;             // 64 hex
  std::string pod_uid;
  std::string exe;
  uint32_t uid = 0;
  std::string cgroup_path;  // relative to the cgroup2 root
  uint64_t cgroup_id = 0;
  uint32_t pid = 0;
  uint64_t pid_start_ns = 0;
  std::string comm;
};

// Selects identities. Every key set must match; a selector sets at least one key.
struct IdentitySelector {
  std::optional<std::string> unit;       // fnmatch on the system unit name
  std::optional<std::string> user_unit;  // fnmatch on the user unit name (with uid)
  std::optional<std::string> session;    // fnmatch on the login session scope
  std::optional<std::string> container;  // fnmatch on the full id, or a >= 12 digit id prefix
  std::optional<std::string> pod;        // fnmatch on the pod uid
  std::optional<std::string> cgroup;     // fnmatch (FNM_PATHNAME) on the cgroup path or an ancestor
  std::optional<std::string> exe;        // fnmatch on the executable path
  std::optional<std::string> uri;        // fnmatch on the workload URI
  std::optional<uint32_t> uid;
  Origin origin;

  bool matches(const IdentityFacts& identity) const;
  // "unit=payments.service,uid=0": stable, for records and messages.
  std::string describe() const;
};

// The selector's string keys in their stable order (policy files, describe(), learned sets).
struct SelectorPatternKey {
  std::string_view name;
  std::optional<std::string> IdentitySelector::* member;
};
inline constexpr std::array<SelectorPatternKey, 8> kSelectorPatternKeys{{
    {"unit", &IdentitySelector::unit},
    {"user_unit", &IdentitySelector::user_unit},
    {"session", &IdentitySelector::session},
    {"container", &IdentitySelector::container},
    {"pod", &IdentitySelector::pod},
    {"cgroup", &IdentitySelector::cgroup},
    {"exe", &IdentitySelector::exe},
    {"uri", &IdentitySelector::uri},
}};

// Which credentials an entry covers: a literal path, a glob, or catalogue entries by class.
struct CredentialSelector {
  enum class Kind : uint8_t { path, glob, catalogue };
  Kind kind = Kind::path;
  std::string pattern;  // path: literal; glob: fnmatch(FNM_PATHNAME); "~/" = under any home
  std::optional<catalogue::CredentialClass> catalogue_class;  // catalogue: nullopt = any class
};

// The credential of a trigger, as the decision engine sees it.
struct CredentialFacts {
  uint32_t id = 0;
  std::string path;
  std::vector<std::string> aliases;
  catalogue::CredentialClass credential_class = catalogue::CredentialClass::custom;
};

struct CredentialPolicy {
  CredentialSelector selector;
  // path/glob entries: the class the catalogue records for the file (default custom).
  catalogue::CredentialClass credential_class = catalogue::CredentialClass::custom;
  std::optional<std::string> owner;       // system unit name or workload URI; an allowed reader
  std::vector<IdentitySelector> readers;  // allowed readers
  Origin origin;

  bool covers(const CredentialFacts& credential) const;
};

// A honeytoken: any read is a `canary_read` trigger. With plant, the agent creates the file (0600,
// fake content of its class) when it is missing.
struct CanaryPolicy {
  std::string path;
  catalogue::CredentialClass credential_class = catalogue::CredentialClass::custom;
  bool plant = false;
  Origin origin;
};

struct IdentityClass {
  std::string name;
  Impact impact = Impact::medium;
  bool is_protected = false;  // never contained
  bool shared = false;        // used by many jobs: never killed, containment held for a person
  Origin origin;
};

struct IdentityPolicy {
  IdentitySelector match;
  std::string class_name;                              // "" = no class (the default impact)
  std::vector<containment::EgressDestination> egress;  // allowed destinations
  Origin origin;
};

struct Rule {
  std::string name;
  TriggerKind trigger = TriggerKind::unexpected_reader;
  Confidence confidence = Confidence::medium;
  RuleMode mode = RuleMode::alert;
  bool dry_run = false;
  // Actions the rule may take, narrowest first (ActionKind order); empty = block_egress.
  std::vector<containment::ActionKind> response;
  std::optional<std::chrono::milliseconds> ttl;                // none = the policy default
  std::vector<catalogue::CredentialClass> credential_classes;  // when: empty = any
  std::vector<std::string> identity_classes;                   // when: empty = any
  Origin origin;
};

struct RateLimit {
  uint32_t max_actions = 10;  // automated containments per window on this host
  std::chrono::milliseconds window = std::chrono::minutes(10);
};

inline constexpr std::chrono::milliseconds kDefaultTtl = std::chrono::minutes(15);
inline constexpr std::chrono::milliseconds kMaxTtl = std::chrono::hours(24);

struct Policy {
  std::vector<std::string> sources;  // the files, in merge order
  std::chrono::milliseconds default_ttl = kDefaultTtl;
  Impact default_impact = Impact::medium;
  std::vector<containment::EgressDestination> default_egress;  // allowed for every identity
  RateLimit rate_limit;
  std::vector<IdentityClass> identity_classes;
  std::vector<IdentityPolicy> identities;
  std::vector<IdentitySelector> protected_identities;
  std::vector<CredentialPolicy> credentials;
  std::vector<CanaryPolicy> canaries;
  std::vector<Rule> rules;
  // Who may open a block device for reading without an event (raw disk reads bypass every file's
  // permissions). Unset in every file: kDefaultBlockDeviceReaders. Set (even to []) in one file
  // only: exactly that list.
  std::optional<std::vector<IdentitySelector>> block_device_readers;

  const IdentityClass* find_class(std::string_view name) const;
};

// The system tools that read block devices as their job and cannot be steered to copy out a
// file's bytes: udev's device probing (its workers are the udevd binary) and libblkid's probe,
// udisks, LVM, multipath, mdadm and the e2fsprogs checker. dd, cat, debugfs, a shell or an
// interpreter are not in it: those read arbitrary bytes.
std::vector<IdentitySelector> default_block_device_readers();

struct PolicyParse {
  Policy policy;
  std::vector<config::ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

struct PolicySource {
  std::string name;  // file path, for messages
  std::string text;
};

// Parses and merges the documents in order.
PolicyParse parse_policy_documents(std::span<const PolicySource> sources);
// Reads and parses the files in the given order; an unreadable file is one error naming it.
PolicyParse load_policy_files(const std::vector<std::string>& paths);
// Every *.yaml / *.yml regular file of `dir`, sorted by name. A missing or unreadable directory is
// an error; an empty one is an empty policy (no rules: detection only).
PolicyParse load_policy_dir(const std::string& dir);

// True when the destination (IPv4-mapped address, host-order port) lies in one of `allowed`.
bool egress_allowed(std::span<const containment::EgressDestination> allowed, const std::array<uint8_t, 16>& address,
                    uint16_t port);

}  // namespace nhiguard::policy
