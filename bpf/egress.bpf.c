// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nhiguard egress: cgroup connect/sendmsg hooks and a cgroup_skb egress filter, attached once at the
 * cgroup v2 root.
 *
 * - Reports the egress attempts of tainted processes (they read a credential), of untainted ones
 *   in a cgroup where a credential was read within NHG_CGROUP_TAINT_WINDOW_NS (lower confidence),
 *   and every denied one.
 * - Enforces egress blocks keyed by cgroup id (applying to that cgroup and everything below it):
 *   total, or limited to listed destinations (CIDR, optional port). connect()/sendmsg() then fail
 *   with EPERM before the first packet; the skb filter drops the packets of sockets that were
 *   already open, so an established connection stops delivering.
 * - Every block carries expires_at_ns: an expired entry is ignored, so a TTL holds with no agent.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"
#include "nhiguard_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

/* Set by the loader: report the egress of untainted, allowed processes too (noisy; off by default). */
const volatile bool report_all_egress = false;

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

/* The block that applies to this destination from the cgroup at `ids` levels, or NULL.
 * ancestor(level) is a callback-free walk: the caller passes each level's id. */
static __always_inline struct nhg_egress_block *egress__block_for(__u64 cgroup_id,
								  const struct egress_dest *dest)
{
	struct nhg_egress_block *block = bpf_map_lookup_elem(&nhg_egress_blocks, &cgroup_id);

	if (!block || !maps__in_force(block->expires_at_ns))
		return NULL;
	if (block->mode == NHG_BLOCK_ALL)
		return block;
	if (block->mode == NHG_BLOCK_LISTED && egress__listed(cgroup_id, dest))
		return block;
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

static __always_inline int egress__sock_addr(struct bpf_sock_addr *ctx, __u16 hook, bool v6)
{
	struct nhg_egress_block *block = NULL;
	struct nhg_egress_event *event;
	struct egress_dest dest;
	struct nhg_taint *taint;
	struct nhg_cgroup_taint *window = NULL;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = (__u32)(pid_tgid >> 32);
	__u64 uid_gid;

	if (v6) {
		__u32 ip6[4];

		ip6[0] = ctx->user_ip6[0];
		ip6[1] = ctx->user_ip6[1];
		ip6[2] = ctx->user_ip6[2];
		ip6[3] = ctx->user_ip6[3];
		__builtin_memcpy(dest.addr, ip6, 16);
	} else {
		egress__map_v4(&dest, ctx->user_ip4);
	}
	dest.port_be = (__u16)ctx->user_port;

	const bool enforcing = maps__enforcing(NHG_ENF_EGRESS_BLOCKS);

	for (int level = 1; level <= NHG_MAX_CGROUP_DEPTH && !block && enforcing; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		block = egress__block_for(id, &dest);
	}

	taint = bpf_map_lookup_elem(&nhg_taint, &tgid);
	if (!taint)
		window = egress__cgroup_window();
	if (block)
		maps__count(NHG_CTR_EGRESS_DENIED);
	if (!taint && !window && !block && !report_all_egress)
		return 1;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_EGRESS);
		return block ? 0 : 1;
	}
	event->hdr.type = NHG_EVENT_EGRESS;
	event->hdr.size = sizeof(*event);
	event->hdr.version = NHG_ABI_VERSION;
	event->hdr.cpu = (__u16)bpf_get_smp_processor_id();
	event->hdr.ts_ns = bpf_ktime_get_boot_ns();
	__builtin_memset(&event->proc, 0, sizeof(event->proc));
	event->proc.tgid = tgid;
	event->proc.tid = (__u32)pid_tgid;
	uid_gid = bpf_get_current_uid_gid();
	event->proc.uid = (__u32)uid_gid;
	event->proc.gid = (__u32)(uid_gid >> 32);
	event->proc.sessionid = 0xffffffff;
	event->proc.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(event->proc.comm, sizeof(event->proc.comm));
	__builtin_memcpy(event->addr, dest.addr, 16);
	event->port = bpf_ntohs(dest.port_be);
	event->family = v6 ? AF_INET6 : AF_INET;
	event->protocol = (__u16)ctx->protocol;
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
	return block ? 0 : 1;
}

SEC("cgroup/connect4")
int egress_connect4(struct bpf_sock_addr *ctx)
{
	return egress__sock_addr(ctx, NHG_HOOK_CONNECT4, false);
}

SEC("cgroup/connect6")
int egress_connect6(struct bpf_sock_addr *ctx)
{
	return egress__sock_addr(ctx, NHG_HOOK_CONNECT6, true);
}

SEC("cgroup/sendmsg4")
int egress_sendmsg4(struct bpf_sock_addr *ctx)
{
	return egress__sock_addr(ctx, NHG_HOOK_SENDMSG4, false);
}

SEC("cgroup/sendmsg6")
int egress_sendmsg6(struct bpf_sock_addr *ctx)
{
	return egress__sock_addr(ctx, NHG_HOOK_SENDMSG6, true);
}

/* Packets of sockets opened before the block (an established connection) are dropped here. */
SEC("cgroup_skb/egress")
int egress_skb(struct __sk_buff *skb)
{
	struct nhg_egress_block *block = NULL;
	struct egress_dest dest = {};

	if (!maps__enforcing(NHG_ENF_EGRESS_BLOCKS))
		return 1;
	if (skb->family == AF_INET) {
		egress__map_v4(&dest, skb->remote_ip4);
	} else if (skb->family == AF_INET6) {
		__u32 ip6[4];

		ip6[0] = skb->remote_ip6[0];
		ip6[1] = skb->remote_ip6[1];
		ip6[2] = skb->remote_ip6[2];
		ip6[3] = skb->remote_ip6[3];
		__builtin_memcpy(dest.addr, ip6, 16);
	}
	/* __sk_buff.remote_port holds the port in network order in its upper 16 bits. */
	dest.port_be = (__u16)(skb->remote_port >> 16);

	for (int level = 1; level <= NHG_MAX_CGROUP_DEPTH && !block; level++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);

		if (!id)
			break;
		block = egress__block_for(id, &dest);
	}
	if (!block)
		return 1;
	maps__count(NHG_CTR_EGRESS_DENIED);
	return 0;
}
