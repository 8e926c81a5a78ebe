// KernelCounterWatch with counters the test sets: each rise is one alert with its count, nothing
// rises → nothing is alerted, and the snapshot it leaves makes the next start's downtime gap.
#include "daemon/kernel_counter_watch.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "temp_dir.h"

namespace nhiguard::daemon {
namespace {

struct Alert {
  std::string kind;
  uint64_t count;
};

class KernelCounterWatchTest : public ::testing::Test {
 protected:
  KernelCounterWatch make_watch() {
    return KernelCounterWatch(
        CounterSources{
            .counters = [this]() -> Result<kernel::SensorCounters> { return counters_; },
            .counters_map_id = []() -> Result<uint32_t> { return 42u; },
            .enforcement_map_full = [this] { return enforcement_full_; },
        },
        (dir_.path() / "kernel_counters.json").string(), 1u << 20,
        [this](const std::string& kind, const std::string&, uint64_t count) { alerts_.push_back({kind, count}); });
  }

  testing::TempDir dir_{"nhiguard-counter-watch"};
  kernel::SensorCounters counters_;
  uint64_t enforcement_full_ = 0;
  std::vector<Alert> alerts_;
};

TEST_F(KernelCounterWatchTest, EachRiseIsOneAlertWithItsCount) {
  counters_.values[NHG_CTR_TAINT_MAP_FULL] = 5;  // before this agent: not this agent's to alert
  auto watch = make_watch();
  EXPECT_FALSE(watch.start().has_value());  // no snapshot yet, no drops: no downtime notice
  watch.check();
  EXPECT_TRUE(alerts_.empty());

  counters_.values[NHG_CTR_TAINT_MAP_FULL] = 8;
  counters_.values[NHG_CTR_RINGBUF_DROP_FILE] = 2;
  counters_.values[NHG_CTR_RINGBUF_DROP_EGRESS] = 1;
  enforcement_full_ = 4;
  watch.check();
  ASSERT_EQ(alerts_.size(), 3u);
  EXPECT_EQ(alerts_[0].kind, "ringbuf_drops");
  EXPECT_EQ(alerts_[0].count, 3u);
  EXPECT_EQ(alerts_[1].kind, "taint_map_full");
  EXPECT_EQ(alerts_[1].count, 3u);
  EXPECT_EQ(alerts_[2].kind, "enforcement_map_full");
  EXPECT_EQ(alerts_[2].count, 4u);

  alerts_.clear();
  watch.check();  // nothing rose since
  EXPECT_TRUE(alerts_.empty());

  const auto status = watch.status_json();
  EXPECT_EQ(status["taint_map_full"], 3u);               // since this agent's start
  EXPECT_EQ(status["taint_map_full_since_pinned"], 8u);  // since the map was made
  EXPECT_EQ(status["ringbuf_drops"], 3u);
  EXPECT_EQ(status["enforcement_map_full"], 4u);
}

// A deny kill whose fd table the kernel could not remember (nhg_doomed_files full) is alerted.
TEST_F(KernelCounterWatchTest, AFullDoomedFilesMapIsAlerted) {
  auto watch = make_watch();
  watch.start();
  counters_.values[NHG_CTR_DOOMED_FILES_FULL] = 2;
  watch.check();
  ASSERT_EQ(alerts_.size(), 1u);
  EXPECT_EQ(alerts_[0].kind, "doomed_files_full");
  EXPECT_EQ(alerts_[0].count, 2u);
  EXPECT_EQ(watch.status_json()["doomed_files_full"], 2u);
}

TEST_F(KernelCounterWatchTest, DropsWhileNoAgentRanAreTheNextStartsDowntimeGap) {
  {
    auto watch = make_watch();
    watch.start();
    watch.stop();  // clean stop: the snapshot holds these counters
  }
  counters_.values[NHG_CTR_RINGBUF_DROP_PROCESS] = 7;  // the pinned programs kept writing
  auto next = make_watch();
  const auto notice = next.start();
  ASSERT_TRUE(notice.has_value());
  EXPECT_EQ(notice->kind, "ringbuf_drops_downtime");
  EXPECT_EQ(notice->count, 7u);
  EXPECT_EQ(next.status_json()["ringbuf_drops"], 0u);  // not the running agent's
  EXPECT_EQ(next.status_json()["ringbuf_drops_downtime"], 7u);
  next.check();
  EXPECT_TRUE(alerts_.empty());  // the gap is a start notice, not a second alert
}

}  // namespace
}  // namespace nhiguard::daemon
