// Reconnection backoff: exponential growth to a cap, jitter inside [ceiling/2, ceiling], reset,
// and different seeds giving different (de-synchronised) sequences.
#include <chrono>
#include <set>

#include <gtest/gtest.h>

#include "reporter/backoff.h"

namespace nhiguard::reporter {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, GrowsExponentiallyToTheCapWithJitterInTheUpperHalf) {
  Backoff backoff(100ms, 30s, 1);
  const std::chrono::milliseconds ceilings[] = {100ms,  200ms,   400ms,   800ms, 1600ms, 3200ms,
                                                6400ms, 12800ms, 25600ms, 30s,   30s,    30s};
  for (auto ceiling : ceilings) {
    const auto delay = backoff.next();
    EXPECT_GE(delay, ceiling / 2);
    EXPECT_LE(delay, ceiling);
  }
  EXPECT_EQ(backoff.failures(), 12u);
}

TEST(Backoff, CeilingNeverOverflows) {
  Backoff backoff(1ms, 60s, 1);
  EXPECT_EQ(backoff.ceiling_for(0), 1ms);
  EXPECT_EQ(backoff.ceiling_for(10), 1024ms);
  EXPECT_EQ(backoff.ceiling_for(1000), 60s);
  for (int i = 0; i < 200; ++i) EXPECT_LE(backoff.next(), 60s);
}

TEST(Backoff, ResetStartsOverAfterASuccess) {
  Backoff backoff(100ms, 30s, 7);
  for (int i = 0; i < 8; ++i) backoff.next();
  backoff.reset();
  EXPECT_EQ(backoff.failures(), 0u);
  EXPECT_LE(backoff.next(), 100ms);
}

TEST(Backoff, SeedsDesynchroniseAgents) {
  std::set<int64_t> first_delays_at_cap;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Backoff backoff(1s, 30s, seed);
    for (int i = 0; i < 6; ++i) backoff.next();
    first_delays_at_cap.insert(backoff.next().count());
  }
  // Twenty agents that failed together do not all come back at the same millisecond.
  EXPECT_GT(first_delays_at_cap.size(), 15u);
}

}  // namespace
}  // namespace nhiguard::reporter
