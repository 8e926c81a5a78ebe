// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nhiguard BPF LSM: containment in the kernel's security hooks, loaded on top of the sensor and the
 * egress hooks where BPF LSM is active (`lsm=...,bpf`; the agent's feature probe decides). It uses
 * the sensor's and the egress object's maps (the loader reuses them), so it enforces the same
 * entries; the tracepoint and cgroup paths stay loaded beside it.
 *
 * - file_open: a credential opened by a process of a cgroup it is denied to (deny_credential) fails
 *   with EACCES before the file is usable: nothing is read, nobody is killed, and every way of
 *   opening (io_uring included) passes here.
 * - file_receive: a denied credential's fd arriving by SCM_RIGHTS or pidfd_getfd is refused; any
 *   other credential fd that arrives is reported (and taints the receiver), since no open of it
 *   happened in that process.
 * - file_permission: reads and writes of a denied credential through an fd the process already
 *   held (opened before the deny, or by a thread sharing its fd table) are refused. Counted only:
 *   a read loop would otherwise flood the ring buffer.
 * - socket_create / socket_connect / socket_sendmsg: egress blocks, as a second layer under the
 *   cgroup hooks, also for what those do not see (raw and ICMP sends with a destination, AF_PACKET).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "credentials.bpf.h"
#include "egress_blocks.bpf.h"
#include "maps.bpf.h"
#include "nhiguard_abi.h"
#include "process.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader: the agent itself is never refused. */
const volatile __u32 ignore_tgid = 0;

#define EPERM 1
#define EACCES 13
#define AF_PACKET 17
#define SOCK_RAW 3
#define SOCK_TYPE_MASK 0xf

/* The credential this file is (its key in *key), or NULL. */
static __always_inline struct nhg_credential_value *lsm__credential(struct file *file,
								    struct nhg_inode_key *key)
{
	struct inode *inode = file->f_inode;

	key->dev = inode->i_sb->s_dev;
	key->ino = inode->i_ino;
	if (!credentials__may_be(key))
		return NULL;
	return bpf_map_lookup_elem(&nhg_credentials, key);
}

/* One credential file record, as the open path writes it, for a file this hook sees: no fd and no
 * path (the hook knows neither the syscall nor the path the process passed). */
static __always_inline void lsm__report(struct file *file, const struct nhg_inode_key *key,
					__u32 credential_id, __u16 syscall, __u16 flags)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct dentry *dentry = file->f_path.dentry;
	struct nhg_file_event *event;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_FILE);
		return;
	}
	process__header(&event->hdr, NHG_EVENT_CREDENTIAL_OPEN, sizeof(*event));
	process__describe(&event->proc, task);
	event->file = *key;
	event->credential_id = credential_id;
	event->open_flags = file->f_flags;
	event->f_mode = file->f_mode;
	event->fd = -1;
	event->syscall = syscall;
	event->flags = flags | NHG_FILE_PATH_MISSING;
	event->coalesced_opens = 0;
	bpf_probe_read_kernel_str(event->name, sizeof(event->name), dentry->d_name.name);
	bpf_probe_read_kernel_str(event->parent, sizeof(event->parent), dentry->d_parent->d_name.name);
	event->requested_path[0] = '\0';
	process__cmdline(event, task);
	bpf_ringbuf_submit(event, maps__submit_flags());
}

static __always_inline bool lsm__is_agent(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32) == ignore_tgid;
}

/* A deny matched here: refused with EACCES, counted, and (report) written as a record. */
static __always_inline int lsm__refuse(struct file *file, const struct nhg_inode_key *key,
				       __u32 credential_id, __u16 syscall, bool report)
{
	maps__count(NHG_CTR_CREDENTIAL_DENIED);
	maps__count(NHG_CTR_LSM_REFUSED);
	if (report)
		lsm__report(file, key, credential_id, syscall, NHG_FILE_DENIED | NHG_FILE_REFUSED);
	return -EACCES;
}

SEC("lsm/file_open")
int BPF_PROG(lsm_file_open, struct file *file, int ret)
{
	struct nhg_credential_value *credential;
	struct nhg_inode_key key;

	/* Detection stays with the open tracepoints (they know the fd and the path): this hook only
	 * refuses, so without a deny in force it costs one array read per open. */
	if (ret || !maps__enforcing(NHG_ENF_CREDENTIAL_DENIES) || lsm__is_agent())
		return ret;
	if (!(file->f_mode & (FMODE_READ | FMODE_WRITE)))
		return 0;
	credential = lsm__credential(file, &key);
	if (!credential || !credentials__denied(credential->credential_id))
		return 0;
	return lsm__refuse(file, &key, credential->credential_id, NHG_SYS_LSM_FILE_OPEN, true);
}

SEC("lsm/file_receive")
int BPF_PROG(lsm_file_receive, struct file *file, int ret)
{
	struct task_struct *task;
	struct nhg_credential_value *credential;
	struct nhg_inode_key key;

	if (ret || lsm__is_agent())
		return ret;
	/* An O_PATH fd cannot read; its re-open through /proc is an open of its own. */
	if (!(file->f_mode & (FMODE_READ | FMODE_WRITE)))
		return 0;
	credential = lsm__credential(file, &key);
	if (!credential)
		return 0;
	if (credentials__denied(credential->credential_id))
		return lsm__refuse(file, &key, credential->credential_id, NHG_SYS_FILE_RECEIVE, true);
	task = bpf_get_current_task_btf();
	if (file->f_mode & FMODE_READ)
		credentials__taint(task, credential->credential_id, &key);
	lsm__report(file, &key, credential->credential_id, NHG_SYS_FILE_RECEIVE, 0);
	return 0;
}

SEC("lsm/file_permission")
int BPF_PROG(lsm_file_permission, struct file *file, int mask, int ret)
{
	struct nhg_credential_value *credential;
	struct nhg_inode_key key;

	/* Every read and write passes here: without a deny in force, one array read. */
	if (ret || !maps__enforcing(NHG_ENF_CREDENTIAL_DENIES) || lsm__is_agent())
		return ret;
	credential = lsm__credential(file, &key);
	if (!credential || !credentials__denied(credential->credential_id))
		return 0;
	return lsm__refuse(file, &key, credential->credential_id, 0, false);
}

/* AF_PACKET and raw sockets reach destinations no connect or sendmsg address names: a blocked
 * cgroup (any block) cannot create them. */
SEC("lsm/socket_create")
int BPF_PROG(lsm_socket_create, int family, int type, int protocol, int kern, int ret)
{
	if (ret || kern)
		return ret;
	if (family != AF_PACKET && (type & SOCK_TYPE_MASK) != SOCK_RAW)
		return 0;
	if (!egress__current_block((__u32)(bpf_get_current_pid_tgid() >> 32), NULL))
		return 0;
	maps__count(NHG_CTR_EGRESS_DENIED);
	maps__count(NHG_CTR_LSM_REFUSED);
	return -EPERM;
}

/* The IPv4 or IPv6 address at addr (kernel memory), or false for another family or a short one. */
static __always_inline bool lsm__read_sockaddr(const void *addr, int len, struct egress_dest *dest,
					       __u16 *family)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;

	if (!addr || len < (int)sizeof(sin) || bpf_probe_read_kernel(&sin, sizeof(sin), addr))
		return false;
	*family = sin.sin_family;
	if (sin.sin_family == AF_INET) {
		egress__map_v4(dest, sin.sin_addr.s_addr);
		dest->port_be = sin.sin_port;
		return true;
	}
	if (sin.sin_family != AF_INET6 || len < (int)sizeof(sin6) ||
	    bpf_probe_read_kernel(&sin6, sizeof(sin6), addr))
		return false;
	__builtin_memcpy(dest->addr, sin6.sin6_addr.in6_u.u6_addr8, 16);
	dest->port_be = sin6.sin6_port;
	return true;
}

SEC("lsm/socket_connect")
int BPF_PROG(lsm_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct egress_dest dest;
	__u16 family = 0;
	struct sock *sk;

	if (ret || !maps__enforcing(NHG_ENF_EGRESS_BLOCKS))
		return ret;
	/* The kernel's BTF marks socket->sk as possibly NULL (6.12's verifier insists on the check). */
	sk = sock->sk;
	if (!sk || !lsm__read_sockaddr(address, addrlen, &dest, &family))
		return 0;
	/* Only refusals are reported here: an allowed connect goes on to the cgroup hook, which reports it. */
	if (!egress__decide(&dest, family, sk->sk_protocol,
			    family == AF_INET6 ? NHG_HOOK_CONNECT6 : NHG_HOOK_CONNECT4, false, false))
		return 0;
	maps__count(NHG_CTR_LSM_REFUSED);
	return -EPERM;
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(lsm_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct sock *sk;
	struct egress_dest dest;
	__u16 named_family = 0;
	__u16 family;

	if (ret || !maps__enforcing(NHG_ENF_EGRESS_BLOCKS))
		return ret;
	sk = sock->sk;
	if (!sk)
		return 0;
	family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	/* A destination named in the call (an unconnected UDP, raw or ICMP send), else the socket's own. */
	if (lsm__read_sockaddr(msg->msg_name, msg->msg_namelen, &dest, &named_family)) {
		family = named_family;
	} else {
		if (family == AF_INET6) {
			__builtin_memcpy(dest.addr, sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8, 16);
		} else {
			family = AF_INET;
			egress__map_v4(&dest, sk->__sk_common.skc_daddr);
		}
		dest.port_be = sk->__sk_common.skc_dport;
	}
	if (!egress__decide(&dest, family, sk->sk_protocol,
			    family == AF_INET6 ? NHG_HOOK_SENDMSG6 : NHG_HOOK_SENDMSG4, false, false))
		return 0;
	maps__count(NHG_CTR_LSM_REFUSED);
	return -EPERM;
}
