// ProcessTable: (tgid, start) keys, ancestry, exit grace and bound.
#include <gtest/gtest.h>

#include "identity/process_table.h"

using nhiguard::identity::ProcessKey;
using nhiguard::identity::ProcessTable;
using namespace nhiguard::events;

namespace {

KernelProcess proc(uint32_t tgid, uint64_t start, uint32_t ppid, std::string comm = "p") {
  KernelProcess p;
  p.tgid = tgid;
  p.tid = tgid;
  p.ppid = ppid;
  p.start_ns = start;
  p.cgroup_id = 77;
  p.comm = std::move(comm);
  return p;
}

TEST(ProcessTable, ForkExecBuildsAncestry) {
  ProcessTable table;
  table.on_exec(ExecEvent{.ts_ns = 5, .process = proc(100, 1, 1, "bash"), .filename = "/bin/bash"});
  table.on_fork(ForkEvent{.ts_ns = 10, .parent = proc(100, 1, 1, "bash"), .child_tgid = 200, .child_start_ns = 10});
  auto child = table.find({200, 10});
  ASSERT_TRUE(child);
  EXPECT_EQ(child->exe, "/bin/bash");  // before exec, the parent's image
  table.on_exec(ExecEvent{.ts_ns = 11, .process = proc(200, 10, 100, "curl"), .filename = "/usr/bin/curl"});
  table.on_fork(ForkEvent{.ts_ns = 12, .parent = proc(200, 10, 100, "curl"), .child_tgid = 300, .child_start_ns = 12});
  auto chain = table.ancestry({300, 12});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].key, (ProcessKey{200, 10}));
  EXPECT_EQ(chain[0].exe, "/usr/bin/curl");
  EXPECT_EQ(chain[1].key, (ProcessKey{100, 1}));
}

TEST(ProcessTable, ReusedPidIsANewProcess) {
  ProcessTable table;
  table.on_exec(ExecEvent{.ts_ns = 1, .process = proc(500, 1, 1), .filename = "/usr/bin/old"});
  table.on_exit(ExitEvent{.ts_ns = 2, .process = proc(500, 1, 1), .exit_code = 0});
  table.on_exec(ExecEvent{.ts_ns = 3, .process = proc(500, 3, 1), .filename = "/usr/bin/new"});
  EXPECT_EQ(table.find({500, 1})->exe, "/usr/bin/old");
  EXPECT_TRUE(table.find({500, 1})->exited);
  EXPECT_EQ(table.find({500, 3})->exe, "/usr/bin/new");
  EXPECT_FALSE(table.find({500, 3})->exited);
}

TEST(ProcessTable, ExitedEntriesExpireAfterGrace) {
  ProcessTable table(100, 1000);
  table.on_exec(ExecEvent{.ts_ns = 1, .process = proc(10, 1, 1), .filename = "/x"});
  table.on_exit(ExitEvent{.ts_ns = 100, .process = proc(10, 1, 1), .exit_code = 9});
  table.expire(500);
  ASSERT_TRUE(table.find({10, 1}));
  EXPECT_EQ(table.find({10, 1})->exit_code, 9);
  table.expire(2000);
  EXPECT_FALSE(table.find({10, 1}));
}

TEST(ProcessTable, BoundEvictsExitedFirst) {
  ProcessTable table(3, 1'000'000);
  table.observe(proc(1, 1, 0));
  table.observe(proc(2, 2, 1));
  table.on_exit(ExitEvent{.ts_ns = 50, .process = proc(2, 2, 1)});
  table.observe(proc(3, 3, 1));
  table.observe(proc(4, 4, 1));
  EXPECT_EQ(table.size(), 3u);
  EXPECT_FALSE(table.find({2, 2}));
  EXPECT_TRUE(table.find({1, 1}));
  table.observe(proc(5, 5, 1));
  EXPECT_EQ(table.size(), 3u);
  EXPECT_FALSE(table.find({1, 1}));  // no exited entry left: the oldest start goes
}

TEST(ProcessTable, ParentFromBeforeTheAgentResolvesByLiveTgid) {
  ProcessTable table;
  table.observe(proc(40, 4, 1, "sshd"));
  table.observe(proc(41, 9, 40, "scp"));
  auto chain = table.ancestry({41, 9});
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].comm, "sshd");
}

}  // namespace
