/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Egress blocks and their decision, shared by the cgroup hooks (egress.bpf.c) and the BPF LSM
 * socket hooks (lsm.bpf.c): the loader makes the LSM object reuse the egress object's maps, so both
 * layers enforce the same entries and report a refusal the same way.
 */
#ifndef NHIGUARD_EGRESS_BLOCKS_BPF_H
#define NHIGUARD_EGRESS_BLOCKS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"
#include "nhiguard_abi.h"

#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct nhg_egress_block);
} nhg_egress_blocks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__type(key, struct nhg_egress_dest_key);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} nhg_egress_dests SEC(".maps");

/* A destination as the hooks see it: IPv6 or IPv4-mapped address, port in network order. */
struct egress_dest {
	__u8 addr[16];
	__u16 port_be;
};

static __always_inline void egress__map_v4(struct egress_dest *dest, __u32 ip4_be)
{
	__builtin_memset(dest->addr, 0, 10);
	dest->addr[10] = 0xff;
	dest->addr[11] = 0xff;
	__builtin_memcpy(&dest->addr[12], &ip4_be, 4);
}

/* Is `dest` in the listed destinations of the block on `cgroup_id`? */
static __always_inline bool egress__listed(__u64 cgroup_id, const struct egress_dest *dest)
{
	struct nhg_egress_dest_key key = {.prefixlen = 8 * (8 + 2 + 16)};

	__builtin_memcpy(key.cgroup_id, &cgroup_id, 8);
	__builtin_memcpy(key.addr, dest->addr, 16);
	__builtin_memcpy(key.port, &dest->port_be, 2);
	if (bpf_map_lookup_elem(&nhg_egress_dests, &key))
		return true;
	key.port[0] = 0;
	key.port[1] = 0;
	return bpf_map_lookup_elem(&nhg_egress_dests, &key) != NULL;
}

/* The block in force on `cgroup_id` that applies to `dest`, or NULL. dest NULL: a socket with no
 * destination yet (a raw socket at creation), which any block in force refuses. */
static __always_inline struct nhg_egress_block *egress__block_for(__u64 cgroup_id,
								  const struct egress_dest *dest)
{
	struct nhg_egress_block *block = bpf_map_lookup_elem(&nhg_egress_blocks, &cgroup_id);

	if (!block || !maps__in_force(block->expires_at_ns))
		return NULL;
	if (block->mode == NHG_BLOCK_ALL || !dest)
		return block;
	if (block->mode == NHG_BLOCK_LISTED && egress__listed(cgroup_id, dest))
		return block;
	return NULL;
}

/* The block that applies to the current process: one on its cgroup or an ancestor (levels 1 to
 * NHG_MAX_CGROUP_DEPTH), else one on a contained cgroup it has left (nhg_followed). */
static __always_inline struct nhg_egress_block *egress__current_block(__u32 tgid,
								      const struct egress_dest *dest)
{
	struct nhg_egress_block *block;
	struct nhg_follow *follow;
	int level;

	if (!maps__enforcing(NHG_ENF_EGRESS_BLOCKS))
		return NULL;
	for (level = 1; level <= NHG_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		block = egress__block_for(id, dest);
		if (block)
			return block;
	}
	if (level > NHG_MAX_CGROUP_DEPTH)
		maps__count_if_deeper(bpf_get_current_ancestor_cgroup_id(NHG_MAX_CGROUP_DEPTH + 1));
	follow = bpf_map_lookup_elem(&nhg_followed, &tgid);
	if (!follow)
		return NULL;
	for (int i = 0; i < NHG_FOLLOW_MAX_TARGETS; i++) {
		__u64 id = follow->cgroup_ids[i];

		if (!id)
			continue;
		block = egress__block_for(id, dest);
		if (block)
			return block;
	}
	return NULL;
}

/* The current cgroup's window (nhg_cgroup_taint) when a credential was read in it within
 * NHG_CGROUP_TAINT_WINDOW_NS, else NULL. */
static __always_inline struct nhg_cgroup_taint *egress__cgroup_window(void)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct nhg_cgroup_taint *window = bpf_map_lookup_elem(&nhg_cgroup_taint, &cgroup_id);

	if (!window || bpf_ktime_get_boot_ns() - window->tainted_at_ns >= NHG_CGROUP_TAINT_WINDOW_NS)
		return NULL;
	return window;
}

/* One NHG_EVENT_EGRESS record of the current process (a hook with a process context). */
static __always_inline void egress__report(const struct nhg_egress_block *block,
					   const struct nhg_taint *taint,
					   const struct nhg_cgroup_taint *window,
					   const struct egress_dest *dest, __u16 family, __u16 protocol,
					   __u16 hook)
{
	struct nhg_egress_event *event;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_EGRESS);
		return;
	}
	event->hdr.type = NHG_EVENT_EGRESS;
	event->hdr.size = sizeof(*event);
	event->hdr.version = NHG_ABI_VERSION;
	event->hdr.cpu = (__u16)bpf_get_smp_processor_id();
	event->hdr.ts_ns = bpf_ktime_get_boot_ns();
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	event->proc.tgid = (__u32)(pid_tgid >> 32);
	event->proc.tid = (__u32)pid_tgid;
	uid_gid = bpf_get_current_uid_gid();
	event->proc.uid = (__u32)uid_gid;
	event->proc.gid = (__u32)(uid_gid >> 32);
	event->proc.sessionid = 0xffffffff;
	event->proc.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(event->proc.comm, sizeof(event->proc.comm));
	__builtin_memcpy(event->addr, dest->addr, 16);
	event->port = bpf_ntohs(dest->port_be);
	event->family = family;
	event->protocol = protocol;
	event->hook = hook;
	event->verdict = block ? NHG_VERDICT_DENIED : NHG_VERDICT_ALLOWED;
	event->rule_id = block ? block->rule_id : 0;
	event->pad0 = 0;
	if (taint) {
		event->proc.start_ns = taint->start_ns;
		event->taint_credential_id = taint->credential_id;
		event->taint_source_tgid = taint->source_tgid;
		event->tainted_at_ns = taint->tainted_at_ns;
		event->taint_kind = NHG_TAINT_PROCESS;
	} else if (window) {
		event->taint_credential_id = window->credential_id;
		event->taint_source_tgid = window->source_tgid;
		event->tainted_at_ns = window->tainted_at_ns;
		event->taint_kind = NHG_TAINT_CGROUP_WINDOW;
	} else {
		event->taint_credential_id = 0;
		event->taint_source_tgid = 0;
		event->tainted_at_ns = 0;
		event->taint_kind = NHG_TAINT_NONE;
	}
	bpf_ringbuf_submit(event, maps__submit_flags());
}

/* Decides a connect/sendmsg of the current task to `dest` and reports it: every refusal, and with
 * report_allowed the allowed egress of a tainted process (every one with report_all). Returns
 * whether an egress block refuses it. */
static __always_inline bool egress__decide(const struct egress_dest *dest, __u16 family, __u16 protocol,
					   __u16 hook, bool report_allowed, bool report_all)
{
	__u32 tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	struct nhg_egress_block *block = egress__current_block(tgid, dest);
	struct nhg_cgroup_taint *window = NULL;
	struct nhg_taint *taint;

	if (block)
		maps__count(NHG_CTR_EGRESS_DENIED);
	else if (!report_allowed)
		return false;
	taint = bpf_map_lookup_elem(&nhg_taint, &tgid);
	if (!taint)
		window = egress__cgroup_window();
	if (!taint && !window && !block && !report_all)
		return false;
	egress__report(block, taint, window, dest, family, protocol, hook);
	return block != NULL;
}

#endif /* NHIGUARD_EGRESS_BLOCKS_BPF_H */
