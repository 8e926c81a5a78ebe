// State files under state_dir: the atomic write (a crash between write and rename leaves the old
// file), the checked read (truncated, edited, not JSON: refused as damaged), the quarantine of a
// damaged file (kept under a timestamped name), and the rebuild of credential ids from pinned state.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/filesystem.h"
#include "common/state_file.h"
#include "daemon/state_recovery.h"
#include "temp_dir.h"

namespace nhiguard {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class StateFileTest : public ::testing::Test {
 protected:
  testing::TempDir tmp_{"nhiguard-state-file"};
  const std::string path_ = (tmp_.path() / "credential_ids.json").string();
};

TEST_F(StateFileTest, CrashBetweenWriteAndRenameLeavesTheOldFile) {
  ASSERT_TRUE(write_file_atomically(path_, "old\n"));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    AtomicFileWriter writer(path_);
    if (!writer.write("new content that never lands\n")) _exit(2);
    _exit(0);  // dies before commit(): no destructor, no rename, as a crash would
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(read_all(path_), "old\n");
  EXPECT_TRUE(std::filesystem::exists(path_ + ".tmp"));  // the crash's leftover, complete but not in place
  // The next write replaces both.
  ASSERT_TRUE(write_file_atomically(path_, "newer\n"));
  EXPECT_EQ(read_all(path_), "newer\n");
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
  struct stat st{};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(StateFileTest, UncommittedWriterRemovesItsTemporaryFile) {
  ASSERT_TRUE(write_file_atomically(path_, "old\n"));
  {
    AtomicFileWriter writer(path_);
    ASSERT_TRUE(writer.write("abandoned\n"));
  }
  EXPECT_EQ(read_all(path_), "old\n");
  EXPECT_FALSE(std::filesystem::exists(path_ + ".tmp"));
}

TEST_F(StateFileTest, RoundTripsWithAChecksumAndStaysPlainJson) {
  const nlohmann::json ids = {{"/root/.aws/credentials", 3}, {"/home/a/.netrc", 7}};
  ASSERT_TRUE(write_state_file(path_, ids));
  auto read = read_state_file(path_);
  ASSERT_TRUE(read && read->has_value()) << (read ? "missing" : read.error().message);
  EXPECT_EQ((*read)->content, ids);
  EXPECT_FALSE((*read)->unchecked);
  const auto raw = nlohmann::json::parse(read_all(path_));
  EXPECT_EQ(raw["/root/.aws/credentials"], 3);  // readable by jq as before
  EXPECT_TRUE(raw.contains(kStateFileChecksumKey));
}

TEST_F(StateFileTest, MissingFileIsNone) {
  auto read = read_state_file(path_);
  ASSERT_TRUE(read);
  EXPECT_FALSE(read->has_value());
}

TEST_F(StateFileTest, TruncatedEditedOrEmptyFilesAreDamaged) {
  ASSERT_TRUE(write_state_file(path_, {{"/a", 1}, {"/b", 2}}));
  const std::string good = read_all(path_);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated", good.substr(0, good.size() / 2)},
      {"edited",
       [&] {
         std::string edited = good;
         edited.replace(edited.find("\"/b\":2"), 6, "\"/b\":1");
         return edited;
       }()},
      {"empty", ""},
      {"array", "[1,2]"},
      {"garbage", "\x01\x02\x03"},
  };
  for (const auto& [name, content] : cases) {
    std::ofstream(path_, std::ios::trunc) << content;
    auto read = read_state_file(path_);
    ASSERT_FALSE(read) << name;
    EXPECT_EQ(read.error().code, EUCLEAN) << name;
    EXPECT_NE(read.error().message.find(path_), std::string::npos) << read.error().message;
  }
}

TEST_F(StateFileTest, FileFromBeforeChecksumsIsAcceptedAsUnchecked) {
  std::ofstream(path_) << R"({"/a":1})";
  auto read = read_state_file(path_);
  ASSERT_TRUE(read && read->has_value());
  EXPECT_TRUE((*read)->unchecked);
  EXPECT_EQ((*read)->content["/a"], 1);
}

TEST_F(StateFileTest, LoadMovesADamagedFileAsideAndKeepsIt) {
  std::ofstream(path_) << R"({"/a":1, "/b")";
  auto loaded = load_state_file(path_);
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_FALSE(loaded->file);
  EXPECT_NE(loaded->damage.find("not JSON"), std::string::npos) << loaded->damage;
  ASSERT_FALSE(loaded->quarantined_as.empty());
  EXPECT_NE(loaded->quarantined_as.find("credential_ids.json.damaged-"), std::string::npos);
  EXPECT_EQ(read_all(loaded->quarantined_as), R"({"/a":1, "/b")");
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(StateFileTest, QuarantineTakesTheSqliteCompanionsAndRefusesSymlinks) {
  const std::string db = (tmp_.path() / "ledger.db").string();
  std::ofstream(db) << "db";
  std::ofstream(db + "-wal") << "wal";
  auto first = quarantine_file(db);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(read_all(*first), "db");
  EXPECT_EQ(read_all(*first + "-wal"), "wal");
  EXPECT_FALSE(std::filesystem::exists(db + "-wal"));
  std::ofstream(db) << "db2";
  auto second = quarantine_file(db);  // same second: a suffix keeps both
  ASSERT_TRUE(second);
  EXPECT_NE(*first, *second);
  EXPECT_EQ(read_all(*first), "db");

  const std::string link = (tmp_.path() / "outbox.db").string();
  std::filesystem::create_symlink("/etc/hostname", link);
  auto refused = quarantine_file(link);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, EINVAL);
  EXPECT_TRUE(std::filesystem::is_symlink(link));
}

// The catalogue numbered a.txt and b.txt afresh (1, 2) after credential_ids.json was lost, but the
// kernel's pinned map says b's inode is 1 and a's is 2, and a deny refers to id 5: the rebuilt ids
// follow the kernel, and new ids start above 5.
TEST(CredentialIdRecoveryTest, PinnedInodesKeepTheirIdsAndPinnedIdsAreNeverReused) {
  std::vector<catalogue::ResolvedCredential> resolved = {
      {.credential_id = 1, .path = "/a.txt", .dev = 8, .ino = 100},
      {.credential_id = 2, .path = "/b.txt", .aliases = {"/link-to-b"}, .dev = 8, .ino = 200},
      {.credential_id = 3, .path = "/new.txt", .dev = 8, .ino = 300},
  };
  std::vector<std::pair<nhg_inode_key, nhg_credential_value>> pinned = {
      {{.dev = 8, .ino = 200}, {.credential_id = 1}},
      {{.dev = 8, .ino = 100}, {.credential_id = 2}},
      {{.dev = 8, .ino = 999}, {.credential_id = 4}},  // a file that is gone
  };
  std::vector<std::pair<nhg_deny_key, nhg_deny_value>> denies = {{{.credential_id = 5, .cgroup_id = 77}, {}}};
  const auto recovery = daemon::recover_credential_ids(resolved, pinned, denies);
  EXPECT_EQ(recovery.ids.at("/b.txt"), 1u);
  EXPECT_EQ(recovery.ids.at("/link-to-b"), 1u);
  EXPECT_EQ(recovery.ids.at("/a.txt"), 2u);
  EXPECT_FALSE(recovery.ids.contains("/new.txt"));  // numbered by the catalogue, from first_free_id
  EXPECT_EQ(recovery.first_free_id, 6u);
  EXPECT_EQ(recovery.kept_from_pins, 2u);
  EXPECT_EQ(recovery.unmatched_ids, std::vector<uint32_t>{4});
}

TEST(UnownedKernelStateTest, ReportsPinnedEntriesNoActiveHandleAccountsFor) {
  containment::RollbackHandle owned;
  owned.action = containment::ActionKind::deny_credential;
  owned.target.cgroup_id = 10;
  owned.target.credential_id = 3;
  const uint64_t now = 1'000'000'000'000;
  std::vector<std::pair<uint64_t, nhg_egress_block>> blocks = {
      {20, {.expires_at_ns = now + 60'000'000'000, .mode = NHG_BLOCK_ALL, .rule_id = 9}},
      {21, {.expires_at_ns = now - 1, .mode = NHG_BLOCK_ALL, .rule_id = 9}},  // expired: not in force
  };
  std::vector<std::pair<nhg_deny_key, nhg_deny_value>> denies = {
      {{.credential_id = 3, .cgroup_id = 10}, {.expires_at_ns = now + 1}},
      {{.credential_id = 4, .cgroup_id = 10}, {.expires_at_ns = now + 1}},
  };
  const auto unowned = daemon::unowned_kernel_state({owned}, blocks, denies, now);
  ASSERT_EQ(unowned.size(), 2u);
  EXPECT_NE(unowned[0].find("egress block on cgroup 20"), std::string::npos) << unowned[0];
  EXPECT_NE(unowned[1].find("credential 4 in cgroup 10"), std::string::npos) << unowned[1];
}

}  // namespace
}  // namespace nhiguard
