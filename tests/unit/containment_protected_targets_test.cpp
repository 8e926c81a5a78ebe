// ProtectedTargets rules over a fixed snapshot (no /proc, no root), table-driven; and the reading
// layers over a scratch tree standing in for /proc and cgroupfs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "containment/protected_targets.h"
#include "containment/target_resolver.h"

using namespace nhiguard::containment;
namespace fs = std::filesystem;

namespace {

uint64_t ticks(uint64_t t) {
  return start_ticks_to_ns(t);
}

ProtectedTargets::Snapshot snapshot() {
  ProtectedTargets::Snapshot s;
  s.agent = {4000, ticks(500), "/system.slice/nhiguard-agent.service", "nhiguard-agent"};
  s.init = {1, ticks(1), "/init.scope", "systemd"};
  s.ancestors = {{3990, ticks(490), "/user.slice/user-0.slice/session-1.scope", "bash"},
                 {1, ticks(1), "/init.scope", "systemd"}};
  s.break_glass.cgroups = {"/system.slice/sshd.service"};
  s.break_glass.units = {"breakglass.service"};
  s.break_glass.user_units = {{1000, "backup.service"}};
  s.break_glass.uids = {4242};
  return s;
}

struct CgroupCase {
  std::string path;
  bool allowed;
  std::string why_contains;  // a word the refusal must contain
};

class ProtectedCgroups : public ::testing::TestWithParam<CgroupCase> {};

TEST_P(ProtectedCgroups, Rule) {
  const ProtectedTargets targets(snapshot());
  const auto& c = GetParam();
  auto r = targets.check_cgroup(c.path);
  if (c.allowed) {
    EXPECT_TRUE(r.has_value()) << c.path << ": " << r.error().message;
  } else {
    ASSERT_FALSE(r.has_value()) << c.path << " should be refused";
    EXPECT_EQ(r.error().code, EPERM);
    EXPECT_NE(r.error().message.find(c.why_contains), std::string::npos) << r.error().message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProtectedCgroups,
    ::testing::Values(
        CgroupCase{"/", false, "root"}, CgroupCase{"", false, "root"}, CgroupCase{"//", false, "root"},
        CgroupCase{"/system.slice/nhiguard-agent.service", false, "is the agent's own cgroup"},
        CgroupCase{"system.slice/nhiguard-agent.service/", false, "agent's own cgroup"},
        CgroupCase{"/system.slice", false, "contains the agent's own cgroup"},
        CgroupCase{"/init.scope", false, "PID 1"},
        CgroupCase{"/system.slice/sshd.service", false, "break-glass cgroup"},
        CgroupCase{"/system.slice/sshd.service/child", false, "is inside break-glass cgroup"},
        // A break-glass unit is the system unit: its cgroup below slices only.
        CgroupCase{"/system.slice/breakglass.service", false, "break-glass unit breakglass.service"},
        CgroupCase{"/system.slice/foo.slice/breakglass.service/child", false,
                   "is inside break-glass unit breakglass.service"},
        CgroupCase{"/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service", false,
                   "break-glass unit backup.service of uid 1000"},
        // Look-alikes: a directory of that name anywhere else is not protected.
        CgroupCase{"/nhiguard-test-x/breakglass.service", true, ""},
        CgroupCase{"/anything/app.slice/breakglass.service", true, ""},
        CgroupCase{"/anything/system.slice/breakglass.service", true, ""},
        CgroupCase{"/user.slice/user-1000.slice/user@1000.service/app.slice/breakglass.service", true, ""},
        CgroupCase{"/system.slice/foo.service/sub/breakglass.service", true, ""},
        CgroupCase{"/system.slice/docker-0a9b8c7d6e5f40312a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091"
                   ".scope/breakglass.service",
                   true, ""},
        CgroupCase{"/kubepods/burstable/pod5f2a9d1c-8b3e-4c7a-9e61-0d4f2b8a7c93/breakglass.service", true, ""},
        CgroupCase{"/user.slice/user-1001.slice/user@1001.service/app.slice/backup.service", true, ""},
        CgroupCase{"/nhiguard-test-x/user.slice/user-1000.slice/user@1000.service/backup.service", true, ""},
        // The agent's cgroup is protected by its full path, not by its name.
        CgroupCase{"/nhiguard-test-x/nhiguard-agent.service", true, ""},
        CgroupCase{"/nhiguard-test-x/system.slice/nhiguard-agent.service", true, ""},
        // Allowed: siblings, prefixes that are not ancestors, descendants of the
        // agent's cgroup (freezing them cannot stop the agent).
        CgroupCase{"/system.slice/payments.service", true, ""},
        CgroupCase{"/system.slice/nhiguard-agent.service2", true, ""},
        CgroupCase{"/system.slice/sshd.services", true, ""},
        CgroupCase{"/system.slice/nhiguard-agent.service/worker", true, ""},
        CgroupCase{"/user.slice/user-0.slice/session-1.scope", true, ""},
        CgroupCase{"/kubepods/pod1234/abc", true, ""}));

struct ProcessCase {
  std::string name;
  ProcessFacts facts;
  bool allowed;
  std::string why_contains;
};

class ProtectedProcesses : public ::testing::TestWithParam<ProcessCase> {};

TEST_P(ProtectedProcesses, Rule) {
  const ProtectedTargets targets(snapshot());
  const auto& c = GetParam();
  auto r = targets.check_process(c.facts);
  if (c.allowed) {
    EXPECT_TRUE(r.has_value()) << c.name << ": " << r.error().message;
  } else {
    ASSERT_FALSE(r.has_value()) << c.name << " should be refused";
    EXPECT_EQ(r.error().code, EPERM);
    EXPECT_NE(r.error().message.find(c.why_contains), std::string::npos) << r.error().message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ProtectedProcesses,
    ::testing::Values(
        ProcessCase{"agent",
                    {4000, 3990, ticks(500), 0, "/system.slice/nhiguard-agent.service", "a"},
                    false,
                    "the agent itself"},
        // The same start at ns precision (kernel key) is the same tick.
        ProcessCase{"agent_ns", {4000, 3990, ticks(500) + 1234, 0, "/x.service", "a"}, false, "the agent itself"},
        ProcessCase{"pid1", {1, 0, ticks(1), 0, "/init.scope", "init"}, false, "PID 1"},
        ProcessCase{"kthreadd_child", {77, 2, ticks(3), 0, "/", "kworker"}, false, "kernel thread"},
        ProcessCase{"ancestor", {3990, 1, ticks(490), 0, "/other.scope", "bash"}, false, "ancestor of the agent"},
        ProcessCase{"agent_helper",
                    {4100, 4000, ticks(600), 0, "/system.slice/nhiguard-agent.service", "h"},
                    false,
                    "agent's own cgroup"},
        ProcessCase{"init_cgroup", {300, 1, ticks(20), 0, "/init.scope", "x"}, false, "PID 1's cgroup"},
        ProcessCase{"breakglass_cgroup",
                    {500, 1, ticks(30), 0, "/system.slice/sshd.service", "sshd"},
                    false,
                    "break-glass cgroup"},
        ProcessCase{"breakglass_cgroup_child",
                    {501, 500, ticks(31), 0, "/system.slice/sshd.service/sub", "sshd"},
                    false,
                    "break-glass cgroup"},
        ProcessCase{"breakglass_unit",
                    {600, 1, ticks(40), 0, "/system.slice/breakglass.service/sub", "sh"},
                    false,
                    "break-glass unit"},
        ProcessCase{
            "breakglass_user_unit",
            {601, 1, ticks(41), 1000, "/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service", "b"},
            false,
            "break-glass unit backup.service of uid 1000"},
        // Look-alikes of a break-glass unit, and of the agent's cgroup, are not protected.
        ProcessCase{
            "lookalike_test_cgroup", {610, 1, ticks(42), 1000, "/nhiguard-test-x/breakglass.service", "l"}, true, ""},
        ProcessCase{"lookalike_user_unit",
                    {611, 1, ticks(43), 1000,
                     "/user.slice/user-1000.slice/user@1000.service/app.slice/breakglass.service", "l"},
                    true,
                    ""},
        ProcessCase{"lookalike_agent_cgroup",
                    {612, 1, ticks(44), 1000, "/nhiguard-test-x/nhiguard-agent.service", "l"},
                    true,
                    ""},
        ProcessCase{"breakglass_uid",
                    {700, 1, ticks(50), 4242, "/system.slice/payments.service", "p"},
                    false,
                    "break-glass uid 4242"},
        // Allowed: a reused agent pid (other start), a reused ancestor pid, an ordinary service,
        // a process in the root cgroup (not protected just because PID 1 may sit there).
        ProcessCase{"reused_agent_pid", {4000, 1, ticks(900), 0, "/system.slice/payments.service", "p"}, true, ""},
        ProcessCase{"reused_ancestor_pid", {3990, 1, ticks(901), 0, "/system.slice/payments.service", "p"}, true, ""},
        ProcessCase{"service", {800, 1, ticks(60), 1000, "/system.slice/payments.service", "p"}, true, ""},
        ProcessCase{
            "agent_child_elsewhere", {4200, 4000, ticks(700), 0, "/system.slice/payments.service", "c"}, true, ""},
        ProcessCase{"root_cgroup", {900, 1, ticks(70), 1000, "/", "p"}, true, ""}),
    [](const ::testing::TestParamInfo<ProcessCase>& info) { return info.param.name; });

TEST(ProtectedTargetsRoot, RootCgroupAgentOnlyRefusesTheRoot) {
  // A host without a service manager: the agent and PID 1 both in "/".
  ProtectedTargets::Snapshot s;
  s.agent = {10, ticks(5), "/", "agent"};
  s.init = {1, ticks(1), "/", "init"};
  const ProtectedTargets targets(s);
  EXPECT_FALSE(targets.check_cgroup("/"));
  EXPECT_TRUE(targets.check_cgroup("/anything"));
  EXPECT_TRUE(targets.check_process(ProcessFacts{11, 10, ticks(6), 0, "/", "c"}));
}

TEST(ProtectedTargetsPaths, Normalize) {
  EXPECT_EQ(normalize_cgroup_relpath(""), "/");
  EXPECT_EQ(normalize_cgroup_relpath("a//b/"), "/a/b");
  EXPECT_EQ(normalize_cgroup_relpath("/a"), "/a");
  EXPECT_TRUE(cgroup_is_or_contains("/", "/a"));
  EXPECT_TRUE(cgroup_is_or_contains("/a", "/a/b"));
  EXPECT_FALSE(cgroup_is_or_contains("/a", "/ab"));
  EXPECT_FALSE(cgroup_is_or_contains("/a/b", "/a"));
}

// The reading layers over a scratch tree: <tmp>/proc/<pid>/{stat,status,cgroup} and
// <tmp>/cg/... with cgroup.procs files.
class ProtectedScratch : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nhiguard-protect-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "cg/system.slice/payments.service/worker");
    fs::create_directories(dir_ / "cg/system.slice/ok.service");
    fs::create_directories(dir_ / "cg/nhiguard-test-x/app.slice/breakglass.service");
    fs::create_directories(dir_ / "cg/user.slice/user-1000.slice/user@1000.service/app.slice/breakglass.service");
    fs::create_directories(dir_ / "cg/system.slice/foo.slice/breakglass.service");
    add_process(50, 1, 100, 0, "/system.slice/payments.service/worker");
    add_process(51, 1, 101, 4242, "/system.slice/payments.service/worker");
    add_process(60, 1, 102, 1000, "/system.slice/ok.service");
    std::ofstream(dir_ / "cg/system.slice/payments.service/worker/cgroup.procs") << "50\n51\n";
    std::ofstream(dir_ / "cg/system.slice/ok.service/cgroup.procs") << "60\n99999\n";  // 99999: gone
  }
  void TearDown() override { fs::remove_all(dir_); }

  void add_process(int pid, int ppid, uint64_t start, uint32_t uid, const std::string& cgroup) {
    const fs::path p = dir_ / "proc" / std::to_string(pid);
    fs::create_directories(p);
    std::ofstream(p / "stat") << pid << " (w) S " << ppid << " " << pid << " " << pid
                              << " 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 " << start << " 0 0\n";
    std::ofstream(p / "status") << "Name:\tw\nUid:\t" << uid << "\t" << uid << "\t" << uid << "\t" << uid
                                << "\nGid:\t0\t0\t0\t0\n";
    std::ofstream(p / "cgroup") << "0::" << cgroup << "\n";
  }

  ProtectedTargets targets() const {
    ProtectedTargets::Snapshot s = snapshot();
    return ProtectedTargets(s, (dir_ / "proc").string());
  }

  fs::path dir_;
};

TEST_F(ProtectedScratch, ReadsFactsAndChecksStart) {
  auto facts = read_process_facts((dir_ / "proc").string(), 60);
  ASSERT_TRUE(facts) << facts.error().message;
  EXPECT_EQ(facts->uid, 1000u);
  EXPECT_EQ(facts->cgroup_path, "/system.slice/ok.service");
  EXPECT_EQ(facts->start_ns, ticks(102));
  const auto t = targets();
  EXPECT_TRUE(t.check_process(60, ticks(102)));
  auto wrong = t.check_process(60, ticks(103));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ESRCH);
  auto gone = t.check_process(61, ticks(1));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ESRCH);
  auto uid = t.check_process(51, ticks(101));
  ASSERT_FALSE(uid);
  EXPECT_EQ(uid.error().code, EPERM);
}

TEST_F(ProtectedScratch, CgroupContents) {
  const auto t = targets();
  const std::string root = (dir_ / "cg").string();
  EXPECT_TRUE(t.check_cgroup_contents(root, "/system.slice/ok.service"));
  // The path rules pass, but a process of break-glass uid 4242 lives below.
  EXPECT_TRUE(t.check_cgroup("/system.slice/payments.service"));
  auto uid = t.check_cgroup_contents(root, "/system.slice/payments.service");
  ASSERT_FALSE(uid);
  EXPECT_EQ(uid.error().code, EPERM);
  EXPECT_NE(uid.error().message.find("break-glass uid 4242"), std::string::npos) << uid.error().message;
  // The break-glass unit's cgroup below.
  auto unit = t.check_cgroup_contents(root, "/system.slice/foo.slice");
  ASSERT_FALSE(unit);
  EXPECT_NE(unit.error().message.find("contains break-glass unit breakglass.service"), std::string::npos)
      << unit.error().message;
  // The attack: an empty child cgroup named like the break-glass unit does not make its parent
  // (or the user's manager) uncontainable.
  for (const char* parent :
       {"/nhiguard-test-x", "/nhiguard-test-x/app.slice", "/nhiguard-test-x/app.slice/breakglass.service",
        "/user.slice/user-1000.slice/user@1000.service/app.slice", "/user.slice/user-1000.slice/user@1000.service"}) {
    auto r = t.check_cgroup_contents(root, parent);
    EXPECT_TRUE(r) << parent << ": " << r.error().message;
  }
}

TEST(ProtectedTargetsHost, FromHostProtectsSelfAndInit) {
  auto t = ProtectedTargets::from_host({});
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->snapshot().agent.pid, getpid());
  auto self = t->check_process(getpid(), t->snapshot().agent.start_ns);
  ASSERT_FALSE(self);
  EXPECT_NE(self.error().message.find("the agent itself"), std::string::npos);
  EXPECT_FALSE(t->check_process(1, t->snapshot().init.start_ns));
  if (getppid() > 1) {
    auto parent = read_process_facts("/proc", getppid());
    ASSERT_TRUE(parent);
    auto r = t->check_process(parent->pid, parent->start_ns);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("ancestor of the agent"), std::string::npos) << r.error().message;
  }
}

}  // namespace
