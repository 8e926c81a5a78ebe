// LruCache, the one cache type behind the cgroup-path, executable-digest and identity caches: it
// holds at most its capacity, forgets the least recently used entry first (a find counts as a
// use), replaces in place, and with capacity 0 keeps nothing.
#include <gtest/gtest.h>

#include <string>

#include "common/lru_cache.h"

namespace nhiguard {
namespace {

TEST(LruCache, ForgetsTheLeastRecentlyUsedFirst) {
  LruCache<int, std::string> cache(2);
  cache.put(1, "one");
  cache.put(2, "two");
  ASSERT_NE(cache.find(1), nullptr);  // 1 is now the most recent
  cache.put(3, "three");              // evicts 2
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.find(2), nullptr);
  ASSERT_NE(cache.find(1), nullptr);
  EXPECT_EQ(*cache.find(1), "one");
  EXPECT_EQ(*cache.find(3), "three");
  EXPECT_TRUE(cache.full());
}

TEST(LruCache, PutReplacesInPlaceAndMakesTheEntryRecent) {
  LruCache<int, std::string> cache(2);
  cache.put(1, "one");
  cache.put(2, "two");
  cache.put(1, "uno");  // replace: no eviction, 1 most recent
  EXPECT_EQ(cache.size(), 2u);
  cache.put(3, "three");  // evicts 2
  EXPECT_EQ(*cache.find(1), "uno");
  EXPECT_FALSE(cache.contains(2));
}

TEST(LruCache, EraseAndZeroCapacity) {
  LruCache<int, int> cache(3);
  cache.put(1, 10);
  EXPECT_TRUE(cache.erase(1));
  EXPECT_FALSE(cache.erase(1));
  EXPECT_EQ(cache.size(), 0u);
  LruCache<int, int> none(0);
  none.put(1, 10);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.find(1), nullptr);
}

}  // namespace
}  // namespace nhiguard
