// ExeHashCache: known digests, cache hits, invalidation on change, size limit, /proc/PID/exe for
// running and deleted executables.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "identity/exe_hash_cache.h"

using namespace nhiguard::identity;
namespace fs = std::filesystem;

namespace {

// FIPS 180-2 test vector: SHA-256("abc").
constexpr std::string_view kAbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// SHA-256("") .
constexpr std::string_view kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class ExeHashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nhiguard-exehash-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, std::string_view content) {
    const auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    return path;
  }

  fs::path dir_;
};

}  // namespace

TEST(Sha256Hex, KnownVectors) {
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex({reinterpret_cast<const unsigned char*>(abc.data()), abc.size()}), kAbcSha256);
  EXPECT_EQ(sha256_hex({}), kEmptySha256);
}

TEST_F(ExeHashTest, HashesKnownContentThenHitsTheCache) {
  ExeHashCache cache;
  const auto path = write("abc", "abc");
  auto first = cache.hash_path(path);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->sha256, kAbcSha256);
  EXPECT_FALSE(first->cached);
  EXPECT_FALSE(first->too_large);
  EXPECT_EQ(first->file.size, 3u);

  auto second = cache.hash_path(path);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->sha256, kAbcSha256);
  EXPECT_TRUE(second->cached);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
  EXPECT_EQ(cache.stats().bytes_hashed, 3u);
}

TEST_F(ExeHashTest, ModificationInvalidates) {
  ExeHashCache cache;
  const auto path = write("tool", "abc");
  ASSERT_TRUE(cache.hash_path(path));
  // File timestamps come from a coarse clock (one tick, at most 10 ms): let one pass so the
  // rewrite is a different version even at the same size.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  write("tool", "abd");
  auto after = cache.hash_path(path);
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_FALSE(after->cached);
  EXPECT_NE(after->sha256, kAbcSha256);
  const std::string abd = "abd";
  EXPECT_EQ(after->sha256, sha256_hex({reinterpret_cast<const unsigned char*>(abd.data()), abd.size()}));

  write("tool", "");  // a different size invalidates at once
  auto empty = cache.hash_path(path);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->sha256, kEmptySha256);
}

TEST_F(ExeHashTest, RestoringMtimeDoesNotHideARewrite) {
  ExeHashCache cache;
  const auto path = write("tool", "abc");
  ASSERT_TRUE(cache.hash_path(path));
  const auto mtime = fs::last_write_time(path);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  write("tool", "xyz");
  fs::last_write_time(path, mtime);  // the owner can do this; ctime still moves
  auto after = cache.hash_path(path);
  ASSERT_TRUE(after);
  EXPECT_FALSE(after->cached);
  EXPECT_NE(after->sha256, kAbcSha256);
}

TEST_F(ExeHashTest, LargerThanLimitIsNotHashedAndSaysSo) {
  ExeHashCache::Options options;
  options.max_file_size = 2;
  ExeHashCache cache(options);
  auto big = cache.hash_path(write("big", "abc"));
  ASSERT_TRUE(big);
  EXPECT_TRUE(big->too_large);
  EXPECT_TRUE(big->sha256.empty());
  EXPECT_EQ(cache.stats().too_large, 1u);
  auto small = cache.hash_path(write("small", "ab"));
  ASSERT_TRUE(small);
  EXPECT_FALSE(small->too_large);
  EXPECT_EQ(small->sha256.size(), 64u);
}

TEST_F(ExeHashTest, BoundedCache) {
  ExeHashCache::Options options;
  options.max_entries = 2;
  ExeHashCache cache(options);
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(cache.hash_path(write("f" + std::to_string(i), std::to_string(i))));
    EXPECT_LE(cache.size(), 2u);
  }
}

TEST_F(ExeHashTest, ErrorsAreValues) {
  ExeHashCache cache;
  auto missing = cache.hash_path((dir_ / "missing").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  auto directory = cache.hash_path(dir_.string());
  ASSERT_FALSE(directory);
  EXPECT_EQ(directory.error().code, EINVAL);

  ExeHashCache::Options options;
  options.proc_root = (dir_ / "no-proc").string();
  ExeHashCache no_proc(options);
  EXPECT_FALSE(no_proc.hash_pid(1));
}

TEST_F(ExeHashTest, OwnExecutableViaProc) {
  ExeHashCache cache;
  auto via_pid = cache.hash_pid(::getpid());
  ASSERT_TRUE(via_pid) << via_pid.error().message;
  auto via_path = cache.hash_path(fs::read_symlink("/proc/self/exe").string());
  ASSERT_TRUE(via_path) << via_path.error().message;
  EXPECT_EQ(via_pid->sha256, via_path->sha256);
  EXPECT_TRUE(via_path->cached);  // same file version, whichever way it was reached
}

TEST_F(ExeHashTest, DeletedExecutableOfARunningProcess) {
  const fs::path copy = dir_ / "sleeper";
  fs::copy_file("/bin/sleep", copy);
  fs::permissions(copy, fs::perms::owner_all);
  ExeHashCache reference_cache;
  auto reference = reference_cache.hash_path(copy.string());
  ASSERT_TRUE(reference);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::execl(copy.c_str(), "sleeper", "30", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until the child runs the copy (its exe link stops pointing at the test binary).
  for (int i = 0; i < 200; ++i) {
    std::error_code ec;
    const auto target = fs::read_symlink("/proc/" + std::to_string(child) + "/exe", ec);
    if (!ec && target == copy) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  fs::remove(copy);

  ExeHashCache cache;
  auto hashed = cache.hash_pid(child);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(hashed) << hashed.error().message;
  EXPECT_EQ(hashed->sha256, reference->sha256);
}

TEST_F(ExeHashTest, ConcurrentCallers) {
  ExeHashCache cache;
  const auto path = write("shared", "abc");
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        auto h = cache.hash_path(path);
        if (!h || h->sha256 != kAbcSha256) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.size(), 1u);
}
