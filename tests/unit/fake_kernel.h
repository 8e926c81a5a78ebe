// The kernel side of the agent's seams, in memory, for unit tests (no root, no BPF):
//   FakeSource       an EventSource of synthetic records, built from the ABI structs
//   FakeEnforcement  the enforcement maps as the programs see them: one entry per key
//   FakeCredentialTables  the detection maps (credential inodes, candidate names)
// Each behaves as the kernel's maps do for what the agent can observe (an entry is there or not,
// with its value); what the programs would do with them is asked with the *_now helpers.
#pragma once

#include <cstring>
#include <deque>
#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "kernel/credential_tables.h"
#include "kernel/enforcement_maps.h"
#include "kernel/event_source.h"
#include "nhiguard_abi.h"

namespace nhiguard::testing {

class FakeSource final : public kernel::EventSource {
 public:
  void push(std::span<const std::byte> record) { records_.emplace_back(record.begin(), record.end()); }
  template <typename Raw>
  void push_record(const Raw& raw) {
    push(std::as_bytes(std::span<const Raw, 1>(&raw, 1)));
  }
  Result<int> consume(kernel::RecordSink& sink) override {
    int n = 0;
    for (; !records_.empty(); records_.pop_front(), ++n) sink.on_record(records_.front());
    return n;
  }

 private:
  std::deque<std::vector<std::byte>> records_;
};

// The header and process of a synthetic record, as the sensor fills them.
template <typename Raw>
Raw kernel_record(nhg_event_type type, uint64_t ts_ns, uint32_t tgid, uint64_t start_ns, uint64_t cgroup_id,
                  uint32_t uid, const char* comm) {
  Raw raw{};
  raw.hdr = {
      .type = static_cast<uint16_t>(type), .size = sizeof(Raw), .version = NHG_ABI_VERSION, .cpu = 0, .ts_ns = ts_ns};
  raw.proc.tgid = tgid;
  raw.proc.tid = tgid;
  raw.proc.uid = uid;
  raw.proc.euid = uid;
  raw.proc.sessionid = 0xffffffff;
  raw.proc.start_ns = start_ns;
  raw.proc.cgroup_id = cgroup_id;
  std::strncpy(raw.proc.comm, comm, sizeof(raw.proc.comm) - 1);
  return raw;
}

class FakeEnforcement final : public kernel::EnforcementMaps {
 public:
  Result<void> apply_egress_block(const kernel::EgressBlockSpec& spec) override {
    blocks[spec.cgroup_id] = spec;
    return {};
  }
  Result<void> remove_egress_block(uint64_t cgroup_id) override {
    blocks.erase(cgroup_id);
    return {};
  }
  Result<std::vector<std::pair<uint64_t, nhg_egress_block>>> egress_blocks() const override {
    std::vector<std::pair<uint64_t, nhg_egress_block>> out;
    for (const auto& [id, spec] : blocks) {
      out.push_back({id,
                     {.expires_at_ns = spec.expires_at_boot_ns,
                      .mode = spec.destinations.empty() ? uint32_t{NHG_BLOCK_ALL} : uint32_t{NHG_BLOCK_LISTED},
                      .rule_id = spec.rule_id}});
    }
    return out;
  }
  Result<void> apply_credential_deny(const nhg_deny_key& key, const nhg_deny_value& value) override {
    denies[{key.credential_id, key.cgroup_id}] = value;
    return {};
  }
  Result<void> remove_credential_deny(const nhg_deny_key& key) override {
    denies.erase({key.credential_id, key.cgroup_id});
    return {};
  }
  Result<std::vector<std::pair<nhg_deny_key, nhg_deny_value>>> credential_denies() const override {
    std::vector<std::pair<nhg_deny_key, nhg_deny_value>> out;
    for (const auto& [key, value] : denies)
      out.push_back({{.credential_id = key.first, .pad = 0, .cgroup_id = key.second}, value});
    return out;
  }

  Result<void> follow_processes(uint64_t cgroup_id, const std::vector<kernel::FollowedProcess>& processes) override {
    for (const auto& p : processes) followed_cgroups[p.tgid].insert(cgroup_id);
    return {};
  }
  Result<void> unfollow_cgroup(uint64_t cgroup_id) override {
    for (auto it = followed_cgroups.begin(); it != followed_cgroups.end();) {
      it->second.erase(cgroup_id);
      it = it->second.empty() ? followed_cgroups.erase(it) : std::next(it);
    }
    return {};
  }
  Result<std::vector<std::pair<uint32_t, nhg_follow>>> followed() const override {
    std::vector<std::pair<uint32_t, nhg_follow>> out;
    for (const auto& [tgid, ids] : followed_cgroups) {
      nhg_follow entry{};
      std::copy_n(ids.begin(), std::min<size_t>(ids.size(), NHG_FOLLOW_MAX_TARGETS), entry.cgroup_ids);
      out.push_back({tgid, entry});
    }
    return out;
  }

  // What the programs would do now: a live entry (expiry after `now_boot`).
  bool denies_now(uint32_t credential, uint64_t cgroup, uint64_t now_boot) const {
    auto it = denies.find({credential, cgroup});
    return it != denies.end() && it->second.expires_at_ns > now_boot;
  }

  std::map<uint64_t, kernel::EgressBlockSpec> blocks;
  std::map<std::pair<uint32_t, uint64_t>, nhg_deny_value> denies;
  std::map<uint32_t, std::set<uint64_t>> followed_cgroups;  // tgid -> contained cgroups it carries
};

class FakeCredentialTables final : public kernel::CredentialTables {
 public:
  Result<void> upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value) override {
    credentials_[{key.dev, key.ino}] = value;
    return {};
  }
  Result<void> remove_credential(const nhg_inode_key& key) override {
    credentials_.erase({key.dev, key.ino});
    return {};
  }
  Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> credentials() const override {
    std::vector<std::pair<nhg_inode_key, nhg_credential_value>> out;
    for (const auto& [key, value] : credentials_) out.push_back({{.dev = key.first, .ino = key.second}, value});
    return out;
  }
  Result<void> set_candidate_names(const std::vector<kernel::CandidateName>& names) override {
    candidate_names = names;
    return {};
  }

  std::vector<kernel::CandidateName> candidate_names;

 private:
  std::map<std::pair<uint64_t, uint64_t>, nhg_credential_value> credentials_;
};

}  // namespace nhiguard::testing
