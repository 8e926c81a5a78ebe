// The downtime gap: ring-buffer drops between the previous agent's snapshot and this start, apart
// from the running agent's, and only against a snapshot of the same counter map.
#include <gtest/gtest.h>

#include "daemon/drop_accounting.h"

namespace nhiguard::daemon {
namespace {

kernel::SensorCounters counters(uint64_t file, uint64_t process, uint64_t egress) {
  kernel::SensorCounters c;
  c.values[NHG_CTR_RINGBUF_DROP_FILE] = file;
  c.values[NHG_CTR_RINGBUF_DROP_PROCESS] = process;
  c.values[NHG_CTR_RINGBUF_DROP_EGRESS] = egress;
  c.values[NHG_CTR_CREDENTIAL_OPENS] = 1000;  // not a drop
  return c;
}

TEST(DropAccountingTest, GapIsTheDifferenceSinceTheLastSnapshotOfTheSameMap) {
  const auto stopped = DropSnapshot::of(counters(5, 7, 1), "boot-a", 42, 1'000, true);
  const auto now = DropSnapshot::of(counters(15, 7, 4), "boot-a", 42, 9'000, false);
  const auto gap = downtime_gap(stopped, now);
  EXPECT_EQ(gap.total(), 13u);
  EXPECT_EQ(gap.file, 10u);
  EXPECT_EQ(gap.process, 0u);
  EXPECT_EQ(gap.egress, 3u);
  ASSERT_TRUE(gap.since_ns);
  EXPECT_EQ(*gap.since_ns, 1'000);
  EXPECT_EQ(gap.until_ns, 9'000);
  EXPECT_EQ(gap.since_what, "the previous agent's stop");
  EXPECT_NE(gap.describe().find("13 kernel event(s) dropped while no agent read"), std::string::npos);
}

TEST(DropAccountingTest, NoDropsWhileStoppedIsNoGap) {
  const auto stopped = DropSnapshot::of(counters(5, 7, 1), "boot-a", 42, 1'000, true);
  EXPECT_EQ(downtime_gap(stopped, DropSnapshot::of(counters(5, 7, 1), "boot-a", 42, 2'000, false)).total(), 0u);
}

TEST(DropAccountingTest, AgentThatDidNotStopCleanlyIsMeasuredFromItsLastCheck) {
  const auto running = DropSnapshot::of(counters(5, 0, 0), "boot-a", 42, 1'000, false);
  const auto gap = downtime_gap(running, DropSnapshot::of(counters(6, 0, 0), "boot-a", 42, 2'000, false));
  EXPECT_EQ(gap.total(), 1u);
  EXPECT_NE(gap.since_what.find("did not stop cleanly"), std::string::npos);
}

TEST(DropAccountingTest, OtherBootOrOtherMapCountsEverythingSinceTheMapWasMade) {
  const auto stopped = DropSnapshot::of(counters(50, 50, 50), "boot-a", 42, 1'000, true);
  for (const auto& now : {DropSnapshot::of(counters(3, 0, 0), "boot-b", 42, 2'000, false),
                          DropSnapshot::of(counters(3, 0, 0), "boot-a", 43, 2'000, false)}) {
    const auto gap = downtime_gap(stopped, now);
    EXPECT_EQ(gap.total(), 3u);
    EXPECT_FALSE(gap.since_ns);
  }
  EXPECT_EQ(downtime_gap(std::nullopt, DropSnapshot::of(counters(2, 1, 0), "boot-a", 42, 2'000, false)).total(), 3u);
}

TEST(DropAccountingTest, SnapshotRoundTripsAndRefusesABadField) {
  const auto snapshot = DropSnapshot::of(counters(1, 2, 3), "boot-a", 42, 1'000, true);
  auto back = DropSnapshot::from_json(snapshot.to_json());
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->total(), 6u);
  EXPECT_EQ(back->counters_map_id, 42u);
  EXPECT_TRUE(back->clean_stop);
  auto json = snapshot.to_json();
  json["ringbuf_drops_file"] = "many";
  auto bad = DropSnapshot::from_json(json);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, EUCLEAN);
}

}  // namespace
}  // namespace nhiguard::daemon
