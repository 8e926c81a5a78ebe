/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by the sensor and egress objects. Each object declares them; the loader makes the
 * second object reuse the first's (pinned maps by pin path, the ring buffer by fd), so there is one
 * ring buffer, one counter array and one taint table.
 */
#ifndef NHIGUARD_MAPS_BPF_H
#define NHIGUARD_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "nhiguard_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader from config */
} nhg_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NHG_CTR__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} nhg_counters SEC(".maps");

/* tgid -> the credential it (or the ancestor it inherited from) read. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NHG_TAINT_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct nhg_taint);
} nhg_taint SEC(".maps");

/* cgroup id -> the last credential read in it (NHG_CGROUP_TAINT_WINDOW_NS). LRU: the oldest reads
 * make room, and a read older than the window matters no more. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct nhg_cgroup_taint);
} nhg_cgroup_taint SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NHG_ENF__COUNT);
	__type(key, __u32);
	__type(value, __u32);
} nhg_enforcement_counts SEC(".maps");

static __always_inline bool maps__enforcing(__u32 slot)
{
	__u32 *count = bpf_map_lookup_elem(&nhg_enforcement_counts, &slot);

	return count && *count > 0;
}

/* Per-CPU time of the last consumer wake-up (CLOCK_MONOTONIC ns). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} nhg_last_wakeup SEC(".maps");

/* The agent is woken at most once per NHG_WAKEUP_INTERVAL_NS per CPU; records in between wait for
 * that wake-up or the agent's poll timeout. Waking the consumer for every record costs an IPI and
 * a context switch per event, which under a burst of reads dominated the open path. */
#define NHG_WAKEUP_INTERVAL_NS 1000000ull

static __always_inline __u64 maps__submit_flags(void)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&nhg_last_wakeup, &zero);
	__u64 now = bpf_ktime_get_ns();

	if (!last)
		return 0;
	if (now - *last >= NHG_WAKEUP_INTERVAL_NS) {
		*last = now;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

/* How deep the enforcement lookups walk up the cgroup tree (a block on a service applies to the
 * cgroups below it). */
#define NHG_MAX_CGROUP_DEPTH 16

static __always_inline void maps__count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&nhg_counters, &counter);
	if (value)
		*value += 1;
}

/* An enforcement entry holds until its CLOCK_BOOTTIME expiry, whether or not an agent runs. */
static __always_inline bool maps__in_force(__u64 expires_at_ns)
{
	return bpf_ktime_get_boot_ns() < expires_at_ns;
}

#endif /* NHIGUARD_MAPS_BPF_H */
