// LruCache: a map of at most `capacity` entries that forgets the least recently used one first.
// The agent's caches of cgroup paths, executable digests and resolved identities are all this; a
// capacity of 0 keeps nothing. Not thread-safe: each owner guards it with the mutex that also
// guards the statistics it keeps beside it.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>

namespace nhiguard {

template <typename Key, typename Value, typename Hash = std::hash<Key>>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  // The value of `key`, now the most recent; null when absent. Valid until the next change.
  Value* find(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  bool contains(const Key& key) const { return index_.contains(key); }
  // A new key would evict the least recent entry.
  bool full() const { return index_.size() >= capacity_; }

  // Sets `key` to `value` as the most recent entry; a new key in a full cache evicts the least
  // recent one first.
  void put(const Key& key, Value value) {
    if (auto it = index_.find(key); it != index_.end()) {
      it->second->second = std::move(value);
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    if (capacity_ == 0) return;
    if (index_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(key, std::move(value));
    index_.emplace(key, order_.begin());
  }

  // Whether `key` was there.
  bool erase(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return false;
    order_.erase(it->second);
    index_.erase(it);
    return true;
  }

  size_t size() const { return index_.size(); }

 private:
  using Order = std::list<std::pair<Key, Value>>;  // most recent first
  size_t capacity_;
  Order order_;
  std::unordered_map<Key, typename Order::iterator, Hash> index_;
};

}  // namespace nhiguard
