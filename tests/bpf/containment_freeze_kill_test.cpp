// The freeze and kill executors on the real kernel (root): processes in test cgroups are frozen
// and thawed through cgroup.freeze, killed through pidfds, and whole sessions are killed while a
// process outside keeps running; protected targets are refused. No BPF program is loaded here, but
// the tier is the one that runs as root against the real kernel.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "containment/cgroup_freezer.h"
#include "containment/process_killer.h"
#include "containment/protected_targets.h"
#include "containment/target_resolver.h"
#include "identity/mountinfo.h"
#include "test_cgroup.h"

using namespace nhiguard::containment;
using nhiguard::testing::spawn_in_cgroup;
using nhiguard::testing::TestCgroup;
using nhiguard::testing::wait_for_exit;
using namespace std::chrono_literals;

namespace {

// State shared with the children (fork keeps MAP_SHARED mappings shared).
struct Shared {
  std::atomic<uint64_t> counter{0};
  std::atomic<uint64_t> sibling_counter{0};
  std::atomic<pid_t> grandchild1{0};  // left the session with setsid
  std::atomic<pid_t> grandchild2{0};  // stayed in the session
  std::atomic<pid_t> orphan{0};       // grandchild2's double-forked child, reparented away
  std::atomic<int> ready{0};
};

class SharedMemory {
 public:
  SharedMemory() {
    void* p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    shared_ = new (p) Shared();
  }
  ~SharedMemory() { munmap(shared_, sizeof(Shared)); }
  Shared* operator->() const { return shared_; }
  Shared& get() const { return *shared_; }

 private:
  Shared* shared_;
};

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

[[noreturn]] void spin_forever(std::atomic<uint64_t>& counter) {
  for (;;) counter.fetch_add(1, std::memory_order_relaxed);
}

[[noreturn]] void sleep_forever() {
  for (;;) pause();
}

uint64_t start_of(pid_t pid) {
  auto facts = read_process_facts("/proc", pid);
  EXPECT_TRUE(facts) << "pid " << pid << ": " << (facts ? "" : facts.error().message);
  return facts ? facts->start_ns : 0;
}

bool alive(pid_t pid) {
  // A zombie is dead for our purpose: it runs nothing.
  auto facts = read_process_facts("/proc", pid);
  if (!facts) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z' && text[close + 2] != 'X';
}

std::string own_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) return line.substr(3);
  }
  return "/";
}

// Kills and reaps a child at the end of a test whatever happened.
struct ChildGuard {
  pid_t pid;
  ~ChildGuard() {
    if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

TEST(ContainmentFreeze, FreezeStopsTheServiceAndThawResumesIt) {
  SharedMemory shm;
  TestCgroup cg("freeze-me.service");
  const pid_t child = spawn_in_cgroup(cg, [&]() -> int { spin_forever(shm->counter); });
  ChildGuard guard{child};
  ASSERT_TRUE(eventually([&] { return shm->counter.load() > 0; })) << "the child never ran";

  // The operator's spelling resolves to the same cgroup, and it is not protected.
  auto resolver = TargetResolver::open_host();
  ASSERT_TRUE(resolver) << resolver.error().message;
  auto target = resolver->resolve_cgroup(cg.relative());
  ASSERT_TRUE(target) << target.error().message;
  EXPECT_EQ(target->cgroup_id, cg.id());
  // --unit walks the real cgroupfs. Another test process may have its own freeze-me.service at
  // the same time: then the answer is "several", and ours is among those listed.
  auto by_unit = resolver->resolve_unit("freeze-me.service");
  if (by_unit) {
    EXPECT_EQ(by_unit->cgroup_path, cg.relative());
    EXPECT_EQ(by_unit->cgroup_id, cg.id());
  } else {
    EXPECT_EQ(by_unit.error().code, ENOTUNIQ) << by_unit.error().message;
    EXPECT_NE(by_unit.error().message.find(cg.relative()), std::string::npos) << by_unit.error().message;
  }
  auto protect = ProtectedTargets::from_host({});
  ASSERT_TRUE(protect) << protect.error().message;
  ASSERT_TRUE(protect->check_cgroup_contents(resolver->cgroup2_root(), target->cgroup_path));

  auto frozen = freeze(cg.path());
  ASSERT_TRUE(frozen) << frozen.error().message;
  auto state = is_frozen(cg.path());
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_TRUE(*state);
  auto events = read_cgroup_events(cg.path());
  ASSERT_TRUE(events);
  EXPECT_TRUE(events->frozen);
  EXPECT_TRUE(events->populated);
  const uint64_t a = shm->counter.load();
  std::this_thread::sleep_for(200ms);
  const uint64_t b = shm->counter.load();
  EXPECT_EQ(a, b) << "the frozen child kept counting";
  // Frozen, not dead: memory and the process are kept.
  EXPECT_EQ(waitpid(child, nullptr, WNOHANG), 0);

  auto thawed = thaw(cg.path());
  ASSERT_TRUE(thawed) << thawed.error().message;
  EXPECT_FALSE(*is_frozen(cg.path()));
  const uint64_t c = shm->counter.load();
  EXPECT_TRUE(eventually([&] { return shm->counter.load() > c; }, 2s)) << "the thawed child did not resume";

  kill(child, SIGKILL);
  EXPECT_EQ(wait_for_exit(child), 128 + SIGKILL);
  guard.pid = 0;
}

TEST(ContainmentFreeze, VanishedCgroupNamesTheFileAndErrno) {
  std::string path;
  {
    TestCgroup cg("gone.service");
    path = cg.path();
  }
  auto r = freeze(path, 500ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ENOENT);
  EXPECT_NE(r.error().message.find(path + "/cgroup."), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(std::strerror(ENOENT)), std::string::npos) << r.error().message;
  EXPECT_FALSE(is_frozen(path));
}

TEST(ContainmentFreeze, ProtectedCgroupsAreRefused) {
  auto protect = ProtectedTargets::from_host({});
  ASSERT_TRUE(protect) << protect.error().message;
  // The test process plays the agent: its own cgroup's parent (or the root, when it sits at the
  // root) contains it.
  const std::string self = normalize_cgroup_relpath(own_cgroup());
  const std::string parent = self == "/" ? "/" : normalize_cgroup_relpath(self.substr(0, self.rfind('/')));
  auto r = protect->check_cgroup(parent);
  ASSERT_FALSE(r) << parent << " holds the agent and must be refused";
  EXPECT_EQ(r.error().code, EPERM);
  EXPECT_FALSE(protect->check_cgroup("/"));

  // A break-glass cgroup, real and freezable, is refused and left unfrozen.
  TestCgroup cg("breakglass.service");
  ProtectedTargets::Snapshot snap = protect->snapshot();
  snap.break_glass.cgroups = {cg.relative()};
  const ProtectedTargets with_break_glass(snap);
  auto refused = with_break_glass.check_cgroup(cg.relative());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("break-glass cgroup"), std::string::npos) << refused.error().message;
  // The test's top cgroup contains it: refused too.
  EXPECT_FALSE(with_break_glass.check_cgroup(cg.relative().substr(0, cg.relative().rfind('/'))));
  EXPECT_FALSE(*is_frozen(cg.path()));
}

// The attack on the real cgroupfs: a directory named like a break-glass unit outside the system
// manager's slices (here below the test's own cgroup, as a user could make in a delegated subtree)
// is not the unit. It and its parents stay containable; the system unit's cgroup and the slice
// holding it are refused; --unit finds only the system unit.
TEST(ContainmentFreeze, BreakGlassUnitIsTheSystemUnitNotALookAlike) {
  SharedMemory shm;
  const std::string unit = "nhiguard-bg-" + std::to_string(getpid()) + ".service";
  TestCgroup real(unit);
  TestCgroup app("app.slice", TestCgroup::Placement::outside_slices);
  TestCgroup lookalike("app.slice/" + unit, TestCgroup::Placement::outside_slices);
  const pid_t child = spawn_in_cgroup(lookalike, [&]() -> int { spin_forever(shm->counter); });
  ChildGuard guard{child};
  ASSERT_TRUE(eventually([&] { return shm->counter.load() > 0; })) << "the child never ran";

  auto host = ProtectedTargets::from_host({});
  ASSERT_TRUE(host) << host.error().message;
  ProtectedTargets::Snapshot snap = host->snapshot();
  snap.break_glass.units = {unit};
  const ProtectedTargets protect(snap);
  auto resolver = TargetResolver::open_host();
  ASSERT_TRUE(resolver) << resolver.error().message;
  const std::string& root = resolver->cgroup2_root();
  const std::string real_parent = real.relative().substr(0, real.relative().rfind('/'));
  const std::string lookalike_top = app.relative().substr(0, app.relative().rfind('/'));

  auto refused = protect.check_cgroup_contents(root, real.relative());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("break-glass unit " + unit), std::string::npos) << refused.error().message;
  auto parent = protect.check_cgroup_contents(root, real_parent);
  ASSERT_FALSE(parent);
  EXPECT_NE(parent.error().message.find("contains break-glass unit " + unit), std::string::npos)
      << parent.error().message;
  for (const std::string& allowed : {lookalike.relative(), app.relative(), lookalike_top}) {
    auto ok = protect.check_cgroup_contents(root, allowed);
    EXPECT_TRUE(ok) << allowed << ": " << ok.error().message;
  }
  EXPECT_TRUE(protect.check_process(child, start_of(child))) << "the look-alike's process is not protected";

  auto by_unit = resolver->resolve_unit(unit);
  ASSERT_TRUE(by_unit) << by_unit.error().message;
  EXPECT_EQ(by_unit->cgroup_path, real.relative());

  // And the look-alike really freezes.
  ASSERT_TRUE(freeze(lookalike.path()));
  EXPECT_TRUE(*is_frozen(lookalike.path()));
  ASSERT_TRUE(thaw(lookalike.path()));
  kill(child, SIGKILL);
  EXPECT_EQ(wait_for_exit(child), 128 + SIGKILL);
  guard.pid = 0;
}

TEST(ContainmentKill, KillProcessByPidfdChecksTheStartTime) {
  TestCgroup cg("kill-me.service");
  const pid_t child = spawn_in_cgroup(cg, []() -> int { sleep_forever(); });
  ChildGuard guard{child};
  const uint64_t start = start_of(child);
  ASSERT_GT(start, 0u);

  // A start one tick off is another process that had this pid: nothing is sent.
  auto wrong = kill_process(child, start + ns_per_clock_tick());
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, ESRCH);
  EXPECT_NE(wrong.error().message.find("not the expected process"), std::string::npos) << wrong.error().message;
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(waitpid(child, nullptr, WNOHANG), 0) << "the child was killed despite the wrong start";

  // The agent itself is refused through the checking overload.
  auto protect = ProtectedTargets::from_host({});
  ASSERT_TRUE(protect);
  auto self = kill_process(getpid(), protect->snapshot().agent.start_ns, *protect);
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, EPERM);

  auto killed = kill_process(child, start, *protect);
  ASSERT_TRUE(killed) << killed.error().message;
  EXPECT_EQ(wait_for_exit(child), 128 + SIGKILL);
  guard.pid = 0;

  // Gone now (reaped): refused, not an error about signalling.
  auto again = kill_process(child, start);
  ASSERT_FALSE(again);
}

TEST(ContainmentKill, KillSessionKillsTheSessionAndNothingOutside) {
  SharedMemory shm;
  TestCgroup session_cg("session.service");
  TestCgroup sibling_cg("sibling.service");

  // Outside the session: same session as the test, another cgroup, keeps counting.
  const pid_t sibling = spawn_in_cgroup(sibling_cg, [&]() -> int { spin_forever(shm->sibling_counter); });
  ChildGuard sibling_guard{sibling};

  // The offender: a new session with two children; the first leaves the session with setsid
  // (still in the subtree), the second double-forks an orphan that stays in the session.
  const pid_t leader = spawn_in_cgroup(session_cg, [&]() -> int {
    if (setsid() < 0) return 10;
    const pid_t g1 = fork();
    if (g1 == 0) {
      setsid();
      shm->grandchild1.store(getpid());
      sleep_forever();
    }
    const pid_t g2 = fork();
    if (g2 == 0) {
      const pid_t mid = fork();
      if (mid == 0) {
        if (fork() == 0) {
          shm->orphan.store(getpid());
          sleep_forever();
        }
        _exit(0);
      }
      waitpid(mid, nullptr, 0);
      shm->grandchild2.store(getpid());
      sleep_forever();
    }
    shm->ready.store(1);
    sleep_forever();
  });
  ChildGuard leader_guard{leader};
  ASSERT_TRUE(eventually([&] {
    return shm->ready.load() && shm->grandchild1.load() && shm->grandchild2.load() && shm->orphan.load() &&
           shm->sibling_counter.load() > 0;
  })) << "the session did not come up";
  const pid_t g1 = shm->grandchild1.load(), g2 = shm->grandchild2.load(), orphan = shm->orphan.load();
  ASSERT_TRUE(eventually([&] { return getsid(g1) == g1; })) << "grandchild 1 did not leave the session";
  ASSERT_EQ(getsid(g2), leader);
  ASSERT_EQ(getsid(orphan), leader);
  ASSERT_NE(getsid(sibling), leader);
  const uint64_t leader_start = start_of(leader), g1_start = start_of(g1), g2_start = start_of(g2),
                 orphan_start = start_of(orphan);

  auto protect = ProtectedTargets::from_host({});
  ASSERT_TRUE(protect) << protect.error().message;
  auto resolver = TargetResolver::open_host();
  ASSERT_TRUE(resolver);
  auto target = resolver->resolve_pid(leader);
  ASSERT_TRUE(target) << target.error().message;
  EXPECT_EQ(target->session_id, static_cast<uint32_t>(leader));
  EXPECT_EQ(target->cgroup_path, session_cg.relative());

  auto killed = kill_session(leader, target->pid_start_ns, *protect);
  ASSERT_TRUE(killed) << killed.error().message;
  const std::vector<KilledProcess> expected_members{
      {leader, leader_start}, {g1, g1_start}, {g2, g2_start}, {orphan, orphan_start}};
  ASSERT_EQ(killed->size(), expected_members.size());
  EXPECT_EQ(killed->front(), (KilledProcess{leader, leader_start})) << "the offender goes first";
  for (const auto& m : expected_members) {
    EXPECT_NE(std::find(killed->begin(), killed->end(), m), killed->end()) << "pid " << m.pid << " not killed";
    EXPECT_TRUE(wait_for_process_exit(m.pid, m.start_ns, 2s)) << "pid " << m.pid << " still running";
  }
  EXPECT_EQ(wait_for_exit(leader), 128 + SIGKILL);
  leader_guard.pid = 0;
  for (pid_t p : {g1, g2, orphan}) EXPECT_TRUE(eventually([&] { return !alive(p); }, 2s)) << "pid " << p;

  // The sibling outside the session is untouched and still running.
  EXPECT_EQ(waitpid(sibling, nullptr, WNOHANG), 0);
  EXPECT_TRUE(alive(sibling));
  const uint64_t before = shm->sibling_counter.load();
  EXPECT_TRUE(eventually([&] { return shm->sibling_counter.load() > before; }, 2s)) << "the sibling stopped";
}

TEST(ContainmentKill, KillSessionHoldingTheAgentIsRefusedWhole) {
  // The agent is played by a helper that leads a session of its own, so the test does not depend
  // on the session the test runner inherits (under a CI harness that session's leader may sit
  // outside this pid namespace, where /proc shows session id 0). The helper forks a child that
  // stays in its session and asks to kill that session: the session holds the agent (the helper),
  // so the whole action is refused and the child survives.
  struct Outcome {
    std::atomic<int> stage{0};  // 1 = the helper ran every step
    std::atomic<pid_t> child{0};
    std::atomic<int> refused_code{0};
    std::atomic<int> wrong_start_code{0};
    std::atomic<int> child_alive_after{0};
    char message[512]{};
  };
  void* mem = mmap(nullptr, sizeof(Outcome), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* out = new (mem) Outcome();

  TestCgroup cg("same-session.service");
  const pid_t agent = spawn_in_cgroup(cg, [&]() -> int {
    if (setsid() < 0) return 10;
    const pid_t child = fork();
    if (child < 0) return 11;
    if (child == 0) sleep_forever();
    out->child.store(child);
    auto protect = ProtectedTargets::from_host({});
    if (!protect) return 12;
    auto facts = read_process_facts("/proc", child);
    if (!facts) return 13;
    auto r = kill_session(child, facts->start_ns, *protect);
    if (r) return 14;
    out->refused_code.store(r.error().code);
    std::snprintf(out->message, sizeof(out->message), "%s", r.error().message.c_str());
    std::this_thread::sleep_for(50ms);
    out->child_alive_after.store(waitpid(child, nullptr, WNOHANG) == 0 ? 1 : 0);
    // A wrong start for the offender is refused before anything is scanned.
    auto wrong = kill_session(child, facts->start_ns + ns_per_clock_tick(), *protect);
    if (wrong) return 15;
    out->wrong_start_code.store(wrong.error().code);
    out->stage.store(1);
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    return 0;
  });
  ChildGuard guard{agent};
  EXPECT_EQ(wait_for_exit(agent), 0) << "the helper stopped early";
  guard.pid = 0;
  ASSERT_EQ(out->stage.load(), 1);
  const std::string message(out->message);
  EXPECT_EQ(out->refused_code.load(), EPERM) << message;
  EXPECT_NE(message.find("nothing killed"), std::string::npos) << message;
  EXPECT_NE(message.find("the agent itself"), std::string::npos) << message;
  EXPECT_EQ(out->child_alive_after.load(), 1) << "a refused kill_session killed something";
  EXPECT_EQ(out->wrong_start_code.load(), ESRCH);
  munmap(mem, sizeof(Outcome));
}

}  // namespace
