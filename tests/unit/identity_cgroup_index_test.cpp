// CgroupIndex: id -> path over a scratch directory tree (the walk is the same on any filesystem)
// and, read-only, over the host's real cgroup2 mount when there is one.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "identity/cgroup_index.h"
#include "identity/mountinfo.h"

using namespace nhiguard::identity;
namespace fs = std::filesystem;

namespace {

class ScratchTree : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nhiguard-cgidx-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    for (const char* d :
         {"system.slice/payments.service/worker", "user.slice/user-1000.slice/session-3.scope", "kubepods", "x"}) {
      fs::create_directories(root_ / d);
    }
    std::ofstream(root_ / "cgroup.procs") << "1\n";  // files are skipped by the walk
  }
  void TearDown() override { fs::remove_all(root_); }

  uint64_t ino(const std::string& rel) const {
    struct stat st{};
    EXPECT_EQ(::stat((root_ / rel).c_str(), &st), 0) << rel;
    return st.st_ino;
  }

  CgroupIndex::Options walk_only() const {
    CgroupIndex::Options o;
    o.use_file_handles = false;
    return o;
  }

  fs::path root_;
};

std::optional<std::string> own_cgroup_path() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) return line.substr(3);
  }
  return std::nullopt;
}

}  // namespace

TEST_F(ScratchTree, ResolvesIdsToRootRelativePaths) {
  CgroupIndex index(root_.string(), walk_only());
  auto p = index.path_of(ino("system.slice/payments.service/worker"));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(*p, "/system.slice/payments.service/worker");
  auto r = index.path_of(ino(""));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, "/");
  auto s = index.path_of(ino("user.slice/user-1000.slice/session-3.scope"));
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, "/user.slice/user-1000.slice/session-3.scope");

  auto id = index.id_of("/system.slice/payments.service");
  ASSERT_TRUE(id);
  EXPECT_EQ(*id, ino("system.slice/payments.service"));
  EXPECT_FALSE(index.id_of("/cgroup.procs"));
  EXPECT_FALSE(index.id_of("/nope"));
}

TEST_F(ScratchTree, SecondLookupIsACacheHit) {
  CgroupIndex index(root_.string(), walk_only());
  const uint64_t id = ino("kubepods");
  ASSERT_TRUE(index.path_of(id));
  const auto before = index.stats();
  ASSERT_TRUE(index.path_of(id));
  const auto after = index.stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.walks, before.walks);
}

TEST_F(ScratchTree, RescanCachesEverything) {
  CgroupIndex index(root_.string(), walk_only());
  auto n = index.rescan();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 9u);  // the root and 8 directories below it
  const auto walks = index.stats().walks;
  auto p = index.path_of(ino("x"));
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, "/x");
  EXPECT_EQ(index.stats().walks, walks);
}

TEST_F(ScratchTree, VanishedCgroupIsAnErrorAndRememberedBriefly) {
  CgroupIndex index(root_.string(), walk_only());
  const uint64_t id = ino("x");
  fs::remove(root_ / "x");
  auto p = index.path_of(id);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ENOENT);
  const auto walks = index.stats().walks;
  EXPECT_FALSE(index.path_of(id));
  EXPECT_EQ(index.stats().walks, walks) << "a burst of misses must not walk once each";
  index.forget(id);
  EXPECT_FALSE(index.path_of(id));
  EXPECT_EQ(index.stats().walks, walks + 1);
}

TEST_F(ScratchTree, NegativeEntriesExpire) {
  auto options = walk_only();
  options.negative_ttl = std::chrono::milliseconds(0);
  CgroupIndex index(root_.string(), options);
  EXPECT_FALSE(index.path_of(0xfffffffffff0ull));
  const auto walks = index.stats().walks;
  EXPECT_FALSE(index.path_of(0xfffffffffff0ull));
  EXPECT_EQ(index.stats().walks, walks + 1);
}

TEST_F(ScratchTree, CachedMappingOutlivesTheDirectory) {
  CgroupIndex index(root_.string(), walk_only());
  const uint64_t id = ino("x");
  ASSERT_TRUE(index.path_of(id));
  fs::remove(root_ / "x");
  auto p = index.path_of(id);
  ASSERT_TRUE(p);  // ids are not reused: it still says where that id was
  EXPECT_EQ(*p, "/x");
  index.forget(id);
  EXPECT_FALSE(index.path_of(id));
}

TEST_F(ScratchTree, BoundedCache) {
  for (int i = 0; i < 20; ++i) fs::create_directories(root_ / "many" / std::to_string(i));
  auto options = walk_only();
  options.max_entries = 3;
  CgroupIndex index(root_.string(), options);
  for (int i = 0; i < 20; ++i) {
    auto p = index.path_of(ino("many/" + std::to_string(i)));
    ASSERT_TRUE(p) << i;
    EXPECT_EQ(*p, "/many/" + std::to_string(i));
    EXPECT_LE(index.size(), 3u);
  }
  ASSERT_TRUE(index.rescan());
  EXPECT_LE(index.size(), 3u);
}

TEST_F(ScratchTree, DepthLimitStopsTheWalk) {
  fs::create_directories(root_ / "a/b/c/d/e");
  auto options = walk_only();
  options.max_depth = 2;
  CgroupIndex index(root_.string(), options);
  EXPECT_TRUE(index.path_of(ino("a/b")));
  EXPECT_FALSE(index.path_of(ino("a/b/c/d/e")));
}

TEST_F(ScratchTree, FileHandlesFallBackToTheWalkOffKernfs) {
  CgroupIndex index(root_.string());  // handles on: not kernfs here, so every miss must walk
  auto p = index.path_of(ino("system.slice/payments.service"));
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(*p, "/system.slice/payments.service");
  EXPECT_EQ(index.stats().handle_resolutions, 0u);
}

TEST_F(ScratchTree, ConcurrentLookups) {
  auto options = walk_only();
  options.max_entries = 4;  // force eviction under contention
  CgroupIndex index(root_.string(), options);
  const std::vector<std::pair<uint64_t, std::string>> expected = {
      {ino(""), "/"},
      {ino("system.slice"), "/system.slice"},
      {ino("system.slice/payments.service"), "/system.slice/payments.service"},
      {ino("system.slice/payments.service/worker"), "/system.slice/payments.service/worker"},
      {ino("user.slice/user-1000.slice"), "/user.slice/user-1000.slice"},
      {ino("kubepods"), "/kubepods"},
      {ino("x"), "/x"},
  };
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const auto& [id, path] = expected[static_cast<size_t>(i + t) % expected.size()];
        auto got = index.path_of(id);
        if (!got || *got != path) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_LE(index.size(), 4u);
}

TEST(CgroupIndexHost, RootAndOwnCgroupOnRealCgroup2) {
  auto mount = find_cgroup2_mount();
  if (!mount) GTEST_SKIP() << "no cgroup2 on this host: " << mount.error().message;
  for (bool handles : {false, true}) {
    SCOPED_TRACE(handles ? "file handles" : "walk only");
    CgroupIndex::Options options;
    options.use_file_handles = handles;
    CgroupIndex index(*mount, options);

    auto root_id = index.id_of("/");
    ASSERT_TRUE(root_id) << root_id.error().message;
    auto root_path = index.path_of(*root_id);
    ASSERT_TRUE(root_path) << root_path.error().message;
    EXPECT_EQ(*root_path, "/");

    auto own = own_cgroup_path();
    ASSERT_TRUE(own);
    // Inside a cgroup namespace the path is relative to the namespace root, which may not be the
    // mount's root; only compare when the path exists under the mount.
    if (auto own_id = index.id_of(*own); own_id) {
      auto p = index.path_of(*own_id);
      ASSERT_TRUE(p) << p.error().message;
      EXPECT_EQ(*p, *own);
    }

    auto missing = index.path_of(0xfffffffffffffff0ull);
    ASSERT_FALSE(missing);
  }
  CgroupIndex index(*mount);
  auto n = index.rescan();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_GE(*n, 1u);
}
