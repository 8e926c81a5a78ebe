/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The credential table, its prefilter and the deny table, shared by the sensor's open path
 * (sensor.bpf.c) and the BPF LSM object (lsm.bpf.c): the loader makes the LSM object reuse the
 * sensor's maps, so both decide on the same entries.
 */
#ifndef NHIGUARD_CREDENTIALS_BPF_H
#define NHIGUARD_CREDENTIALS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"
#include "nhiguard_abi.h"
#include "process.bpf.h"

/* fmode_t bits (include/linux/fs.h); stable kernel-wide, absent from BTF because they are macros. */
#define FMODE_READ 0x1
#define FMODE_WRITE 0x2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct nhg_inode_key);
	__type(value, struct nhg_credential_value);
} nhg_credentials SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nhg_deny_key);
	__type(value, struct nhg_deny_value);
} nhg_credential_denies SEC(".maps");

/* Prefilter of nhg_credentials (nhiguard_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NHG_CREDENTIAL_FILTER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} nhg_credential_filter SEC(".maps");

/* May this inode be in nhg_credentials? The filter answers "no" for nearly every file without
 * hashing the key. */
static __always_inline bool credentials__may_be(const struct nhg_inode_key *key)
{
	__u32 slot = nhg_credential_filter_slot(key->dev, key->ino);
	__u32 *count = bpf_map_lookup_elem(&nhg_credential_filter, &slot);

	return count && *count;
}

static __always_inline bool credentials__denied_on(struct nhg_deny_key *key, __u64 cgroup_id)
{
	struct nhg_deny_value *deny;

	key->cgroup_id = cgroup_id;
	deny = bpf_map_lookup_elem(&nhg_credential_denies, key);
	return deny && maps__in_force(deny->expires_at_ns);
}

/* Is reading this credential denied to the current cgroup or one of its ancestors, or to a
 * contained cgroup the current process has left (nhg_followed)? *matched receives the deny entry's
 * key (the read path remembers it for the fd table, readpath.bpf.h). */
static __always_inline bool credentials__deny_match(__u32 credential_id, struct nhg_deny_key *matched)
{
	struct nhg_deny_key key = {.credential_id = credential_id};
	__u32 tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	struct nhg_follow *follow;
	int level;

	if (!maps__enforcing(NHG_ENF_CREDENTIAL_DENIES))
		return false;
	for (level = 1; level <= NHG_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		if (credentials__denied_on(&key, id)) {
			*matched = key;
			return true;
		}
	}
	if (level > NHG_MAX_CGROUP_DEPTH)
		maps__count_if_deeper(bpf_get_current_ancestor_cgroup_id(NHG_MAX_CGROUP_DEPTH + 1));
	follow = bpf_map_lookup_elem(&nhg_followed, &tgid);
	if (!follow)
		return false;
	for (int i = 0; i < NHG_FOLLOW_MAX_TARGETS; i++) {
		if (follow->cgroup_ids[i] && credentials__denied_on(&key, follow->cgroup_ids[i])) {
			*matched = key;
			return true;
		}
	}
	return false;
}

static __always_inline bool credentials__denied(__u32 credential_id)
{
	struct nhg_deny_key matched;

	return credentials__deny_match(credential_id, &matched);
}

/* Opens the reader's cgroup window (NHG_CGROUP_TAINT_WINDOW_NS): its siblings' egress in the window
 * is attributed to this read at a lower confidence. */
static __always_inline void credentials__taint_cgroup(struct task_struct *task, __u32 credential_id,
						      __u32 tgid, __u64 now)
{
	__u64 cgroup_id = process__cgroup_id(task);
	struct nhg_cgroup_taint window = {
		.tainted_at_ns = now,
		.credential_id = credential_id,
		.source_tgid = tgid,
	};

	bpf_map_update_elem(&nhg_cgroup_taint, &cgroup_id, &window, BPF_ANY);
}

/* Taints the current process with the credential it just opened for reading (its first read of
 * this file, or a read of another credential since) or received as an open fd. */
static __always_inline void credentials__taint(struct task_struct *task, __u32 credential_id,
					       const struct nhg_inode_key *key)
{
	__u32 tgid = (__u32)task->tgid;
	__u64 now = bpf_ktime_get_boot_ns();
	struct nhg_taint taint = {
		.start_ns = BPF_CORE_READ(task, group_leader, start_boottime),
		.tainted_at_ns = now,
		.credential_id = credential_id,
		.source_tgid = tgid,
		.file = *key,
		.window_start_ns = now,
	};

	if (bpf_map_update_elem(&nhg_taint, &tgid, &taint, BPF_ANY) != 0)
		maps__count(NHG_CTR_TAINT_MAP_FULL);
	credentials__taint_cgroup(task, credential_id, tgid, now);
}

#endif /* NHIGUARD_CREDENTIALS_BPF_H */
