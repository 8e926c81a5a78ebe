// TargetResolver over a scratch directory tree standing in for cgroupfs (the cgroup id is the
// directory inode, as on cgroupfs) and a scratch /proc; no root needed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "containment/target_resolver.h"

using namespace nhiguard::containment;
namespace fs = std::filesystem;

namespace {

class ResolverScratch : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nhiguard-resolve-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    root_ = dir_ / "cgroup";
    for (const char* d : {"system.slice/payments.service/worker", "system.slice/dup.service",
                          "user.slice/user-1000.slice/session-3.scope", "user.slice/dup.service", "kubepods/pod1",
                          "system.slice/foo.slice/sshd.service",
                          // Look-alikes of sshd.service and payments.service: not the units.
                          "nhiguard-test-1/sshd.service", "anything/app.slice/sshd.service",
                          "user.slice/user-1000.slice/user@1000.service/app.slice/sshd.service",
                          "system.slice/payments.service/worker/sshd.service", "nhiguard-test-1/payments.service",
                          "nhiguard-test-1/lookalike-only.service"}) {
      fs::create_directories(root_ / d);
    }
    std::ofstream(root_ / "system.slice/file.service") << "not a dir";
    fs::create_directories(dir_ / "outside/evil.service");
    fs::create_directory_symlink(dir_ / "outside", root_ / "link");
    // A process fixture: pid 4242, session 4200, start tick 12345, in payments.service.
    const fs::path p = dir_ / "proc/4242";
    fs::create_directories(p);
    std::ofstream(p / "stat") << "4242 (pay ments) S 1 4200 4200 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0\n";
    std::ofstream(p / "status") << "Name:\tpay\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n";
    std::ofstream(p / "cgroup") << "0::/system.slice/payments.service\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  uint64_t ino(const std::string& rel) const {
    struct stat st{};
    EXPECT_EQ(::stat((root_ / rel).c_str(), &st), 0) << rel;
    return st.st_ino;
  }
  TargetResolver resolver() const { return TargetResolver(root_.string(), (dir_ / "proc").string()); }

  fs::path dir_, root_;
};

TEST(TargetResolverPure, NormalizeCgroupInput) {
  const std::string root = "/sys/fs/cgroup/unified";
  struct Case {
    std::string in, out;
  };
  for (const auto& c : {Case{"system.slice/x.service", "/system.slice/x.service"},
                        Case{"/system.slice/x.service/", "/system.slice/x.service"},
                        Case{"/sys/fs/cgroup/unified/system.slice/x.service", "/system.slice/x.service"},
                        Case{"/sys/fs/cgroup/unified", "/"}, Case{"/", "/"}, Case{"./a/./b", "/a/b"},
                        Case{"a/b/../c", "/a/c"}, Case{"/sys/fs/cgroup/unifiedx/a", "/sys/fs/cgroup/unifiedx/a"}}) {
    auto r = TargetResolver::normalize_cgroup_input(c.in, root);
    ASSERT_TRUE(r) << c.in << ": " << r.error().message;
    EXPECT_EQ(*r, c.out) << c.in;
  }
  for (const char* bad : {"..", "../etc", "a/../../b", "/sys/fs/cgroup/unified/../../x", ""}) {
    auto r = TargetResolver::normalize_cgroup_input(bad, root);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, EINVAL) << bad;
  }
}

TEST(TargetResolverPure, UnitNames) {
  for (const char* ok : {"payments.service", "session-3.scope", "user.slice", "a-b@1.service"}) {
    EXPECT_TRUE(TargetResolver::is_unit_name(ok)) << ok;
  }
  for (const char* bad : {"", ".service", "payments", "a/b.service", "payments.socket", "..", "x.service/"}) {
    EXPECT_FALSE(TargetResolver::is_unit_name(bad)) << bad;
  }
}

TEST(TargetResolverPure, StartTicks) {
  const uint64_t tick = ns_per_clock_tick();
  EXPECT_EQ(tick, 1'000'000'000ULL / static_cast<uint64_t>(sysconf(_SC_CLK_TCK)));
  EXPECT_EQ(start_ticks_to_ns(7), 7 * tick);
  EXPECT_TRUE(same_start(7 * tick, 7 * tick + tick - 1));
  EXPECT_FALSE(same_start(7 * tick, 8 * tick));
}

TEST_F(ResolverScratch, UnitFound) {
  auto t = resolver().resolve_unit("payments.service");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->unit, "payments.service");
  EXPECT_EQ(t->cgroup_path, "/system.slice/payments.service");
  EXPECT_EQ(t->cgroup_id, ino("system.slice/payments.service"));
  auto scope = resolver().resolve_unit("session-3.scope");
  ASSERT_TRUE(scope);
  EXPECT_EQ(scope->cgroup_path, "/user.slice/user-1000.slice/session-3.scope");
}

TEST_F(ResolverScratch, UnitUnknown) {
  auto t = resolver().resolve_unit("nope.service");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ENOENT);
  EXPECT_EQ(t.error().message, "unknown unit nope.service: no system unit cgroup of that name under " + root_.string() +
                                   " (a unit's cgroup lies below slices only, e.g. /system.slice/nope.service; name "
                                   "any other cgroup with --cgroup)");
  // Only look-alikes of this name exist: still unknown, the look-alike is never chosen.
  auto lookalike = resolver().resolve_unit("lookalike-only.service");
  ASSERT_FALSE(lookalike);
  EXPECT_EQ(lookalike.error().code, ENOENT);
  // A file named like a unit is not a cgroup; a unit behind a symlink is outside the tree.
  EXPECT_FALSE(resolver().resolve_unit("file.service"));
  EXPECT_FALSE(resolver().resolve_unit("evil.service"));
}

// The attack: directories named sshd.service below a test cgroup, a user's manager and another
// unit. --unit sshd.service is the system unit, not any of them (and not "several").
TEST_F(ResolverScratch, UnitIsTheSystemUnitNotALookAlike) {
  auto t = resolver().resolve_unit("sshd.service");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->cgroup_path, "/system.slice/foo.slice/sshd.service");
  auto payments = resolver().resolve_unit("payments.service");
  ASSERT_TRUE(payments) << payments.error().message;
  EXPECT_EQ(payments->cgroup_path, "/system.slice/payments.service");
  // A slice is a unit too.
  auto slice = resolver().resolve_unit("foo.slice");
  ASSERT_TRUE(slice) << slice.error().message;
  EXPECT_EQ(slice->cgroup_path, "/system.slice/foo.slice");
  // The look-alikes stay reachable by path.
  EXPECT_TRUE(resolver().resolve_cgroup("/nhiguard-test-1/sshd.service"));
}

TEST_F(ResolverScratch, UnitAmbiguousListsMatches) {
  auto t = resolver().resolve_unit("dup.service");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ENOTUNIQ);
  EXPECT_NE(t.error().message.find("/system.slice/dup.service, /user.slice/dup.service"), std::string::npos)
      << t.error().message;
  EXPECT_NE(t.error().message.find("--cgroup"), std::string::npos);
}

TEST_F(ResolverScratch, UnitBadName) {
  auto t = resolver().resolve_unit("payments");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, EINVAL);
}

TEST_F(ResolverScratch, CgroupSpellings) {
  for (const std::string& in : std::vector<std::string>{
           "system.slice/payments.service", "/system.slice/payments.service",
           root_.string() + "/system.slice/payments.service/", "system.slice/payments.service/worker/.."}) {
    auto t = resolver().resolve_cgroup(in);
    ASSERT_TRUE(t) << in << ": " << t.error().message;
    EXPECT_EQ(t->cgroup_path, "/system.slice/payments.service") << in;
    EXPECT_EQ(t->cgroup_id, ino("system.slice/payments.service")) << in;
  }
  auto root = resolver().resolve_cgroup("/");
  ASSERT_TRUE(root);  // resolvable; refusing the root is ProtectedTargets' job
  EXPECT_EQ(root->cgroup_path, "/");
}

TEST_F(ResolverScratch, CgroupRejected) {
  auto escape = resolver().resolve_cgroup("../outside/evil.service");
  ASSERT_FALSE(escape);
  EXPECT_EQ(escape.error().code, EINVAL);
  EXPECT_NE(escape.error().message.find("escapes"), std::string::npos);
  auto missing = resolver().resolve_cgroup("/system.slice/nope.service");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  auto file = resolver().resolve_cgroup("/system.slice/file.service");
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code, ENOTDIR);
  auto link = resolver().resolve_cgroup("/link/evil.service");
  ASSERT_FALSE(link);
  EXPECT_EQ(link.error().code, EINVAL);
  EXPECT_NE(link.error().message.find("outside the cgroup2 root"), std::string::npos) << link.error().message;
}

TEST_F(ResolverScratch, Pid) {
  auto t = resolver().resolve_pid(4242);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->pid, 4242u);
  EXPECT_EQ(t->pid_start_ns, start_ticks_to_ns(12345));
  EXPECT_EQ(t->session_id, 4200u);
  EXPECT_EQ(t->cgroup_path, "/system.slice/payments.service");
  EXPECT_EQ(t->cgroup_id, ino("system.slice/payments.service"));
  auto gone = resolver().resolve_pid(4243);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ESRCH);
  EXPECT_FALSE(resolver().resolve_pid(-1));
}

TEST_F(ResolverScratch, RequestNeedsExactlyOne) {
  EXPECT_FALSE(resolver().resolve(TargetRequest{}));
  EXPECT_FALSE(resolver().resolve(TargetRequest{"payments.service", "/system.slice", 0}));
  auto by_unit = resolver().resolve(TargetRequest{"payments.service", "", 0});
  ASSERT_TRUE(by_unit);
  EXPECT_EQ(by_unit->cgroup_path, "/system.slice/payments.service");
  auto by_pid = resolver().resolve(TargetRequest{"", "", 4242});
  ASSERT_TRUE(by_pid);
  EXPECT_EQ(by_pid->session_id, 4200u);
}

TEST(TargetResolverHost, OwnProcess) {
  // The real /proc; the cgroup root does not matter for the process fields (no cgroup2 needed).
  const TargetResolver r("/nonexistent-cgroup-root");
  auto t = r.resolve_pid(getpid());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(t->session_id, static_cast<uint32_t>(getsid(0)));
  EXPECT_GT(t->pid_start_ns, 0u);
}

}  // namespace
