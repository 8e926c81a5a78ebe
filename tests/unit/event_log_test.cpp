// JsonLineWriter: whole lines, permissions, rotation, concurrency, external rotation, failures.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "events/event_log.h"

namespace nhiguard::events {
namespace {

namespace fs = std::filesystem;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nhiguard-eventlog-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::vector<std::string> lines_of(const std::string& path) {
    std::vector<std::string> lines;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) lines.push_back(line);
    return lines;
  }

  static mode_t mode_of(const std::string& path) {
    struct stat st{};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  std::string dir_;
};

TEST_F(EventLogTest, WritesOneCompactObjectPerLine) {
  JsonLineWriter writer({.path = dir_ + "/events.jsonl"});
  ASSERT_TRUE(writer.write({{"type", "credential_open"}, {"path", "/home/u/.aws/credentials"}}).has_value());
  ASSERT_TRUE(writer.write({{"n", 2}, {"text", "multi\nline"}}).has_value());
  const auto lines = lines_of(dir_ + "/events.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], R"({"path":"/home/u/.aws/credentials","type":"credential_open"})");
  EXPECT_EQ(nlohmann::json::parse(lines[1])["text"], "multi\nline");
  const auto stats = writer.stats();
  EXPECT_EQ(stats.lines_written, 2u);
  EXPECT_EQ(stats.bytes_written, fs::file_size(dir_ + "/events.jsonl"));
  EXPECT_EQ(stats.lines_dropped, 0u);
}

TEST_F(EventLogTest, InvalidUtf8DoesNotThrow) {
  JsonLineWriter writer({.path = dir_ + "/events.jsonl"});
  EXPECT_NO_THROW({
    auto written = writer.write({{"comm", std::string("bad\xff\xfe")}});
    EXPECT_TRUE(written.has_value());
  });
  EXPECT_FALSE(writer.write_line("two\nlines").has_value());
  EXPECT_EQ(lines_of(dir_ + "/events.jsonl").size(), 1u);
}

TEST_F(EventLogTest, CreatesPrivateDirectoriesAndFile) {
  const std::string path = dir_ + "/state/nested/events.jsonl";
  const mode_t old_umask = ::umask(0);  // the writer's modes must not depend on the caller's umask
  JsonLineWriter writer({.path = path});
  auto opened = writer.open();
  ::umask(old_umask);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  ASSERT_TRUE(writer.write({{"a", 1}}).has_value());
  EXPECT_EQ(mode_of(dir_ + "/state"), 0700u);
  EXPECT_EQ(mode_of(dir_ + "/state/nested"), 0700u);
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(mode_of(dir_), 0700u) << "mkdtemp's; existing directories are left alone";
}

TEST_F(EventLogTest, NarrowsAnExistingWideFileAndAppends) {
  const std::string path = dir_ + "/events.jsonl";
  std::ofstream(path) << "{\"old\":true}\n";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  JsonLineWriter writer({.path = path});
  ASSERT_TRUE(writer.write({{"new", true}}).has_value());
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(lines_of(path), (std::vector<std::string>{R"({"old":true})", R"({"new":true})"}));
}

TEST_F(EventLogTest, RotatesBySizeKeepingNFiles) {
  const std::string path = dir_ + "/events.jsonl";
  JsonLineWriter writer({.path = path, .max_bytes = 1000, .keep = 3});
  const std::string padding(80, 'x');
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(writer.write({{"i", i}, {"pad", padding}}).has_value());

  for (const std::string& file : {path, path + ".1", path + ".2", path + ".3"}) {
    ASSERT_TRUE(fs::exists(file)) << file;
    EXPECT_LE(fs::file_size(file), 1000u) << file;
    EXPECT_EQ(mode_of(file), 0600u) << file;
  }
  EXPECT_FALSE(fs::exists(path + ".4"));
  EXPECT_GT(writer.stats().rotations, 3u);

  // Newest in path, then .1, .2, .3: the sequence numbers continue across the files.
  std::vector<int> sequence;
  for (const std::string& file : {path + ".3", path + ".2", path + ".1", path}) {
    for (const std::string& line : lines_of(file)) sequence.push_back(nlohmann::json::parse(line)["i"].get<int>());
  }
  ASSERT_FALSE(sequence.empty());
  EXPECT_EQ(sequence.back(), 99);
  for (std::size_t k = 1; k < sequence.size(); ++k) EXPECT_EQ(sequence[k], sequence[k - 1] + 1);
}

TEST_F(EventLogTest, KeepZeroAndNoRotation) {
  const std::string path = dir_ + "/events.jsonl";
  {
    JsonLineWriter writer({.path = path, .max_bytes = 200, .keep = 0});
    for (int i = 0; i < 20; ++i) ASSERT_TRUE(writer.write({{"i", i}, {"pad", std::string(40, 'y')}}).has_value());
    EXPECT_FALSE(fs::exists(path + ".1"));
    EXPECT_LE(fs::file_size(path), 200u);
  }
  fs::remove(path);
  JsonLineWriter unlimited({.path = path, .max_bytes = 0});
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(unlimited.write({{"i", i}}).has_value());
  EXPECT_EQ(lines_of(path).size(), 50u);
  EXPECT_EQ(unlimited.stats().rotations, 0u);
}

TEST_F(EventLogTest, ConcurrentWritersProduceWholeLinesOnly) {
  const std::string path = dir_ + "/events.jsonl";
  JsonLineWriter writer({.path = path, .max_bytes = 64 * 1024, .keep = 50});
  constexpr int kThreads = 8;
  constexpr int kLines = 500;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        // Lines of different lengths, so interleaving would be visible.
        if (!writer.write({{"t", t}, {"i", i}, {"pad", std::string(static_cast<std::size_t>(i % 97), 'a' + t)}})) {
          ++failures;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);

  std::map<int, std::vector<int>> seen;
  std::size_t total = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    for (const std::string& line : lines_of(entry.path())) {
      nlohmann::json j;
      ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
      const int t = j["t"].get<int>();
      EXPECT_EQ(j["pad"].get<std::string>(), std::string(static_cast<std::size_t>(j["i"].get<int>() % 97), 'a' + t));
      seen[t].push_back(j["i"].get<int>());
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kThreads * kLines));
  for (auto& [t, indices] : seen) {
    std::sort(indices.begin(), indices.end());
    ASSERT_EQ(indices.size(), static_cast<std::size_t>(kLines)) << "thread " << t;
    for (int i = 0; i < kLines; ++i) EXPECT_EQ(indices[static_cast<std::size_t>(i)], i);
  }
  EXPECT_GT(writer.stats().rotations, 0u);
}

TEST_F(EventLogTest, ReopensAfterExternalRemovalOrRename) {
  const std::string path = dir_ + "/events.jsonl";
  JsonLineWriter writer({.path = path});
  ASSERT_TRUE(writer.write({{"n", 1}}).has_value());

  fs::remove(path);
  ASSERT_TRUE(writer.write({{"n", 2}}).has_value());
  EXPECT_EQ(lines_of(path), std::vector<std::string>{R"({"n":2})"});

  fs::rename(path, path + ".old");  // logrotate-style move
  ASSERT_TRUE(writer.write({{"n", 3}}).has_value());
  EXPECT_EQ(lines_of(path), std::vector<std::string>{R"({"n":3})"});
  EXPECT_EQ(lines_of(path + ".old"), std::vector<std::string>{R"({"n":2})"});

  ASSERT_TRUE(writer.reopen().has_value());
  ASSERT_TRUE(writer.write({{"n", 4}}).has_value());
  EXPECT_EQ(lines_of(path).size(), 2u);
}

TEST_F(EventLogTest, UnwritableLocationIsAnErrorAndRecovers) {
  // A regular file where a directory should be: fails even for root, unlike permission bits.
  const std::string blocker = dir_ + "/state";
  std::ofstream(blocker) << "not a directory";
  const std::string path = blocker + "/events.jsonl";
  JsonLineWriter writer({.path = path});

  auto opened = writer.open();
  ASSERT_FALSE(opened.has_value());
  EXPECT_NE(opened.error().message.find(path), std::string::npos) << opened.error().message;

  Result<void> written;
  EXPECT_NO_THROW(written = writer.write({{"n", 1}}));
  ASSERT_FALSE(written.has_value());
  EXPECT_EQ(written.error().code, ENOTDIR);
  EXPECT_NE(written.error().message.find("1 lines dropped"), std::string::npos) << written.error().message;
  EXPECT_FALSE(writer.write({{"n", 2}}).has_value());
  EXPECT_EQ(writer.stats().lines_dropped, 2u);

  // The location becomes writable: the same writer carries on.
  fs::remove(blocker);
  ASSERT_TRUE(writer.write({{"n", 3}}).has_value());
  EXPECT_EQ(lines_of(path), std::vector<std::string>{R"({"n":3})"});
  EXPECT_EQ(writer.stats().lines_written, 1u);
}

TEST_F(EventLogTest, SymlinkAtThePathIsRefused) {
  const std::string target = dir_ + "/elsewhere";
  std::ofstream(target) << "";
  fs::create_symlink(target, dir_ + "/events.jsonl");
  JsonLineWriter writer({.path = dir_ + "/events.jsonl"});
  auto written = writer.write({{"n", 1}});
  ASSERT_FALSE(written.has_value());
  EXPECT_EQ(written.error().code, ELOOP);
  EXPECT_EQ(fs::file_size(target), 0u);
}

TEST_F(EventLogTest, RelativePathIsAnError) {
  JsonLineWriter writer({.path = "events.jsonl"});
  EXPECT_FALSE(writer.write({{"n", 1}}).has_value());
}

TEST_F(EventLogTest, MirrorsLinesToTheMirrorFd) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  JsonLineWriter writer({.path = dir_ + "/events.jsonl", .mirror_stdout = true, .mirror_fd = pipe_fds[1]});
  ASSERT_TRUE(writer.write({{"n", 1}}).has_value());
  char buffer[64] = {};
  const ssize_t n = ::read(pipe_fds[0], buffer, sizeof buffer - 1);
  EXPECT_EQ(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0), "{\"n\":1}\n");
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  // A broken mirror is counted, the file still gets the line.
  JsonLineWriter broken({.path = dir_ + "/events.jsonl", .mirror_stdout = true, .mirror_fd = -1});
  ASSERT_TRUE(broken.write({{"n", 2}}).has_value());
  EXPECT_EQ(broken.stats().mirror_failures, 1u);
  EXPECT_EQ(lines_of(dir_ + "/events.jsonl").size(), 2u);
}

}  // namespace
}  // namespace nhiguard::events
