// The host's redaction key file: created 0600 and reused; a damaged, loose, foreign or non-regular
// file is replaced with a warning; an unwritable state_dir still yields a key (in memory).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "identity/redaction_key.h"
#include "temp_dir.h"

using namespace nhiguard::identity;
namespace fs = std::filesystem;

namespace {

std::string key_path(const nhiguard::testing::TempDir& dir) {
  return (dir.path() / kRedactionKeyFile).string();
}

mode_t mode_of(const std::string& path) {
  struct stat st{};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

}  // namespace

TEST(RedactionKey, CreatedPrivateThenReused) {
  nhiguard::testing::TempDir dir("nhiguard-redaction-key");
  auto first = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(first.has_value()) << first.error().message;
  EXPECT_TRUE(first->created);
  EXPECT_TRUE(first->persisted);
  EXPECT_EQ(mode_of(key_path(dir)), 0600u);
  EXPECT_EQ(fs::file_size(key_path(dir)), 64u) << "32 key bytes and their SHA-256";
  EXPECT_FALSE(fs::exists(key_path(dir) + ".tmp"));

  auto again = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->created);
  EXPECT_TRUE(again->warning.empty()) << again->warning;
  EXPECT_EQ(again->key, first->key) << "one secret seen across restarts keeps its fingerprint";
  EXPECT_EQ(CmdlineRedactor(again->key).fingerprint("x"), CmdlineRedactor(first->key).fingerprint("x"));

  nhiguard::testing::TempDir other("nhiguard-redaction-key");
  auto elsewhere = load_or_create_redaction_key(other.path().string());
  ASSERT_TRUE(elsewhere.has_value());
  EXPECT_NE(elsewhere->key, first->key) << "each host draws its own key";
}

TEST(RedactionKey, DamagedFileIsReplacedWithAWarning) {
  nhiguard::testing::TempDir dir("nhiguard-redaction-key");
  auto first = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(first.has_value());
  {
    std::fstream f(key_path(dir), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3);
    f.put('\x5a' ^ static_cast<char>(first->key[3]));
  }
  auto replaced = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(replaced.has_value());
  EXPECT_TRUE(replaced->created);
  EXPECT_NE(replaced->warning.find("checksum"), std::string::npos) << replaced->warning;
  EXPECT_NE(replaced->key, first->key);
  auto reread = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(reread.has_value());
  EXPECT_EQ(reread->key, replaced->key) << "the replacement is stored";

  fs::resize_file(key_path(dir), 10);
  auto truncated = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(truncated.has_value());
  EXPECT_TRUE(truncated->created);
  EXPECT_NE(truncated->warning.find("10 bytes"), std::string::npos) << truncated->warning;
}

TEST(RedactionKey, FileOthersCanReadIsNotTrusted) {
  nhiguard::testing::TempDir dir("nhiguard-redaction-key");
  auto first = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(::chmod(key_path(dir).c_str(), 0644), 0);
  auto replaced = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(replaced.has_value());
  EXPECT_TRUE(replaced->created);
  EXPECT_NE(replaced->warning.find("0644"), std::string::npos) << replaced->warning;
  EXPECT_NE(replaced->key, first->key) << "a key others could read may have leaked";
  EXPECT_EQ(mode_of(key_path(dir)), 0600u);
}

TEST(RedactionKey, SymlinkIsNeverFollowed) {
  nhiguard::testing::TempDir dir("nhiguard-redaction-key");
  const std::string target = (dir.path() / "elsewhere").string();
  {
    std::ofstream(target) << "not a key";
  }
  fs::create_symlink(target, key_path(dir));
  auto key = load_or_create_redaction_key(dir.path().string());
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_TRUE(key->created);
  EXPECT_FALSE(key->warning.empty());
  EXPECT_FALSE(fs::is_symlink(key_path(dir)));
  std::ifstream in(target);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "not a key") << "the link's target is untouched";
}

TEST(RedactionKey, UnwritableStateDirStillGivesAKey) {
  nhiguard::testing::TempDir dir("nhiguard-redaction-key");
  const std::string missing = (dir.path() / "no" / "such" / "dir").string();
  auto key = load_or_create_redaction_key(missing);
  ASSERT_TRUE(key.has_value()) << key.error().message;
  EXPECT_FALSE(key->persisted);
  EXPECT_NE(key->warning.find("held in memory"), std::string::npos) << key->warning;
}
