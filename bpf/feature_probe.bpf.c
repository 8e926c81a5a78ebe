// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Feature probes: one tiny program per optional kernel facility. The agent loads (and attaches)
 * each on its own, with every other program's autoload off, and records which the kernel accepts.
 * The result chooses which sensor paths load and is printed by `nhiguard-agent --check`.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tracepoint/syscalls/sys_exit_openat")
int probe_syscall_tracepoint(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(probe_tp_btf, struct task_struct *task)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int probe_task_pt_regs(void *ctx)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	return regs ? 0 : 1;
}

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* What the sensor's *_direct open programs do: a file pointer read from the fd table, cast to a
 * BTF pointer, its fields loaded directly. */
SEC("tracepoint/syscalls/sys_exit_openat")
int probe_rdonly_cast(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct file **fds = task->files->fdt->fd;
	struct file *raw = NULL;
	struct file *file;

	if (bpf_probe_read_kernel(&raw, sizeof(raw), fds) || !raw)
		return 0;
	file = bpf_rdonly_cast(raw, bpf_core_type_id_kernel(struct file));
	return file->f_inode->i_sb->s_dev == 0 && file->f_path.dentry->d_name.len == 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} probe_ringbuf SEC(".maps");

SEC("tracepoint/syscalls/sys_exit_openat")
int probe_ringbuf_output(void *ctx)
{
	__u64 *slot = bpf_ringbuf_reserve(&probe_ringbuf, sizeof(__u64), 0);

	if (slot)
		bpf_ringbuf_discard(slot, 0);
	return 0;
}

SEC("cgroup/connect4")
int probe_cgroup_connect4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("fentry/security_file_open")
int BPF_PROG(probe_fentry, struct file *file)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(probe_lsm_file_open, struct file *file)
{
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(probe_uprobe)
{
	return 0;
}
