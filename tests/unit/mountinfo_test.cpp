// mountinfo parsing and discovery of the cgroup2, bpffs and tracefs mounts.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "common/filesystem.h"
#include "identity/mountinfo.h"

using namespace nhiguard::identity;
using nhiguard::read_text_file;

namespace {

std::string fixture_path(const std::string& name) {
  return std::string(NHIGUARD_TEST_FIXTURES) + "/identity/" + name;
}

std::vector<MountEntry> load(const std::string& name) {
  auto text = read_text_file(fixture_path(name));
  EXPECT_TRUE(text) << text.error().message;
  auto mounts = parse_mountinfo(text.value_or(""));
  EXPECT_TRUE(mounts) << mounts.error().message;
  return mounts.value_or(std::vector<MountEntry>{});
}

}  // namespace

TEST(Mountinfo, ParsesAllFieldsOfALine) {
  auto mounts = parse_mountinfo(
      "31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:10 master:2 - cgroup2 cgroup2 rw,nsdelegate\n");
  ASSERT_TRUE(mounts) << mounts.error().message;
  ASSERT_EQ(mounts->size(), 1u);
  const MountEntry& m = mounts->front();
  EXPECT_EQ(m.mount_id, 31u);
  EXPECT_EQ(m.parent_id, 30u);
  EXPECT_EQ(m.dev_major, 0u);
  EXPECT_EQ(m.dev_minor, 27u);
  EXPECT_EQ(m.root, "/");
  EXPECT_EQ(m.mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(m.mount_options, "rw,nosuid,relatime");
  EXPECT_EQ(m.optional_fields, (std::vector<std::string>{"shared:10", "master:2"}));
  EXPECT_EQ(m.fs_type, "cgroup2");
  EXPECT_EQ(m.source, "cgroup2");
  EXPECT_EQ(m.super_options, "rw,nsdelegate");
}

TEST(Mountinfo, HybridLayoutFindsUnified) {
  const auto mounts = load("mountinfo_hybrid.txt");
  auto cg = find_cgroup2(mounts);
  ASSERT_TRUE(cg) << cg.error().message;
  EXPECT_EQ(cg->mount_point, "/sys/fs/cgroup/unified");
  EXPECT_EQ(bpffs_mount_points(mounts), (std::vector<std::string>{"/sys/fs/bpf"}));
  EXPECT_EQ(tracefs_mount_points(mounts),
            (std::vector<std::string>{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}));
  EXPECT_EQ(mounts_of_type(mounts, "cgroup").size(), 4u);
}

TEST(Mountinfo, UnifiedLayoutPrefersWholeHierarchyOverSubtreeBind) {
  const auto mounts = load("mountinfo_unified.txt");
  auto cg = find_cgroup2(mounts);
  ASSERT_TRUE(cg) << cg.error().message;
  EXPECT_EQ(cg->mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(cg->root, "/");
  EXPECT_EQ(mounts_of_type(mounts, "cgroup2").size(), 2u);
}

TEST(Mountinfo, OctalEscapesInMountPoints) {
  const auto mounts = load("mountinfo_unified.txt");
  std::vector<std::string> points;
  for (const auto& m : mounts) points.push_back(m.mount_point);
  EXPECT_NE(std::find(points.begin(), points.end(), "/mnt/backup disk"), points.end());
  EXPECT_NE(std::find(points.begin(), points.end(), "/var/lib/view of\tcgroup"), points.end());
  EXPECT_EQ(bpffs_mount_points(mounts), (std::vector<std::string>{"/sys/fs/bpf", "/opt/my\\bpf pins"}));

  EXPECT_EQ(unescape_mount_field("a\\040b\\011c\\012d\\134e"), "a b\tc\nd\\e");
  EXPECT_EQ(unescape_mount_field("trailing\\04"), "trailing\\04");  // incomplete escape kept
  EXPECT_EQ(unescape_mount_field("not\\999octal"), "not\\999octal");
  EXPECT_EQ(unescape_mount_field("\\"), "\\");
}

TEST(Mountinfo, LegacyLayoutHasNoCgroup2) {
  const auto mounts = load("mountinfo_legacy.txt");
  EXPECT_FALSE(mounts.empty());
  auto cg = find_cgroup2(mounts);
  ASSERT_FALSE(cg);
  EXPECT_EQ(cg.error().code, ENOENT);
  auto via_file = find_cgroup2_mount(fixture_path("mountinfo_legacy.txt"));
  ASSERT_FALSE(via_file);
  EXPECT_EQ(via_file.error().code, ENOENT);
}

TEST(Mountinfo, FindCgroup2MountFromFile) {
  auto hybrid = find_cgroup2_mount(fixture_path("mountinfo_hybrid.txt"));
  ASSERT_TRUE(hybrid) << hybrid.error().message;
  EXPECT_EQ(*hybrid, "/sys/fs/cgroup/unified");
  auto missing = find_cgroup2_mount(fixture_path("does-not-exist"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
}

TEST(Mountinfo, LaterMountOnSamePointHidesEarlier) {
  auto mounts = parse_mountinfo(
      "1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      "2 0 0:2 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
      "3 2 0:3 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(mounts);
  auto cg = find_cgroup2(*mounts);
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->mount_point, "/sys/fs/cgroup/unified");
}

TEST(Mountinfo, MalformedLinesAreErrorsWithLineNumbers) {
  for (std::string_view bad :
       {"garbage\n", "1 2 0:3 / /x rw shared:1 cgroup2 cgroup2 rw\n", "x 2 0:3 / /x rw - cgroup2 cgroup2 rw\n",
        "1 2 03 / /x rw - cgroup2 cgroup2 rw\n", "1 2 0:3 / /x rw -\n"}) {
    auto mounts = parse_mountinfo(std::string("1 0 0:1 / / rw - ext4 /dev/sda rw\n") + std::string(bad));
    ASSERT_FALSE(mounts) << bad;
    EXPECT_NE(mounts.error().message.find("line 2"), std::string::npos) << mounts.error().message;
  }
  auto empty = parse_mountinfo("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(Mountinfo, RealMountinfoParses) {
  auto text = read_text_file("/proc/self/mountinfo");
  ASSERT_TRUE(text) << text.error().message;
  auto mounts = parse_mountinfo(*text);
  ASSERT_TRUE(mounts) << mounts.error().message;
  EXPECT_FALSE(mounts->empty());
  // Whether this host has cgroup2 is the host's business; if it does, the answer must be a directory.
  if (auto cg = find_cgroup2_mount(); cg) {
    EXPECT_FALSE(cg->empty());
    std::ifstream probe(*cg + "/cgroup.procs");
    EXPECT_TRUE(probe.good()) << *cg;
  }
}
