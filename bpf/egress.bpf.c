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
 * - A process that was in a blocked cgroup when the block applied stays blocked after it moves to
 *   another cgroup (nhg_followed, nhiguard_abi.h), and so do the children it forks.
 * - The skb filter matches the packet's own destination (its IP header), so the sends of sockets
 *   without a destination (unconnected ping and raw sockets) are matched too; a blocked process
 *   cannot create a raw socket at all (cgroup/sock_create).
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

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_UDPLITE 136
#define IP_OFFSET_MASK 0x1fff

static __always_inline bool egress__has_ports(__u8 protocol)
{
	return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE;
}

/* The packet's own destination, from its IP header (cgroup_skb data starts at the network header):
 * a socket with no destination of its own (an unconnected ping or raw socket, whose sends no
 * sendmsg hook sees) still sends to one. The port is the TCP/UDP header's where the packet has one
 * right after the IP header; otherwise the socket's stays. */
static __always_inline void egress__packet_dest(struct __sk_buff *skb, struct egress_dest *dest)
{
	__u16 ports[2];

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) != 0)
			return;
		egress__map_v4(dest, ip.daddr);
		if (egress__has_ports(ip.protocol) && !(ip.frag_off & bpf_htons(IP_OFFSET_MASK)) &&
		    bpf_skb_load_bytes(skb, ip.ihl * 4, ports, sizeof(ports)) == 0)
			dest->port_be = ports[1];
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) != 0)
			return;
		__builtin_memcpy(dest->addr, &ip6.daddr, 16);
		if (egress__has_ports(ip6.nexthdr) &&
		    bpf_skb_load_bytes(skb, sizeof(ip6), ports, sizeof(ports)) == 0)
			dest->port_be = ports[1];
	}
}

/* Packets of sockets opened before the block (an established connection) are dropped here, and so
 * are those of sockets that have no destination of their own (matched on the packet's). */
SEC("cgroup_skb/egress")
int egress_skb(struct __sk_buff *skb)
{
	struct nhg_egress_block *block = NULL;
	struct egress_dest dest = {};
	int level;

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
	egress__packet_dest(skb, &dest);

	for (level = 1; level <= NHG_MAX_CGROUP_DEPTH && !block; level++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);

		if (!id)
			break;
		block = egress__block_for(id, &dest);
	}
	if (!block && level > NHG_MAX_CGROUP_DEPTH)
		maps__count_if_deeper(bpf_skb_ancestor_cgroup_id(skb, NHG_MAX_CGROUP_DEPTH + 1));
	if (!block)
		return 1;
	maps__count(NHG_CTR_EGRESS_DENIED);
	return 0;
}

#define AF_PACKET 17
#define SOCK_RAW 3

/* A raw IP socket builds its own packets and has no connect or sendmsg hook: a blocked process may
 * not create one (EPERM). The kernel runs this hook for AF_INET and AF_INET6 sockets only, so an
 * AF_PACKET socket (which sends below IP, past every cgroup hook) is refused only where the BPF
 * LSM's socket_create is enforced; the family test stays for kernels that also run it there. */
SEC("cgroup/sock_create")
int egress_sock_create(struct bpf_sock *ctx)
{
	struct nhg_egress_block *block;
	struct egress_dest none = {};
	__u32 tgid;

	if (ctx->type != SOCK_RAW && ctx->family != AF_PACKET)
		return 1;
	tgid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	block = egress__current_block(tgid, NULL);
	if (!block)
		return 1;
	maps__count(NHG_CTR_EGRESS_DENIED);
	egress__report(block, bpf_map_lookup_elem(&nhg_taint, &tgid), NULL, &none, (__u16)ctx->family,
		       (__u16)ctx->protocol, NHG_HOOK_SOCK_CREATE);
	return 0;
}
