// The collector-imposed mode kept across restarts: round trip, absent file, damaged file, atomic
// replacement (no temporary left behind), private file mode.
#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "config/persisted_mode.h"
#include "temp_dir.h"

namespace nhiguard::config {
namespace {

class PersistedModeTest : public ::testing::Test {
 protected:
  void SetUp() override { path_ = (root_ / "mode.json").string(); }
  testing::TempDir tmp_{"nhiguard-mode"};
  const std::filesystem::path root_ = tmp_.path();
  std::string path_;
};

TEST_F(PersistedModeTest, AbsentFileMeansNoOverride) {
  auto loaded = load_mode_override(path_);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_FALSE(loaded->has_value());
  EXPECT_TRUE(clear_mode_override(path_));  // clearing nothing is fine
}

TEST_F(PersistedModeTest, RoundTripsAndReplacesAtomically) {
  ModeOverride observe{config::AgentMode::observe, "collector (fleet)", "01JCMD", 1'700'000'000'000'000'000};
  ASSERT_TRUE(save_mode_override(path_, observe));
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  auto loaded = load_mode_override(path_);
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ((*loaded)->mode, config::AgentMode::observe);
  EXPECT_EQ((*loaded)->set_by, "collector (fleet)");
  EXPECT_EQ((*loaded)->command_id, "01JCMD");
  EXPECT_EQ((*loaded)->set_at_ns, 1'700'000'000'000'000'000);

  ASSERT_TRUE(save_mode_override(path_, {config::AgentMode::policy, "collector (agent)", "", 5}));
  loaded = load_mode_override(path_);
  ASSERT_TRUE(loaded && loaded->has_value());
  EXPECT_EQ((*loaded)->mode, config::AgentMode::policy);
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));

  ASSERT_TRUE(clear_mode_override(path_));
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(PersistedModeTest, DamagedFileIsAnErrorNamingIt) {
  std::ofstream(path_) << "{\"mode\": \"enforce\"}";
  auto unknown = load_mode_override(path_);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown mode 'enforce'"), std::string::npos) << unknown.error().message;
  std::ofstream(path_, std::ios::trunc) << "{not json";
  auto broken = load_mode_override(path_);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find(path_), std::string::npos) << broken.error().message;
}

TEST_F(PersistedModeTest, UnwritableLocationIsAnError) {
  auto saved = save_mode_override((root_ / "missing-dir" / "mode.json").string(), {});
  ASSERT_FALSE(saved);
  EXPECT_EQ(saved.error().code, ENOENT);
  EXPECT_NE(saved.error().message.find("save mode override"), std::string::npos);
}

}  // namespace
}  // namespace nhiguard::config
