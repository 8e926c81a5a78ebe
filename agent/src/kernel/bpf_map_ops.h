// Small helpers over libbpf's map syscalls, shared by the map writers, the ring-buffer source and
// the counters (kernel/*): libbpf's negative errno turned into an Error at the boundary, a whole
// map read into a vector, and the entries of a map that a new set no longer has deleted.
#pragma once

#include <bpf/bpf.h>
#include <cerrno>

#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace nhiguard::kernel {

inline Error libbpf_error(int err, const std::string& what) {
  return Error::from_errno(err < 0 ? -err : err, what);
}

template <typename Key, typename Value>
Result<std::vector<std::pair<Key, Value>>> dump_map(int fd, const char* name) {
  std::vector<std::pair<Key, Value>> out;
  Key key{};
  Key next{};
  for (const void* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; prev = &key) {
    Value value{};
    if (bpf_map_lookup_elem(fd, &next, &value) == 0) out.emplace_back(next, value);
    key = next;
  }
  if (errno != ENOENT) return fail(Error::from_current_errno(std::string("iterate ") + name));
  return out;
}

// Deletes every key of the map for which keep(key) is false (a table replaced by a new set).
template <typename Key, typename Value, typename Keep>
Result<void> delete_keys_unless(int fd, const char* name, Keep keep) {
  auto entries = dump_map<Key, Value>(fd, name);
  if (!entries) return fail(entries.error());
  for (const auto& [key, value] : *entries) {
    if (!keep(key) && bpf_map_delete_elem(fd, &key) != 0 && errno != ENOENT) {
      return fail(Error::from_current_errno(std::string("delete a stale entry of ") + name));
    }
  }
  return {};
}

}  // namespace nhiguard::kernel
