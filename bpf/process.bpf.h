/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* BPF-only helpers: describe a task in the ABI's struct nhg_process. */
#ifndef NHIGUARD_PROCESS_BPF_H
#define NHIGUARD_PROCESS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "nhiguard_abi.h"

/* The cgroup v2 id of a task: the kernfs node id of its default-hierarchy cgroup, the same number
 * bpf_get_current_cgroup_id() returns and the inode number of the cgroup directory. Reading it
 * from the task (rather than the helper) also works for a task that is not current. */
static __always_inline __u64 process__cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline void process__describe(struct nhg_process *out, struct task_struct *task)
{
	out->tgid = BPF_CORE_READ(task, tgid);
	out->tid = BPF_CORE_READ(task, pid);
	out->ppid = BPF_CORE_READ(task, real_parent, tgid);
	out->uid = BPF_CORE_READ(task, real_cred, uid.val);
	out->euid = BPF_CORE_READ(task, real_cred, euid.val);
	out->gid = BPF_CORE_READ(task, real_cred, gid.val);
	/* Audit session ids exist only with CONFIG_AUDITSYSCALL. */
	if (bpf_core_field_exists(task->sessionid))
		out->sessionid = BPF_CORE_READ(task, sessionid);
	else
		out->sessionid = 0xffffffff;
	out->pad0 = 0;
	out->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	out->cgroup_id = process__cgroup_id(task);
	BPF_CORE_READ_STR_INTO(&out->comm, task, comm);
}

static __always_inline void process__header(struct nhg_event_header *hdr, __u16 type, __u16 size)
{
	hdr->type = type;
	hdr->size = size;
	hdr->version = NHG_ABI_VERSION;
	hdr->cpu = (__u16)bpf_get_smp_processor_id();
	hdr->ts_ns = bpf_ktime_get_boot_ns();
}

#endif /* NHIGUARD_PROCESS_BPF_H */
