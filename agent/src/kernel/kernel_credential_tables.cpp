#include "kernel/kernel_credential_tables.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernel/bpf_map_ops.h"

namespace nhiguard::kernel {
namespace {

uint32_t candidate_slot_of(const std::string& name) {
  return nhg_candidate_filter_slot(static_cast<uint32_t>(name.size()), static_cast<uint8_t>(name.front()));
}

bool valid_name(const std::string& s) {
  return s.size() < NHG_NAME_LEN;
}

template <size_t N>
void copy_name(char (&dst)[N], const std::string& src) {
  std::memset(dst, 0, N);
  std::memcpy(dst, src.data(), std::min(src.size(), N - 1));
}

struct NameOnlyKey {
  char name[NHG_NAME_LEN];
};

}  // namespace

Result<std::unique_ptr<KernelCredentialTables>> KernelCredentialTables::adopt(const SensorMapFds& fds) {
  std::unique_ptr<KernelCredentialTables> tables(new KernelCredentialTables(fds));
  if (auto rebuilt = tables->rebuild_filters(); !rebuilt) return fail(rebuilt.error());
  return tables;
}

int KernelCredentialTables::filter_fd(Filter filter) const {
  return filter == kCredentialFilter ? fds_.credential_filter : fds_.candidate_filter;
}

const char* KernelCredentialTables::filter_name(Filter filter) {
  return filter == kCredentialFilter ? "nhg_credential_filter" : "nhg_candidate_filter";
}

Result<void> KernelCredentialTables::upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value) {
  // The filter slot is raised before the entry exists and lowered after it is gone: a count above
  // the truth costs the programs one hash lookup, one below it would hide the credential.
  if (!credential_keys_.contains({key.dev, key.ino})) {
    const uint32_t slot = nhg_credential_filter_slot(key.dev, key.ino);
    if (auto raised = write_filter_slot(kCredentialFilter, slot, credential_filter_[slot] + 1); !raised) {
      return raised;
    }
    ++credential_filter_[slot];
    credential_keys_.insert({key.dev, key.ino});
  }
  if (bpf_map_update_elem(fds_.credentials, &key, &value, BPF_ANY) != 0) {
    return fail(
        Error::from_current_errno(fmt::format("add credential inode {}:{} to nhg_credentials", key.dev, key.ino)));
  }
  return {};
}

Result<void> KernelCredentialTables::remove_credential(const nhg_inode_key& key) {
  if (bpf_map_delete_elem(fds_.credentials, &key) != 0 && errno != ENOENT) {
    return fail(Error::from_current_errno(fmt::format("remove credential inode {}:{}", key.dev, key.ino)));
  }
  if (credential_keys_.erase({key.dev, key.ino}) != 0) {
    const uint32_t slot = nhg_credential_filter_slot(key.dev, key.ino);
    if (auto lowered = write_filter_slot(kCredentialFilter, slot, credential_filter_[slot] - 1); !lowered) {
      // The count stays above the truth: the programs do one needless lookup for this slot.
      spdlog::warn("credential inode {}:{} removed, its filter slot not lowered: {}", key.dev, key.ino,
                   lowered.error().message);
      return {};
    }
    --credential_filter_[slot];
  }
  return {};
}

Result<void> KernelCredentialTables::write_filter_slot(Filter filter, uint32_t slot, uint32_t value) {
  if (bpf_map_update_elem(filter_fd(filter), &slot, &value, BPF_ANY) != 0) {
    return fail(Error::from_current_errno(fmt::format("set slot {} of {} to {}", slot, filter_name(filter), value)));
  }
  return {};
}

Result<void> KernelCredentialTables::write_filter(Filter filter, const std::vector<uint32_t>& values) {
  const int fd = filter_fd(filter);
  std::vector<uint32_t> keys(values.size());
  for (uint32_t i = 0; i < keys.size(); ++i) keys[i] = i;
  uint32_t count = static_cast<uint32_t>(values.size());
  if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr) == 0) return {};
  // Batch updates need kernel 5.6+; one update per slot does the same.
  for (uint32_t i = 0; i < keys.size(); ++i) {
    if (bpf_map_update_elem(fd, &keys[i], &values[i], BPF_ANY) != 0) {
      return fail(Error::from_current_errno(fmt::format("write slot {} of {}", i, filter_name(filter))));
    }
  }
  return {};
}

Result<void> KernelCredentialTables::rebuild_filters() {
  auto credentials = dump_map<nhg_inode_key, nhg_credential_value>(fds_.credentials, "nhg_credentials");
  if (!credentials) return fail(credentials.error());
  credential_filter_.assign(NHG_CREDENTIAL_FILTER_SLOTS, 0);
  credential_keys_.clear();
  for (const auto& [key, value] : *credentials) {
    ++credential_filter_[nhg_credential_filter_slot(key.dev, key.ino)];
    credential_keys_.insert({key.dev, key.ino});
  }
  if (auto written = write_filter(kCredentialFilter, credential_filter_); !written) return written;

  auto prefixes = dump_map<nhg_name_prefix_key, uint32_t>(fds_.candidate_prefixes, "nhg_candidate_prefixes");
  if (!prefixes) return fail(prefixes.error());
  candidate_filter_.assign(NHG_CANDIDATE_FILTER_SLOTS, 0);
  for (const auto& [key, value] : *prefixes) {
    if (key.len == 0 || key.len >= NHG_NAME_LEN) continue;
    candidate_filter_[nhg_candidate_filter_slot(key.len, static_cast<uint8_t>(key.head & 0xff))] = 1;
  }
  return write_filter(kCandidateFilter, candidate_filter_);
}

Result<void> KernelCredentialTables::set_candidate_names(const std::vector<CandidateName>& names) {
  const int names_fd = fds_.candidate_names;
  const int pairs_fd = fds_.candidate_pairs;
  std::map<std::string, uint32_t> name_flags;
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& entry : names) {
    if (!valid_name(entry.name) || !valid_name(entry.parent) || entry.name.empty()) {
      return fail(Error::plain(fmt::format("candidate name '{}/{}' is empty or longer than {} bytes", entry.parent,
                                           entry.name, NHG_NAME_LEN - 1)));
    }
    if (entry.parent.empty()) {
      name_flags[entry.name] |= NHG_NAME_ANY_PARENT;
    } else {
      name_flags[entry.name] |= NHG_NAME_BY_PARENT;
      pairs.emplace(entry.parent, entry.name);
    }
  }
  std::set<std::pair<std::string, std::string>> requested;
  for (const auto& entry : names) requested.emplace(entry.parent, entry.name);
  if (written_candidates_ == requested) return {};
  written_candidates_.reset();  // until this write completes, the next call writes in full
  const int prefixes_fd = fds_.candidate_prefixes;
  std::set<std::pair<uint32_t, uint64_t>> prefixes;
  for (const auto& [name, flags] : name_flags) {
    nhg_name_prefix_key key{};
    key.len = static_cast<uint32_t>(name.size());
    std::memcpy(&key.head, name.data(), std::min<size_t>(name.size(), sizeof(key.head)));
    prefixes.emplace(key.len, key.head);
  }
  // Add the new entries first, then delete stale ones, so no name is unwatched in between; the
  // filter admits old and new names until the stale entries are gone.
  // Only the slots that change are written: a sync whose names did not change writes none.
  std::vector<uint32_t> wanted_filter(NHG_CANDIDATE_FILTER_SLOTS, 0);
  for (const auto& [name, flags] : name_flags) wanted_filter[candidate_slot_of(name)] = 1;
  for (uint32_t slot = 0; slot < NHG_CANDIDATE_FILTER_SLOTS; ++slot) {
    if (wanted_filter[slot] == 0 || candidate_filter_[slot] != 0) continue;
    if (auto raised = write_filter_slot(kCandidateFilter, slot, 1); !raised) return raised;
    candidate_filter_[slot] = 1;
  }
  for (const auto& [len, head] : prefixes) {
    nhg_name_prefix_key key{.len = len, .pad = 0, .head = head};
    const uint32_t one = 1;
    if (bpf_map_update_elem(prefixes_fd, &key, &one, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate name prefix"));
    }
  }
  for (const auto& [name, flags] : name_flags) {
    NameOnlyKey key;
    copy_name(key.name, name);
    if (bpf_map_update_elem(names_fd, &key, &flags, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate name " + name));
    }
  }
  for (const auto& [parent, name] : pairs) {
    nhg_name_key key;
    copy_name(key.parent, parent);
    copy_name(key.name, name);
    const uint32_t one = 1;
    if (bpf_map_update_elem(pairs_fd, &key, &one, BPF_ANY) != 0) {
      return fail(Error::from_current_errno("add candidate pair " + parent + "/" + name));
    }
  }
  auto stale_names =
      delete_keys_unless<NameOnlyKey, uint32_t>(names_fd, "nhg_candidate_names", [&](const NameOnlyKey& key) {
        return name_flags.contains(std::string(key.name, strnlen(key.name, NHG_NAME_LEN)));
      });
  if (!stale_names) return fail(stale_names.error());
  auto stale_pairs =
      delete_keys_unless<nhg_name_key, uint32_t>(pairs_fd, "nhg_candidate_pairs", [&](const nhg_name_key& key) {
        return pairs.contains({std::string(key.parent, strnlen(key.parent, NHG_NAME_LEN)),
                               std::string(key.name, strnlen(key.name, NHG_NAME_LEN))});
      });
  if (!stale_pairs) return fail(stale_pairs.error());
  auto stale_prefixes = delete_keys_unless<nhg_name_prefix_key, uint32_t>(
      prefixes_fd, "nhg_candidate_prefixes",
      [&](const nhg_name_prefix_key& key) { return prefixes.contains({key.len, key.head}); });
  if (!stale_prefixes) return fail(stale_prefixes.error());
  for (uint32_t slot = 0; slot < NHG_CANDIDATE_FILTER_SLOTS; ++slot) {
    if (wanted_filter[slot] != 0 || candidate_filter_[slot] == 0) continue;
    if (auto lowered = write_filter_slot(kCandidateFilter, slot, 0); !lowered) return lowered;
    candidate_filter_[slot] = 0;
  }
  written_candidates_ = std::move(requested);
  return {};
}

Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> KernelCredentialTables::credentials() const {
  return dump_map<nhg_inode_key, nhg_credential_value>(fds_.credentials, "nhg_credentials");
}

}  // namespace nhiguard::kernel
