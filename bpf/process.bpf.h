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

/* The current process's argv area (mm->arg_start .. arg_end), NUL-separated, up to NHG_CMDLINE_LEN. */
static __always_inline void process__cmdline(struct nhg_file_event *event, struct task_struct *task)
{
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	unsigned long len;

	event->cmdline_len = 0;
	if (!start || end <= start) {
		event->flags |= NHG_FILE_CMDLINE_MISSING;
		return;
	}
	len = end - start;
	if (len > NHG_CMDLINE_LEN) {
		len = NHG_CMDLINE_LEN;
		event->flags |= NHG_FILE_CMDLINE_TRUNCATED;
	}
	/* Bounded for the verifier; the read cannot exceed the buffer. */
	len &= (NHG_CMDLINE_LEN * 2 - 1);
	if (len > NHG_CMDLINE_LEN)
		return;
	if (bpf_probe_read_user(event->cmdline, len, (const void *)start)) {
		event->flags |= NHG_FILE_CMDLINE_MISSING;
		return;
	}
	event->cmdline_len = (__u16)len;
}

#endif /* NHIGUARD_PROCESS_BPF_H */
