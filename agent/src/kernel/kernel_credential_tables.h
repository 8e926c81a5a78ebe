// KernelCredentialTables: CredentialTables over the sensor's pinned BPF maps (descriptors from the
// SensorLoader, which must outlive this).
//
// The open path's prefilters (nhiguard_abi.h) follow the tables they guard: adopt() rebuilds them
// from the tables as they are (an earlier agent's pinned tables, or an agent that predates a
// filter), and it must run before any program is attached: a filter that says "no" for an existing
// entry would hide it. Afterwards each update writes only the filter slots that change, in the
// order that never hides an entry (a slot is raised before its entry exists, lowered after it is gone).
//
// Thread-safety: one thread at a time (the event loop's catalogue sync).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "kernel/credential_tables.h"
#include "kernel/sensor_loader.h"

namespace nhiguard::kernel {

class KernelCredentialTables final : public CredentialTables {
 public:
  static Result<std::unique_ptr<KernelCredentialTables>> adopt(const SensorMapFds& fds);

  Result<void> upsert_credential(const nhg_inode_key& key, const nhg_credential_value& value) override;
  Result<void> remove_credential(const nhg_inode_key& key) override;
  Result<std::vector<std::pair<nhg_inode_key, nhg_credential_value>>> credentials() const override;
  Result<void> set_candidate_names(const std::vector<CandidateName>& names) override;

 private:
  enum Filter { kCredentialFilter, kCandidateFilter };
  explicit KernelCredentialTables(const SensorMapFds& fds) : fds_(fds) {}
  int filter_fd(Filter filter) const;
  static const char* filter_name(Filter filter);
  Result<void> rebuild_filters();
  Result<void> write_filter(Filter filter, const std::vector<uint32_t>& values);
  Result<void> write_filter_slot(Filter filter, uint32_t slot, uint32_t value);

  SensorMapFds fds_;
  // What the kernel's filter arrays hold, so updates write only the slots that change.
  std::vector<uint32_t> credential_filter_;                  // counts per slot
  std::set<std::pair<uint64_t, uint64_t>> credential_keys_;  // (dev, ino) counted in it
  std::vector<uint32_t> candidate_filter_;                   // 0/1 per slot
  // The (parent, name) set the last set_candidate_names wrote in full: a periodic rescan whose
  // names did not change costs no map syscall (the first call after adoption always writes).
  std::optional<std::set<std::pair<std::string, std::string>>> written_candidates_;
};

}  // namespace nhiguard::kernel
