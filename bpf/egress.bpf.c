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

#include "egress_blocks.bpf.h"
#include "maps.bpf.h"
#include "nhiguard_abi.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader: report the egress of untainted, allowed processes too (noisy; off by default). */
const volatile bool report_all_egress = false;

static __always_inline int egress__sock_addr(struct bpf_sock_addr *ctx, __u16 hook, bool v6)
{
	struct egress_dest dest;

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
	return egress__decide(&dest, v6 ? AF_INET6 : AF_INET, (__u16)ctx->protocol, hook, true,
			      report_all_egress)
		       ? 0
		       : 1;
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
