/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The read path of the sensor (included by sensor.bpf.c after its open path, whose helpers it
 * uses): credential files reached without an open syscall of the reader.
 *
 * - A read-family syscall (read, pread64, readv, preadv, preadv2, mmap, sendfile, splice,
 *   copy_file_range) on a credential fd by a process that did not open it (inherited across
 *   fork/exec, received by SCM_RIGHTS or pidfd_getfd, opened before the agent started) is one
 *   file event per (process, credential), at the syscall's entry, before it reads. nhg_known_readers
 *   holds the pairs that need no event: the opener's (the open path records it) and each reported
 *   reader's.
 * - A deny covers those reads too: the reader is killed at the syscall's entry when a deny of the
 *   credential holds for its cgroup, or when it shares the fd table (clone(CLONE_FILES)) of a
 *   process a deny killed, which nhg_doomed_files remembers for as long as the deny holds.
 * - io_uring: an IORING_OP_OPENAT/OPENAT2 is matched at its completion like an open syscall (and
 *   killed there under a deny), an IORING_OP_READ/READV/READ_FIXED of a credential like a read
 *   syscall (after the read: the completion is the first place the file is known), and a process
 *   under any credential deny is killed at io_uring_setup/io_uring_enter, before a ring can open or
 *   read anything.
 *
 * Every read in the system passes the read programs, so the common case (not a credential) is the
 * fd slot, the inode and the open path's inlined prefilter array, nothing more.
 */
#ifndef NHIGUARD_READPATH_BPF_H
#define NHIGUARD_READPATH_BPF_H

/* Key of nhg_known_readers: this process has read (or opened) this credential already. */
struct readpath__reader_key {
	__u32 tgid;
	__u32 pad;
	struct nhg_inode_key file;
};

/* LRU: an evicted pair costs one repeated event, never a missed one. The value is the process's
 * start time, so a reused tgid is a new reader. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct readpath__reader_key);
	__type(value, __u64);
} nhg_known_readers SEC(".maps");

/* files_struct address of a process a deny killed -> the deny (credential, cgroup) that killed it.
 * Pinned: it is enforcement state, kept while no agent runs. An entry holds while that deny entry
 * exists and is in force, and goes with the table's last user (readpath_task_exit). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct nhg_deny_key);
} nhg_doomed_files SEC(".maps");

/* Layout of the syscalls:sys_enter_* tracepoint records (events/syscalls/sys_enter_read/format). */
struct readpath__sys_enter_args {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	unsigned long args[6];
};

static __always_inline __u64 readpath__files_address(struct task_struct *task)
{
	return (__u64)(unsigned long)task->files;
}

static __always_inline __u64 readpath__start_ns(struct task_struct *task)
{
	return BPF_CORE_READ(task, group_leader, start_boottime);
}

/* The open path calls this for a credential open for reading: the opener's reads are no events. */
static __always_inline void readpath__opened(struct task_struct *task, const struct nhg_inode_key *key)
{
	struct readpath__reader_key reader = {.tgid = (__u32)task->tgid, .file = *key};
	__u64 start_ns = readpath__start_ns(task);

	bpf_map_update_elem(&nhg_known_readers, &reader, &start_ns, BPF_ANY);
}

/* The open path calls this when a deny kills an opener: every task that shares its fd table (a
 * clone(CLONE_FILES) sibling in any cgroup) is killed on its next read of the credential. */
static __always_inline void readpath__doom_fd_table(struct task_struct *task, const struct nhg_deny_key *deny)
{
	__u64 files = readpath__files_address(task);

	if (files && bpf_map_update_elem(&nhg_doomed_files, &files, deny, BPF_ANY) != 0)
		maps__count(NHG_CTR_DOOMED_FILES_FULL);
}

/* Does a deny still in force doom this task's fd table for this credential? */
static __always_inline bool readpath__fd_table_doomed(struct task_struct *task, __u32 credential_id)
{
	__u64 files = readpath__files_address(task);
	struct nhg_deny_key *doomed = bpf_map_lookup_elem(&nhg_doomed_files, &files);
	struct nhg_deny_value *deny;

	if (!doomed || doomed->credential_id != credential_id)
		return false;
	deny = bpf_map_lookup_elem(&nhg_credential_denies, doomed);
	if (deny && maps__in_force(deny->expires_at_ns))
		return true;
	/* The deny was rolled back or expired: the table is no longer doomed. */
	bpf_map_delete_elem(&nhg_doomed_files, &files);
	return false;
}

/* (device, inode) of an open file, nothing else: the read path's hot case needs no more. */
static __always_inline void readpath__file_key(struct file *file, bool direct, struct nhg_inode_key *key)
{
	if (direct) {
		struct inode *inode = file->f_inode;

		key->dev = inode->i_sb->s_dev;
		key->ino = inode->i_ino;
	} else {
		struct inode *inode = BPF_CORE_READ(file, f_inode);

		key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
		key->ino = BPF_CORE_READ(inode, i_ino);
	}
}

/* The record of a read-path event: everything from the task and the file, no syscall path. */
static __always_inline void readpath__emit(struct task_struct *task, struct file *file,
					   const struct nhg_inode_key *key, __u32 credential_id, long fd,
					   __u16 syscall, __u16 flags, bool with_cmdline)
{
	struct nhg_file_event *event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);

	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_FILE);
		return;
	}
	process__header(&event->hdr, NHG_EVENT_CREDENTIAL_OPEN, sizeof(*event));
	process__describe(&event->proc, task);
	event->file = *key;
	event->credential_id = credential_id;
	event->open_flags = BPF_CORE_READ(file, f_flags);
	event->f_mode = BPF_CORE_READ(file, f_mode);
	event->fd = (__s32)fd;
	event->syscall = syscall;
	event->flags = flags | NHG_FILE_PATH_MISSING;
	event->coalesced_opens = 0;
	bpf_probe_read_kernel_str(event->name, sizeof(event->name), BPF_CORE_READ(dentry, d_name.name));
	bpf_probe_read_kernel_str(event->parent, sizeof(event->parent),
				  BPF_CORE_READ(dentry, d_parent, d_name.name));
	event->requested_path[0] = '\0';
	if (with_cmdline) {
		process__cmdline(event, task);
	} else {
		event->cmdline_len = 0;
		event->flags |= NHG_FILE_CMDLINE_OMITTED;
	}
	bpf_ringbuf_submit(event, maps__submit_flags());
}

/* A read-family syscall is about to read from fd (the slow path: its inode passed the prefilter). */
static __noinline int readpath__credential_read(struct task_struct *task, struct file *file,
						const struct nhg_inode_key *key, long fd, __u16 syscall)
{
	struct nhg_credential_value *credential = bpf_map_lookup_elem(&nhg_credentials, key);
	struct readpath__reader_key reader = {.tgid = (__u32)task->tgid, .file = *key};
	struct nhg_deny_key deny = {};
	__u64 start_ns = readpath__start_ns(task);
	__u64 *known;
	__u16 flags = 0;

	if (!credential || !(BPF_CORE_READ(file, f_mode) & FMODE_READ))
		return 0;
	/* A deny sees every read, the opener's own included: the fd may predate the deny. */
	if (maps__enforcing(NHG_ENF_CREDENTIAL_DENIES)) {
		if (credentials__deny_match(credential->credential_id, &deny)) {
			flags = NHG_FILE_DENIED;
		} else if (readpath__fd_table_doomed(task, credential->credential_id)) {
			flags = NHG_FILE_DENIED | NHG_FILE_SHARED_FD_TABLE;
		}
		/* Where BPF LSM runs, file_permission refuses this read with EACCES (and counts it). */
		if (flags && maps__enforcing(NHG_ENF_LSM_ACTIVE))
			return 0;
		if (flags) {
			bpf_send_signal(9 /* SIGKILL */);
			maps__count(NHG_CTR_CREDENTIAL_DENIED);
			if (!(flags & NHG_FILE_SHARED_FD_TABLE))
				readpath__doom_fd_table(task, &deny);
			readpath__emit(task, file, key, credential->credential_id, fd, syscall, flags, true);
			return 0;
		}
	}
	known = bpf_map_lookup_elem(&nhg_known_readers, &reader);
	if (known && *known == start_ns)
		return 0;
	bpf_map_update_elem(&nhg_known_readers, &reader, &start_ns, BPF_ANY);
	credentials__taint(task, credential->credential_id, key);
	readpath__emit(task, file, key, credential->credential_id, fd, syscall, 0, true);
	return 0;
}

static __always_inline int readpath__on_read(long fd, __u16 syscall, bool direct)
{
	struct task_struct *task;
	struct nhg_inode_key key;
	struct file *file;

	if (fd < 0)
		return 0;
	task = bpf_get_current_task_btf();
	if ((__u32)task->tgid == ignore_tgid)
		return 0;
	file = sensor__fd_file(task, fd, direct);
	if (!file)
		return 0; /* not an open fd: the syscall fails with EBADF */
	readpath__file_key(file, direct, &key);
	if (!credentials__may_be(&key))
		return 0;
	return readpath__credential_read(task, file, &key, fd, syscall);
}

/* One program per read-family syscall and variant, as for the opens (SENSOR_OPEN_EXIT): the agent
 * loads one of each pair. fd_arg: which syscall argument is the descriptor read from. */
#define READPATH_SYS_ENTER(syscall_name, syscall_id, fd_arg)                             \
	SEC("tracepoint/syscalls/sys_enter_" #syscall_name)                              \
	int readpath_enter_##syscall_name(struct readpath__sys_enter_args *ctx)          \
	{                                                                                \
		return readpath__on_read((int)ctx->args[fd_arg], syscall_id, false);     \
	}                                                                                \
	SEC("tracepoint/syscalls/sys_enter_" #syscall_name)                              \
	int readpath_enter_##syscall_name##_direct(struct readpath__sys_enter_args *ctx) \
	{                                                                                \
		return readpath__on_read((int)ctx->args[fd_arg], syscall_id, true);      \
	}

READPATH_SYS_ENTER(read, NHG_SYS_READ, 0)
READPATH_SYS_ENTER(pread64, NHG_SYS_PREAD64, 0)
READPATH_SYS_ENTER(readv, NHG_SYS_READV, 0)
READPATH_SYS_ENTER(preadv, NHG_SYS_PREADV, 0)
READPATH_SYS_ENTER(preadv2, NHG_SYS_PREADV, 0)
READPATH_SYS_ENTER(sendfile64, NHG_SYS_SENDFILE, 1 /* in_fd */)
READPATH_SYS_ENTER(splice, NHG_SYS_SPLICE, 0 /* fd_in */)
READPATH_SYS_ENTER(copy_file_range, NHG_SYS_COPY_FILE_RANGE, 0 /* fd_in */)

/* mmap(addr, len, prot, flags, fd, off): an anonymous mapping ignores fd. */
#define READPATH_MAP_ANONYMOUS 0x20

static __always_inline int readpath__on_mmap(struct readpath__sys_enter_args *ctx, bool direct)
{
	if (ctx->args[3] & READPATH_MAP_ANONYMOUS)
		return 0;
	return readpath__on_read((int)ctx->args[4], NHG_SYS_MMAP, direct);
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int readpath_enter_mmap(struct readpath__sys_enter_args *ctx)
{
	return readpath__on_mmap(ctx, false);
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int readpath_enter_mmap_direct(struct readpath__sys_enter_args *ctx)
{
	return readpath__on_mmap(ctx, true);
}

/* The last task using a doomed fd table is leaving: the address may be reused by another table. */
SEC("tracepoint/sched/sched_process_exit")
int readpath_task_exit(void *ctx)
{
	struct task_struct *task;
	struct files_struct *files;
	__u64 address;

	if (!maps__enforcing(NHG_ENF_CREDENTIAL_DENIES))
		return 0;
	task = bpf_get_current_task_btf();
	files = task->files;
	if (!files || files->count.counter != 1)
		return 0;
	address = (__u64)(unsigned long)files;
	bpf_map_delete_elem(&nhg_doomed_files, &address);
	return 0;
}

/* ---- io_uring ---- */

/* UAPI opcodes (include/uapi/linux/io_uring.h), stable. */
#define READPATH_IORING_OP_READV 1
#define READPATH_IORING_OP_READ_FIXED 4
#define READPATH_IORING_OP_OPENAT 18
#define READPATH_IORING_OP_READ 22
#define READPATH_IORING_OP_OPENAT2 28

/* Layout of io_uring:io_uring_complete (events/io_uring/io_uring_complete/format; the same on 6.1
 * and later, whatever the tracepoint's C prototype). */
struct readpath__io_uring_complete_args {
	__u64 common;
	void *ctx;
	void *req;
	__u64 user_data;
	__s32 res;
	__u32 cflags;
	__u64 extra1;
	__u64 extra2;
};

/* An open into a fixed-file slot (IORING_FILE_INDEX_ALLOC or sqe->file_index) returns no fd: its
 * res is 0 or the slot, and the fd table does not hold the file. */
static __always_inline bool readpath__io_uring_fixed_open(struct io_kiocb *req)
{
	struct io_open *open = (struct io_open *)req;

	if (!bpf_core_type_exists(struct io_open) || !bpf_core_field_exists(open->file_slot))
		return false;
	return BPF_CORE_READ(open, file_slot) != 0;
}

/* A read through a ring names its file by fd or by fixed slot, and neither passes the read
 * syscalls: at its completion the request still holds the file. This is after the read (a deny
 * still kills the process before it can use the bytes outside the ring's own buffers); io_uring_setup
 * and io_uring_enter are where a deny stops a ring before it reads (readpath__on_io_uring_syscall). */
static __always_inline int readpath__on_io_uring_read(struct io_kiocb *req, __s32 res)
{
	struct file *file = BPF_CORE_READ(req, file);
	struct task_struct *task;
	struct nhg_inode_key key;

	if (!file || res < 0)
		return 0;
	task = bpf_get_current_task_btf();
	if ((__u32)task->tgid == ignore_tgid)
		return 0;
	readpath__file_key(file, false, &key);
	if (!credentials__may_be(&key))
		return 0;
	return readpath__credential_read(task, file, &key, -1, NHG_SYS_IO_URING_READ);
}

/* The open path in a call of its own: its stack and readpath__credential_read's are then two call
 * chains of the completion program, not one frame over the verifier's 512 bytes. One function per
 * variant, so `direct` stays a constant in each (the probe-read one must not reach bpf_rdonly_cast). */
static __noinline int readpath__io_uring_open(long res, __u16 syscall)
{
	return sensor__on_open_exit(res, syscall, false);
}

static __noinline int readpath__io_uring_open_direct(long res, __u16 syscall)
{
	return sensor__on_open_exit(res, syscall, true);
}

static __always_inline int readpath__on_io_uring_complete(struct readpath__io_uring_complete_args *ctx,
							  bool direct)
{
	struct io_kiocb *req = ctx->req;
	__u8 opcode = BPF_CORE_READ(req, opcode);
	__u16 syscall;

	if (opcode == READPATH_IORING_OP_READ || opcode == READPATH_IORING_OP_READV ||
	    opcode == READPATH_IORING_OP_READ_FIXED)
		return readpath__on_io_uring_read(req, ctx->res);
	if (opcode == READPATH_IORING_OP_OPENAT)
		syscall = NHG_SYS_IO_URING_OPENAT;
	else if (opcode == READPATH_IORING_OP_OPENAT2)
		syscall = NHG_SYS_IO_URING_OPENAT2;
	else
		return 0;
	if (ctx->res < 0 || readpath__io_uring_fixed_open(req))
		return 0;
	/* The completion runs in the submitter or one of its io_uring threads, which share its fd
	 * table: the fd is found and the reader is the process, as for an open syscall. */
	return direct ? readpath__io_uring_open_direct(ctx->res, syscall)
		      : readpath__io_uring_open(ctx->res, syscall);
}

SEC("tracepoint/io_uring/io_uring_complete")
int readpath_io_uring_complete(struct readpath__io_uring_complete_args *ctx)
{
	return readpath__on_io_uring_complete(ctx, false);
}

SEC("tracepoint/io_uring/io_uring_complete")
int readpath_io_uring_complete_direct(struct readpath__io_uring_complete_args *ctx)
{
	return readpath__on_io_uring_complete(ctx, true);
}

/* What the walk over nhg_credential_denies looks for: any deny in force for the current cgroup or
 * one of its ancestors. */
struct readpath__deny_search {
	__u64 ancestors[NHG_MAX_CGROUP_DEPTH];
	__u32 depth;
	__u32 credential_id; /* found: the denied credential, else 0 */
};

static long readpath__deny_covers(struct bpf_map *map, struct nhg_deny_key *key, struct nhg_deny_value *value,
				  struct readpath__deny_search *search)
{
	if (!maps__in_force(value->expires_at_ns))
		return 0;
	for (int level = 0; level < NHG_MAX_CGROUP_DEPTH; level++) {
		if (level >= search->depth)
			break;
		if (search->ancestors[level] == key->cgroup_id) {
			search->credential_id = key->credential_id;
			return 1; /* stop */
		}
	}
	return 0;
}

/* A ring opens and reads without a syscall per operation (and with SQPOLL without any), past the
 * read programs above: a process under a credential deny may not have one. The deny is per
 * credential, the ring is not, so any deny covering the caller's cgroup kills it. */
static __always_inline int readpath__on_io_uring_syscall(void)
{
	struct readpath__deny_search search = {};
	struct task_struct *task;
	struct nhg_file_event *event;

	/* Where BPF LSM runs, a ring's opens and reads of a denied credential are refused in
	 * file_open / file_permission: the ring may stay. */
	if (!maps__enforcing(NHG_ENF_CREDENTIAL_DENIES) || maps__enforcing(NHG_ENF_LSM_ACTIVE))
		return 0;
	task = bpf_get_current_task_btf();
	if ((__u32)task->tgid == ignore_tgid)
		return 0;
	for (int level = 1; level <= NHG_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);

		if (!id)
			break;
		search.ancestors[level - 1] = id;
		search.depth = level;
	}
	bpf_for_each_map_elem(&nhg_credential_denies, readpath__deny_covers, &search, 0);
	if (!search.credential_id)
		return 0;
	bpf_send_signal(9 /* SIGKILL */);
	maps__count(NHG_CTR_CREDENTIAL_DENIED);
	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_FILE);
		return 0;
	}
	__builtin_memset(event, 0, sizeof(*event));
	process__header(&event->hdr, NHG_EVENT_CREDENTIAL_OPEN, sizeof(*event));
	process__describe(&event->proc, task);
	event->credential_id = search.credential_id;
	event->fd = -1;
	event->syscall = NHG_SYS_IO_URING_RING;
	event->flags = NHG_FILE_DENIED | NHG_FILE_PATH_MISSING;
	process__cmdline(event, task);
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_io_uring_setup")
int readpath_io_uring_setup(void *ctx)
{
	return readpath__on_io_uring_syscall();
}

SEC("tracepoint/syscalls/sys_enter_io_uring_enter")
int readpath_io_uring_enter(void *ctx)
{
	return readpath__on_io_uring_syscall();
}

#endif /* NHIGUARD_READPATH_BPF_H */
