// /proc parsing: stat with hostile comm, status ids, cgroup v2 line, cmdline, audit ids; the
// fixture proc tree; ancestry; and the real /proc/self.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "identity/process_info.h"

using namespace nhiguard::identity;

namespace {

const std::string kProc = std::string(NHIGUARD_TEST_FIXTURES) + "/identity/proc";

std::string stat_line(std::string_view comm, uint64_t start) {
  return "42 (" + std::string(comm) + ") S 7 42 99 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 " + std::to_string(start) +
         " 1 1 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 2 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
}

}  // namespace

TEST(ProcStatParse, PlainAndHostileComm) {
  for (std::string_view comm : {"bash", "my prog", "a) b (c", "))", "(", "", "x) S 1 2 3"}) {
    auto st = parse_proc_stat(stat_line(comm, 123456));
    ASSERT_TRUE(st) << comm << ": " << st.error().message;
    EXPECT_EQ(st->pid, 42);
    EXPECT_EQ(st->comm, comm);
    EXPECT_EQ(st->state, 'S');
    EXPECT_EQ(st->ppid, 7);
    EXPECT_EQ(st->session, 99u);
    EXPECT_EQ(st->start_time_ticks, 123456u);
  }
}

TEST(ProcStatParse, RejectsMalformed) {
  EXPECT_FALSE(parse_proc_stat(""));
  EXPECT_FALSE(parse_proc_stat("42 bash S 1"));
  EXPECT_FALSE(parse_proc_stat("42 (bash) S 1 2 3"));
  EXPECT_FALSE(parse_proc_stat("x (bash) S 7 42 99 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 5 1"));
  EXPECT_FALSE(parse_proc_stat("42 (bash) S 7 42 99 0 -1 4 1 0 0 0 0 0 0 0 20 0 1 0 notanumber 1"));
}

TEST(ProcStatusParse, UidAndGid) {
  auto ids = parse_proc_status_ids("Name:\tx\nUid:\t1000\t0\t1000\t0\nGid:\t100\t101\t100\t101\n");
  ASSERT_TRUE(ids) << ids.error().message;
  EXPECT_EQ(ids->uid, 1000u);
  EXPECT_EQ(ids->euid, 0u);
  EXPECT_EQ(ids->gid, 100u);
  EXPECT_EQ(ids->egid, 101u);
  EXPECT_FALSE(parse_proc_status_ids("Name:\tx\n"));
  EXPECT_FALSE(parse_proc_status_ids("Uid:\tabc\t0\t0\t0\nGid:\t0\t0\t0\t0\n"));
  EXPECT_FALSE(parse_proc_status_ids("Uid:\t1\nGid:\t0\t0\t0\t0\n"));
}

TEST(ProcCgroupParse, V2LineAndDeletedSuffix) {
  auto cg = parse_proc_cgroup("12:pids:/a\n1:name=systemd:/b\n0::/system.slice/x.service\n");
  ASSERT_TRUE(cg);
  EXPECT_EQ(cg->path, "/system.slice/x.service");
  EXPECT_FALSE(cg->deleted);
  auto deleted = parse_proc_cgroup("0::/user.slice/user-1000.slice/session-3.scope (deleted)\n");
  ASSERT_TRUE(deleted);
  EXPECT_EQ(deleted->path, "/user.slice/user-1000.slice/session-3.scope");
  EXPECT_TRUE(deleted->deleted);
  auto colons = parse_proc_cgroup("0::/system.slice/containerd.service/kubepods-pod.slice:cri-containerd:ab\n");
  ASSERT_TRUE(colons);
  EXPECT_EQ(colons->path, "/system.slice/containerd.service/kubepods-pod.slice:cri-containerd:ab");
  EXPECT_FALSE(parse_proc_cgroup("4:memory:/x\n"));  // v1 only
}

TEST(CmdlineSplit, NulSeparatedRawBytes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_cmdline(std::string_view("a\0b c\0\0d\0", 9)), (V{"a", "b c", "", "d"}));
  EXPECT_EQ(split_cmdline(std::string_view("no terminator")), (V{"no terminator"}));
  EXPECT_EQ(split_cmdline(""), V{});
  EXPECT_EQ(split_cmdline(std::string_view("\0", 1)), V{""});
  EXPECT_EQ(split_cmdline(std::string_view("\xff\xfe\0", 3)), V{"\xff\xfe"});
}

TEST(AuditIds, UnsetIsNullopt) {
  EXPECT_EQ(parse_audit_id("1000"), 1000u);
  EXPECT_EQ(parse_audit_id("3\n"), 3u);
  EXPECT_FALSE(parse_audit_id("4294967295"));
  EXPECT_FALSE(parse_audit_id(""));
  EXPECT_FALSE(parse_audit_id("-1"));
}

TEST(ProcessDirFixture, ServiceWithHostileCommAndDeletedExe) {
  auto dir = ProcessDir::open(kProc, 400);
  ASSERT_TRUE(dir) << dir.error().message;
  auto info = dir->info();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->pid, 400);
  EXPECT_EQ(info->ppid, 1);
  EXPECT_EQ(info->comm, "pay) (x y");
  EXPECT_EQ(info->start_time_ticks, 5000u);
  EXPECT_EQ(info->uid, 998u);
  EXPECT_EQ(info->exe, "/opt/payments/bin/payments");
  EXPECT_TRUE(info->exe_deleted);
  EXPECT_EQ(info->cmdline,
            (std::vector<std::string>{"/opt/payments/bin/payments", "--config", "/etc/payments/config.yaml"}));
  EXPECT_FALSE(info->cmdline_truncated);
  EXPECT_EQ(info->cgroup_path, "/system.slice/payments.service");
  EXPECT_EQ(info->session_id, 400u);
  EXPECT_FALSE(info->login_uid);
  EXPECT_FALSE(info->audit_session_id);
}

TEST(ProcessDirFixture, LongCmdlineIsTruncatedAt4KiB) {
  auto dir = ProcessDir::open(kProc, 500);
  ASSERT_TRUE(dir);
  auto info = dir->info();
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->cmdline_truncated);
  ASSERT_EQ(info->cmdline.size(), 3u);
  EXPECT_EQ(info->cmdline[0], "python3");
  EXPECT_EQ(info->cmdline[2].size(), kMaxCmdlineBytes - 11);  // after "python3\0-c\0"
}

TEST(ProcessDirFixture, LoginSessionAndDeletedCgroup) {
  auto info = ProcessDir::open(kProc, 600).value().info();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->login_uid, 1000u);
  EXPECT_EQ(info->audit_session_id, 3u);
  EXPECT_EQ(info->cgroup_path, "/user.slice/user-1000.slice/session-3.scope");
  EXPECT_TRUE(info->cgroup_deleted);
}

TEST(ProcessDirFixture, MissingProcessAndMissingStatus) {
  auto gone = ProcessDir::open(kProc, 31337);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ENOENT);
  EXPECT_FALSE(ProcessDir::open(kProc, 0));
  EXPECT_FALSE(ProcessDir::open(kProc, -5));
  auto half = ProcessDir::open(kProc, 800);
  ASSERT_TRUE(half);
  EXPECT_TRUE(half->stat());
  EXPECT_FALSE(half->info());  // status is required
}

TEST(Ancestry, WalksToInit) {
  const auto chain = read_ancestry(kProc, 500);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].pid, 450);
  EXPECT_EQ(chain[0].comm, "containerd-shim");
  EXPECT_EQ(chain[0].exe, "/usr/bin/containerd-shim-runc-v2");
  EXPECT_EQ(chain[1].pid, 1);
  EXPECT_EQ(chain[1].comm, "systemd");
  EXPECT_EQ(read_ancestry(kProc, 500, 1).size(), 1u);
  EXPECT_TRUE(read_ancestry(kProc, 1).empty());
}

TEST(Ancestry, StopsAtAParentYoungerThanItsChild) {
  EXPECT_TRUE(read_ancestry(kProc, 710).empty());  // pid 700 started after 710: not its parent
}

TEST(ProcessDirReal, Self) {
  auto dir = ProcessDir::open("/proc", ::getpid());
  ASSERT_TRUE(dir) << dir.error().message;
  auto info = dir->info();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->pid, ::getpid());
  EXPECT_EQ(info->ppid, ::getppid());
  EXPECT_EQ(info->uid, ::getuid());
  EXPECT_EQ(info->euid, ::geteuid());
  EXPECT_EQ(info->gid, ::getgid());
  EXPECT_EQ(info->exe, std::filesystem::read_symlink("/proc/self/exe").string());
  ASSERT_FALSE(info->cmdline.empty());
  EXPECT_GT(info->start_time_ticks, 0u);
  EXPECT_EQ(info->session_id, static_cast<uint32_t>(::getsid(0)));
  std::ifstream cg("/proc/self/cgroup");
  std::string text((std::istreambuf_iterator<char>(cg)), {});
  if (auto v2 = parse_proc_cgroup(text)) {
    EXPECT_EQ(info->cgroup_path, v2->path);
  }
  const auto chain = read_ancestry("/proc", ::getpid());
  ASSERT_FALSE(chain.empty());
  EXPECT_EQ(chain[0].pid, ::getppid());
}
