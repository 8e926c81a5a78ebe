// ULIDs and rollback-handle ids: canonical form, ordering, monotonic increments within one
// millisecond, and the validation the control socket applies to operator input.
#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/ulid.h"

namespace {

using namespace nhiguard;

// The 80-bit random part (last 16 characters) as a number, to check the +1 increments.
unsigned __int128 random_part(const std::string& ulid) {
  constexpr std::string_view alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  unsigned __int128 value = 0;
  for (char c : ulid.substr(10)) value = value << 5 | alphabet.find(c);
  return value;
}

TEST(Ulid, HandleIdHasPrefixAndCanonicalUlid) {
  const std::string id = new_handle_id();
  ASSERT_EQ(id.size(), 29u);
  EXPECT_EQ(id.substr(0, 3), "rb_");
  EXPECT_TRUE(is_handle_id(id)) << id;
  EXPECT_TRUE(is_ulid(id.substr(3))) << id;
  for (char c : id.substr(3)) {
    EXPECT_NE(std::string_view("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c), std::string_view::npos) << id;
  }
}

TEST(Ulid, TimestampMatchesTheSpecExample) {
  // From the ULID spec: 1469918176385 ms encodes as "01ARYZ6S41".
  UlidGenerator generator;
  const std::string ulid = generator.next(1469918176385);
  EXPECT_EQ(ulid.substr(0, 10), "01ARYZ6S41");
  EXPECT_EQ(ulid_time_ms(ulid), 1469918176385u);
  EXPECT_EQ(ulid_time_ms("rb_" + ulid), 1469918176385u);
}

TEST(Ulid, TimestampIsTheCurrentTime) {
  const auto before = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  const auto ms = ulid_time_ms(new_handle_id());
  ASSERT_TRUE(ms);
  EXPECT_GE(*ms, before);
  EXPECT_LE(*ms, before + 5000);
}

TEST(Ulid, SuccessiveIdsAreStrictlyIncreasingAndUnique) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5000; ++i) ids.push_back(new_handle_id());
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

TEST(Ulid, AcrossMillisecondsTheTimeOrders) {
  UlidGenerator generator;
  const std::string a = generator.next(1'700'000'000'000);
  const std::string b = generator.next(1'700'000'000'001);
  EXPECT_LT(a, b);
  EXPECT_EQ(ulid_time_ms(b), 1'700'000'000'001u);
}

TEST(Ulid, MonotonicWithinOneMillisecond) {
  UlidGenerator generator;
  std::string previous = generator.next(1'700'000'000'000);
  for (int i = 0; i < 1000; ++i) {
    const std::string next = generator.next(1'700'000'000'000);
    ASSERT_LT(previous, next);
    ASSERT_EQ(next.substr(0, 10), previous.substr(0, 10));  // same timestamp
    ASSERT_TRUE(random_part(next) == random_part(previous) + 1) << previous << " " << next;
    previous = next;
  }
}

TEST(Ulid, ClockSteppingBackStillIncreases) {
  UlidGenerator generator;
  const std::string a = generator.next(1'700'000'000'500);
  const std::string b = generator.next(1'700'000'000'000);  // wall clock stepped back
  EXPECT_LT(a, b);
  EXPECT_EQ(ulid_time_ms(b), 1'700'000'000'500u);
}

TEST(Ulid, ConcurrentCallersGetUniqueIds) {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 2000; ++i) out.push_back(new_handle_id());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& ids : per_thread) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(all.size(), 8000u);
}

TEST(Ulid, ValidationRejectsWrongLengths) {
  const std::string good = "rb_01ARYZ6S41TSV4RRFFQ69G5FAV";
  ASSERT_TRUE(is_handle_id(good));
  EXPECT_FALSE(is_handle_id(""));
  EXPECT_FALSE(is_handle_id("rb_"));
  EXPECT_FALSE(is_handle_id(good.substr(0, 28)));
  EXPECT_FALSE(is_handle_id(good + "0"));
  EXPECT_FALSE(is_handle_id(good + " "));
  EXPECT_FALSE(is_handle_id(" " + good));
}

TEST(Ulid, ValidationRejectsCharactersOutsideCanonicalCrockford) {
  const std::string good = "rb_01ARYZ6S41TSV4RRFFQ69G5FAV";
  for (char bad : {'I', 'L', 'O', 'U', 'a', 'z', '-', '_', '/', '\0'}) {
    std::string id = good;
    id[10] = bad;
    EXPECT_FALSE(is_handle_id(id)) << "character code " << int(bad);
  }
  EXPECT_FALSE(is_handle_id("rb_01aryz6s41tsv4rrffq69g5fav"));  // lower case is not canonical
  EXPECT_FALSE(is_handle_id("rb_81ARYZ6S41TSV4RRFFQ69G5FAV"));  // > 128 bits
  EXPECT_TRUE(is_handle_id("rb_7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));   // the largest ULID
}

TEST(Ulid, ValidationRejectsWrongPrefix) {
  const std::string ulid = "01ARYZ6S41TSV4RRFFQ69G5FAV";
  EXPECT_FALSE(is_handle_id(ulid));
  EXPECT_FALSE(is_handle_id("RB_" + ulid));
  EXPECT_FALSE(is_handle_id("rb-" + ulid));
  EXPECT_FALSE(is_handle_id("xb_" + ulid));
  EXPECT_FALSE(is_handle_id("rbx" + ulid));
  EXPECT_TRUE(is_ulid(ulid));
  EXPECT_FALSE(is_ulid("rb_" + ulid));
  EXPECT_FALSE(ulid_time_ms("rb_nope"));
}

}  // namespace
