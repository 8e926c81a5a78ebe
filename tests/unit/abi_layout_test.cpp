// The kernel<->user ABI (bpf/nhiguard_abi.h) has the same size and offsets on both sides: the BPF
// object is compiled for -target bpf (LP64, little-endian on x86_64/arm64) and the decoder relies on
// these numbers. A change here without an ABI version bump is a bug.
#include <cstddef>

#include <gtest/gtest.h>

#include "nhiguard_abi.h"

static_assert(sizeof(nhg_event_header) == 16);
static_assert(offsetof(nhg_event_header, type) == 0);
static_assert(offsetof(nhg_event_header, size) == 2);
static_assert(offsetof(nhg_event_header, version) == 4);
static_assert(offsetof(nhg_event_header, ts_ns) == 8);

static_assert(sizeof(nhg_process) == 64);
static_assert(offsetof(nhg_process, start_ns) == 32);
static_assert(offsetof(nhg_process, cgroup_id) == 40);
static_assert(offsetof(nhg_process, comm) == 48);

static_assert(sizeof(nhg_inode_key) == 16);
static_assert(sizeof(nhg_credential_value) == 8);
static_assert(sizeof(nhg_name_key) == 2 * NHG_NAME_LEN);

static_assert(offsetof(nhg_file_event, proc) == 16);
static_assert(offsetof(nhg_file_event, file) == 80);
static_assert(offsetof(nhg_file_event, credential_id) == 96);
static_assert(offsetof(nhg_file_event, fd) == 108);
static_assert(offsetof(nhg_file_event, syscall) == 112);
static_assert(offsetof(nhg_file_event, name) == 120);
static_assert(offsetof(nhg_file_event, parent) == 184);
static_assert(offsetof(nhg_file_event, requested_path) == 248);
static_assert(offsetof(nhg_file_event, cmdline_len) == 116);
static_assert(offsetof(nhg_file_event, cmdline) == 504);
static_assert(sizeof(nhg_file_event) == 760);

static_assert(offsetof(nhg_exec_event, old_tid) == 80);
static_assert(offsetof(nhg_exec_event, filename) == 88);
static_assert(sizeof(nhg_exec_event) == 344);

static_assert(offsetof(nhg_fork_event, child_tgid) == 80);
static_assert(offsetof(nhg_fork_event, child_start_ns) == 88);
static_assert(sizeof(nhg_fork_event) == 96);

static_assert(offsetof(nhg_exit_event, exit_code) == 80);
static_assert(sizeof(nhg_exit_event) == 88);

static_assert(offsetof(nhg_egress_event, addr) == 80);
static_assert(offsetof(nhg_egress_event, port) == 96);
static_assert(offsetof(nhg_egress_event, verdict) == 104);
static_assert(offsetof(nhg_egress_event, tainted_at_ns) == 120);
static_assert(offsetof(nhg_egress_event, taint_kind) == 128);
static_assert(sizeof(nhg_egress_event) == 136);
static_assert(offsetof(nhg_taint, file) == 24);
static_assert(offsetof(nhg_taint, window_start_ns) == 40);
static_assert(offsetof(nhg_taint, coalesced) == 48);
static_assert(sizeof(nhg_taint) == 56);
static_assert(sizeof(nhg_egress_block) == 16);
static_assert(sizeof(nhg_egress_dest_key) == 32);
static_assert(sizeof(nhg_deny_key) == 16);
static_assert(sizeof(nhg_deny_value) == 16);
static_assert(sizeof(nhg_name_prefix_key) == 16);

// Every record is a multiple of 8 bytes so the ring buffer keeps the next header aligned.
TEST(AbiLayout, RecordsAreEightByteMultiples) {
  EXPECT_EQ(sizeof(nhg_file_event) % 8, 0u);
  EXPECT_EQ(sizeof(nhg_exec_event) % 8, 0u);
  EXPECT_EQ(sizeof(nhg_fork_event) % 8, 0u);
  EXPECT_EQ(sizeof(nhg_exit_event) % 8, 0u);
  EXPECT_EQ(sizeof(nhg_egress_event) % 8, 0u);
  EXPECT_EQ(sizeof(nhg_cgroup_move_event) % 8, 0u);
}

TEST(AbiLayout, EnumValuesAreStable) {
  EXPECT_EQ(NHG_EVENT_CREDENTIAL_OPEN, 1);
  EXPECT_EQ(NHG_EVENT_CANDIDATE_OPEN, 2);
  EXPECT_EQ(NHG_EVENT_PROCESS_EXEC, 3);
  EXPECT_EQ(NHG_EVENT_PROCESS_FORK, 4);
  EXPECT_EQ(NHG_EVENT_PROCESS_EXIT, 5);
  EXPECT_EQ(NHG_EVENT_CGROUP_MOVE, 7);
  EXPECT_EQ(NHG_CTR_FOLLOW_MAP_FULL, 11);
  EXPECT_EQ(NHG_CTR_CGROUP_DEPTH_EXCEEDED, 12);
  EXPECT_EQ(NHG_HOOK_SOCK_CREATE, 5);
  EXPECT_EQ(NHG_SYS_OPEN_BY_HANDLE_AT, 5);
  EXPECT_EQ(NHG_SYS_FILE_RECEIVE, 6);
  EXPECT_EQ(NHG_SYS_LSM_FILE_OPEN, 7);
  EXPECT_EQ(NHG_FILE_REFUSED, 1u << 7);
  EXPECT_EQ(NHG_CTR_LSM_REFUSED, 10);
  EXPECT_LT(NHG_CTR_LSM_REFUSED, NHG_CTR__COUNT);
  EXPECT_LE(NHG_CTR_CANDIDATE_OPENS, NHG_CTR__COUNT);
  EXPECT_EQ(NHG_NAME_ANY_PARENT, 1);
  EXPECT_EQ(NHG_NAME_BY_PARENT, 2);
}

// The candidate filter folds a name's length into 6 bits: names are shorter than NHG_NAME_LEN, so
// NHG_NAME_LEN must be a power of two for no two lengths to share a slot.
static_assert((NHG_NAME_LEN & (NHG_NAME_LEN - 1)) == 0);

static_assert(sizeof(nhg_follow) == 8 + 8 * NHG_FOLLOW_MAX_TARGETS);
static_assert(sizeof(nhg_cgroup_move_event) == 128);
static_assert(offsetof(nhg_cgroup_move_event, proc) == 16);
static_assert(offsetof(nhg_cgroup_move_event, dst_cgroup_id) == 80);
static_assert(offsetof(nhg_cgroup_move_event, followed_cgroup_ids) == 88);
static_assert(offsetof(nhg_cgroup_move_event, flags) == 120);
static_assert(offsetof(nhg_cgroup_move_event, taint_credential_id) == 124);

// The kernel and the agent compute the same slots; these values pin the functions, so a change to
// one side that the other does not follow fails here rather than as silently missed opens.
TEST(AbiLayout, PrefilterSlotsAreStableAndInRange) {
  EXPECT_EQ(nhg_credential_filter_slot(0, 0), 0u);
  EXPECT_EQ(nhg_credential_filter_slot(0, 1), 0x9E3779B97F4A7C15ull >> (64 - NHG_CREDENTIAL_FILTER_BITS));
  for (uint64_t ino = 1; ino < 100000; ino += 7) {
    EXPECT_LT(nhg_credential_filter_slot(266338304, ino), NHG_CREDENTIAL_FILTER_SLOTS);
  }
  EXPECT_EQ(nhg_candidate_filter_slot(11, 'c'), (11u << 8) | 'c');
  EXPECT_LT(nhg_candidate_filter_slot(NHG_NAME_LEN - 1, 0xff), NHG_CANDIDATE_FILTER_SLOTS);
}

static_assert(offsetof(nhg_memory_access_event, proc) == 16);
static_assert(offsetof(nhg_memory_access_event, target_tgid) == 80);
static_assert(offsetof(nhg_memory_access_event, target_start_ns) == 88);
static_assert(offsetof(nhg_memory_access_event, taint_credential_id) == 96);
static_assert(offsetof(nhg_memory_access_event, tainted_at_ns) == 104);
static_assert(offsetof(nhg_memory_access_event, how) == 112);
static_assert(offsetof(nhg_memory_access_event, f_mode) == 116);
static_assert(offsetof(nhg_memory_access_event, result) == 120);
static_assert(sizeof(nhg_memory_access_event) == 128);
static_assert(offsetof(nhg_block_device_event, rdev) == 80);
static_assert(offsetof(nhg_block_device_event, f_mode) == 88);
static_assert(offsetof(nhg_block_device_event, fd) == 92);
static_assert(offsetof(nhg_block_device_event, syscall) == 96);
static_assert(offsetof(nhg_block_device_event, name) == 104);
static_assert(sizeof(nhg_block_device_event) == 168);
