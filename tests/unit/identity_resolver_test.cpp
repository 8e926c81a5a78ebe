// IdentityResolver over the fixture proc tree (and a scratch "cgroup" tree for ids), and once over
// the real /proc/self: start-time verification, kernel-only fallback, caching, precedence.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "identity/identity_resolver.h"

using namespace nhiguard::identity;
namespace fs = std::filesystem;

namespace {

const std::string kProc = std::string(NHIGUARD_TEST_FIXTURES) + "/identity/proc";
constexpr uint64_t kNsPerTick = 10'000'000;  // the fixture is written for USER_HZ = 100

IdentityResolver::Options fixture_options() {
  IdentityResolver::Options o;
  o.proc_root = kProc;
  o.trust_domain = "example.org";
  o.host = "web-1";
  o.clock_ticks_per_second = 100;
  return o;
}

nhiguard::events::KernelProcess facts(uint32_t pid, uint64_t start_ticks, uint32_t uid = 998, std::string comm = "") {
  nhiguard::events::KernelProcess f;
  f.tgid = pid;
  f.audit_session_id = UINT32_MAX;
  f.start_ns = start_ticks * kNsPerTick + 1234567;  // sub-tick ns, as the kernel reports
  f.uid = uid;
  f.euid = uid;
  f.gid = uid;
  f.comm = std::move(comm);
  return f;
}

class ScratchCgroups : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "nhiguard-resolver-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "system.slice/payments.service");
    fs::create_directories(root_ / "system.slice/billing.service");
  }
  void TearDown() override { fs::remove_all(root_); }
  uint64_t ino(const std::string& rel) {
    struct stat st{};
    EXPECT_EQ(::stat((root_ / rel).c_str(), &st), 0);
    return st.st_ino;
  }
  fs::path root_;
};

}  // namespace

TEST(IdentityResolver, ResolvesFromProcWhenStartTimeMatches) {
  ExeHashCache hashes;
  IdentityResolver resolver(fixture_options(), nullptr, &hashes);
  const auto id = resolver.resolve(facts(400, 5000, 998, "payments"));
  EXPECT_TRUE(id.resolved_from_proc);
  EXPECT_EQ(id.workload.kind, WorkloadKind::systemd_service);
  EXPECT_EQ(id.workload.name, "payments.service");
  EXPECT_EQ(id.workload.cgroup_path, "/system.slice/payments.service");
  EXPECT_EQ(id.workload.uri, "spiffe://example.org/host/web-1/systemd/payments.service");
  EXPECT_EQ(id.process.comm, "payments");  // the kernel's comm, at the event
  EXPECT_EQ(id.process.exe, "/opt/payments/bin/payments");
  EXPECT_TRUE(id.process.exe_deleted);
  EXPECT_TRUE(id.process.exe_sha256.empty());  // the fixture's exe link points nowhere
  EXPECT_FALSE(id.notes.empty());
  EXPECT_EQ(id.process.cmdline.size(), 3u);
  EXPECT_EQ(id.process.session_id, 400u);
  ASSERT_EQ(id.process.ancestry.size(), 1u);
  EXPECT_EQ(id.process.ancestry[0].pid, 1);
  EXPECT_EQ(id.process.ancestry[0].comm, "systemd");
  EXPECT_EQ(id.process.uid, 998u);
}

TEST(IdentityResolver, HashesTheExecutableThroughProc) {
  ExeHashCache hashes;
  IdentityResolver resolver(fixture_options(), nullptr, &hashes);
  const auto id = resolver.resolve(facts(1, 1, 0, "systemd"));
  ASSERT_TRUE(id.resolved_from_proc);
  auto expected = hashes.hash_path(std::string(NHIGUARD_TEST_FIXTURES) + "/identity/bin/init");
  ASSERT_TRUE(expected);
  EXPECT_EQ(id.process.exe_sha256, expected->sha256);
  EXPECT_EQ(id.workload.name, "init.scope");
}

TEST(IdentityResolver, ReusedPidFallsBackToKernelFields) {
  IdentityResolver resolver(fixture_options(), nullptr, nullptr);
  nhiguard::events::KernelProcess f = facts(400, 4000, 1001, "curl");  // /proc/400 started at 5000: another process
  const auto id = resolver.resolve(f, "/usr/bin/curl");
  EXPECT_FALSE(id.resolved_from_proc);
  EXPECT_EQ(id.process.comm, "curl");
  EXPECT_EQ(id.process.exe, "/usr/bin/curl");
  EXPECT_TRUE(id.process.cmdline.empty());
  EXPECT_TRUE(id.process.ancestry.empty());
  // No cgroup index: nothing else is known about it, and nothing of pid 400's service leaks in.
  EXPECT_EQ(id.workload.kind, WorkloadKind::bare_process);
  EXPECT_EQ(id.workload.uri, "spiffe://example.org/host/web-1/uid/1001/process");
  ASSERT_FALSE(id.notes.empty());
  EXPECT_NE(id.notes[0].find("reused"), std::string::npos) << id.notes[0];
}

TEST(IdentityResolver, OneTickOfSlackOnly) {
  IdentityResolver resolver(fixture_options(), nullptr, nullptr);
  EXPECT_TRUE(resolver.resolve(facts(400, 4999)).resolved_from_proc);
  EXPECT_TRUE(resolver.resolve(facts(400, 5001)).resolved_from_proc);
  EXPECT_FALSE(resolver.resolve(facts(400, 5002)).resolved_from_proc);
  EXPECT_FALSE(resolver.resolve(facts(400, 4998)).resolved_from_proc);
}

TEST(IdentityResolver, GoneProcessAndUnknownStart) {
  IdentityResolver resolver(fixture_options(), nullptr, nullptr);
  const auto gone = resolver.resolve(facts(31337, 100, 5, "ghost"));
  EXPECT_FALSE(gone.resolved_from_proc);
  EXPECT_EQ(gone.process.comm, "ghost");
  nhiguard::events::KernelProcess no_start = facts(400, 0);
  no_start.start_ns = 0;
  EXPECT_FALSE(resolver.resolve(no_start).resolved_from_proc);
  EXPECT_FALSE(resolver.resolve(facts(800, 9500)).resolved_from_proc);  // status unreadable
  EXPECT_EQ(resolver.cache_size(), 0u);                                 // fallbacks are not cached
  EXPECT_EQ(resolver.stats().from_kernel_only, 3u);
}

TEST(IdentityResolver, AuditSessionFromKernelWhenProcLacksIt) {
  IdentityResolver resolver(fixture_options(), nullptr, nullptr);
  nhiguard::events::KernelProcess f = facts(31337, 1, 1000, "sshd");
  f.audit_session_id = 17;
  EXPECT_EQ(resolver.resolve(f).process.audit_session_id, 17u);
  const auto bash = resolver.resolve(facts(600, 7000, 1000, "bash"));
  ASSERT_TRUE(bash.resolved_from_proc);
  EXPECT_EQ(bash.process.audit_session_id, 3u);
  EXPECT_EQ(bash.process.login_uid, 1000u);
  EXPECT_EQ(bash.workload.kind, WorkloadKind::user_session);
  EXPECT_EQ(bash.workload.uri, "spiffe://example.org/host/web-1/user/1000/session/session-3.scope");
}

TEST(IdentityResolver, CachesPerProcessKey) {
  IdentityResolver resolver(fixture_options(), nullptr, nullptr);
  const auto first = resolver.resolve(facts(500, 6100, 1001, "python3"));
  const auto second = resolver.resolve(facts(500, 6100, 1001, "python3"));
  EXPECT_EQ(first.process.cmdline, second.process.cmdline);
  EXPECT_EQ(resolver.stats().hits, 1u);
  EXPECT_EQ(resolver.stats().from_proc, 1u);
  EXPECT_EQ(first.workload.kind, WorkloadKind::container);
  EXPECT_TRUE(first.process.cmdline_truncated);

  // Same pid, comm changed (exec): resolved afresh, not served stale.
  const auto after_exec = resolver.resolve(facts(500, 6100, 1001, "sh"));
  EXPECT_EQ(resolver.stats().from_proc, 2u);
  EXPECT_EQ(after_exec.process.comm, "sh");

  resolver.forget(500, facts(500, 6100).start_ns);
  EXPECT_EQ(resolver.cache_size(), 0u);
}

TEST(IdentityResolver, BoundedCache) {
  auto options = fixture_options();
  options.max_cached = 2;
  IdentityResolver resolver(options, nullptr, nullptr);
  resolver.resolve(facts(1, 1));
  resolver.resolve(facts(400, 5000));
  resolver.resolve(facts(450, 6000));
  resolver.resolve(facts(500, 6100));
  EXPECT_EQ(resolver.cache_size(), 2u);
}

TEST_F(ScratchCgroups, KernelCgroupIdWinsOverProcPath) {
  CgroupIndex::Options io;
  io.use_file_handles = false;
  CgroupIndex index(root_.string(), io);
  IdentityResolver resolver(fixture_options(), &index, nullptr);
  nhiguard::events::KernelProcess f = facts(400, 5000);
  f.cgroup_id = ino("system.slice/billing.service");  // at the event the process was in billing
  const auto id = resolver.resolve(f);
  ASSERT_TRUE(id.resolved_from_proc);
  EXPECT_EQ(id.workload.name, "billing.service");
  EXPECT_EQ(id.workload.cgroup_id, f.cgroup_id);

  // A cgroup move under the same process key invalidates the cached identity.
  f.cgroup_id = ino("system.slice/payments.service");
  EXPECT_EQ(resolver.resolve(f).workload.name, "payments.service");
}

TEST_F(ScratchCgroups, GoneProcessStillNamedByItsCgroup) {
  CgroupIndex::Options io;
  io.use_file_handles = false;
  CgroupIndex index(root_.string(), io);
  IdentityResolver resolver(fixture_options(), &index, nullptr);
  nhiguard::events::KernelProcess f = facts(31337, 100, 998, "payments");
  f.cgroup_id = ino("system.slice/payments.service");
  const auto id = resolver.resolve(f);
  EXPECT_FALSE(id.resolved_from_proc);
  EXPECT_EQ(id.workload.kind, WorkloadKind::systemd_service);
  EXPECT_EQ(id.workload.uri, "spiffe://example.org/host/web-1/systemd/payments.service");

  nhiguard::events::KernelProcess unknown = f;
  unknown.cgroup_id = 0xfffffffffff0ull;
  const auto bare = resolver.resolve(unknown);
  EXPECT_EQ(bare.workload.kind, WorkloadKind::bare_process);
  EXPECT_EQ(bare.notes.size(), 2u);  // gone, and the cgroup id did not resolve
}

TEST_F(ScratchCgroups, ProcPathWhenTheIdDoesNotResolve) {
  CgroupIndex::Options io;
  io.use_file_handles = false;
  CgroupIndex index(root_.string(), io);
  IdentityResolver resolver(fixture_options(), &index, nullptr);
  nhiguard::events::KernelProcess f = facts(710, 8000, 0, "orphan");
  f.cgroup_id = 0xfffffffffff0ull;
  const auto id = resolver.resolve(f);
  ASSERT_TRUE(id.resolved_from_proc);
  EXPECT_EQ(id.workload.name, "payments.service");  // "/system.slice/nhiguard-test-1234.slice/payments.service"
  EXPECT_TRUE(id.process.ancestry.empty());         // its "parent" pid 700 is younger than it
}

TEST(IdentityResolverReal, Self) {
  ExeHashCache hashes;
  std::unique_ptr<CgroupIndex> index;
  if (auto opened = CgroupIndex::open_host({}); opened) index = std::move(*opened);
  IdentityResolver::Options options;
  options.trust_domain = "test.local";
  IdentityResolver resolver(options, index.get(), &hashes);

  auto live = resolver.resolve_live(::getpid());
  ASSERT_TRUE(live) << live.error().message;
  const auto& id = *live;
  EXPECT_TRUE(id.resolved_from_proc);
  EXPECT_EQ(id.process.pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(id.process.uid, ::getuid());
  EXPECT_EQ(id.process.exe, fs::read_symlink("/proc/self/exe").string());
  EXPECT_EQ(id.process.exe_sha256.size(), 64u);
  ASSERT_FALSE(id.process.ancestry.empty());
  EXPECT_EQ(id.process.ancestry[0].pid, ::getppid());
  EXPECT_TRUE(id.workload.uri.starts_with("spiffe://test.local/host/"));
  EXPECT_EQ(id.workload.uri.find(std::to_string(::getpid()) + "/"), std::string::npos);

  // The same process described by an event with its real start time resolves to the same thing;
  // a start time far off is another process and must not be described with our /proc.
  nhiguard::events::KernelProcess f;
  f.tgid = static_cast<uint32_t>(::getpid());
  f.audit_session_id = UINT32_MAX;
  f.start_ns = id.process.start_ns;
  f.uid = ::getuid();
  EXPECT_TRUE(resolver.resolve(f).resolved_from_proc);
  f.start_ns += 10 * 1'000'000'000ull;
  const auto other = resolver.resolve(f);
  EXPECT_FALSE(other.resolved_from_proc);
  EXPECT_TRUE(other.process.cmdline.empty());

  EXPECT_FALSE(resolver.resolve_live(0x7ffffff0));
}

TEST(IdentityResolver, ConcurrentResolves) {
  ExeHashCache hashes;
  IdentityResolver resolver(fixture_options(), nullptr, &hashes);
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        if (!resolver.resolve(facts(400, 5000)).resolved_from_proc) ++wrong;
        if (resolver.resolve(facts(400, 1)).resolved_from_proc) ++wrong;
        if (resolver.resolve(facts(1, 1)).workload.name != "init.scope") ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(IdentityResolverReal, OwningConstructorAndEventShapedFacts) {
  // The daemon's use: options by designated initialisers, facts straight from a kernel event.
  IdentityResolver resolver(IdentityResolverOptions{.trust_domain = "test.local", .host = "h"});
  auto live = resolver.resolve_live(::getpid());
  ASSERT_TRUE(live) << live.error().message;
  uint64_t cgroup_id = 0;
  if (resolver.cgroup_index() != nullptr) {
    if (auto id = resolver.cgroup_index()->id_of(live->workload.cgroup_path); id) cgroup_id = *id;
  }
  auto identity = resolver.resolve(nhiguard::events::KernelProcess{
      .tgid = static_cast<uint32_t>(::getpid()),
      .tid = static_cast<uint32_t>(::gettid()),
      .ppid = static_cast<uint32_t>(::getppid()),
      .uid = ::getuid(),
      .euid = ::geteuid(),
      .gid = ::getgid(),
      .audit_session_id = UINT32_MAX,
      .start_ns = live->process.start_ns + 5'000'000,  // within the same tick, as an event would carry
      .cgroup_id = cgroup_id,
      .comm = live->process.comm,
  });
  EXPECT_TRUE(identity.resolved_from_proc);
  EXPECT_EQ(identity.workload.uri, live->workload.uri);
  EXPECT_EQ(identity.process.exe_sha256.size(), 64u);
  identity.process.exe = "/amended/by/caller";  // results are values
  EXPECT_NE(resolver.resolve_live(::getpid())->process.exe, "/amended/by/caller");
}
