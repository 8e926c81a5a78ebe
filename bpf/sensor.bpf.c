// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nhiguard sensor: credential opens and process lifecycle.
 *
 * Credential opens are matched on syscall exit by the opened file's (device, inode), read from the
 * task's fd table, so symlinks, hard links, bind mounts, relative paths, /proc/self/fd re-opens and
 * container views of a path all resolve to the same key. Files that do not exist yet are caught by
 * a (parent name, file name) table; the agent then resolves them and adds their inodes.
 *
 * Every open in the system passes through here, so the common case (not a credential, not a
 * candidate name) is kept to plain loads and two inlined array reads, with no helper call on
 * kernels with bpf_rdonly_cast: see the prefilters in nhiguard_abi.h, sensor__fd_file,
 * sensor__read_opened and sensor__name_head below.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "nhiguard_abi.h"
#include "maps.bpf.h"
#include "credentials.bpf.h"
#include "process.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader between open and load. */
const volatile __u32 ignore_tgid = 0;	      /* the agent's own opens are not events */
const volatile bool read_syscall_args = true; /* false where bpf_task_pt_regs is missing */

/* Prefilter of nhg_candidate_prefixes (nhiguard_abi.h); nhg_credentials, its filter and the deny
 * table are in credentials.bpf.h. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NHG_CANDIDATE_FILTER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} nhg_candidate_filter SEC(".maps");

/* Kernel 6.2+. Weak: on older kernels the programs that call it are not loaded (the agent picks
 * the probe-read variants after its feature probe), and the object still loads. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

struct nhg_name_only_key {
	char name[NHG_NAME_LEN];
};

/* Cheap first filter of the name table: (length, first 8 bytes) of every candidate name. Nearly
 * every open misses here after one fixed-size read, before any string is copied. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nhg_name_prefix_key);
	__type(value, __u32);
} nhg_candidate_prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nhg_name_only_key);
	__type(value, __u32);
} nhg_candidate_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct nhg_name_key);
	__type(value, __u32);
} nhg_candidate_pairs SEC(".maps");

/* Layout of the syscalls:sys_exit_* tracepoint records (see events/syscalls/sys_exit_openat/format). */
struct nhg_sys_exit_args {
	__u64 common;
	__s32 syscall_nr;
	__u32 pad;
	long ret;
};

/* The struct file an fd refers to in the current task, or NULL. direct: a BTF pointer (see
 * sensor__read_opened), read without a helper call where the kernel allows it. */
static __always_inline struct file *sensor__fd_file(struct task_struct *task, long fd, bool direct)
{
	/* task is a BTF pointer: these are direct (fault-safe) loads, not helper calls. */
	struct fdtable *fdt = task->files->fdt;
	struct file *file = NULL;

	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	if (direct && bpf_core_field_offset(struct kiocb, ki_filp) == 0) {
		/* BTF cannot type one slot of the fd array (struct file **), but a struct kiocb
		 * starts with a struct file pointer (ki_filp at offset 0, checked above against the
		 * running kernel), so the slot cast to a kiocb yields the pointer by a fault-safe,
		 * typed load instead of a bpf_probe_read_kernel call. Nothing else of the kiocb is
		 * read. */
		unsigned long slot = (unsigned long)fdt->fd + fd * sizeof(struct file *);
		struct kiocb *as_kiocb = bpf_rdonly_cast((void *)slot, bpf_core_type_id_kernel(struct kiocb));

		return as_kiocb->ki_filp;
	}
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]))
		return NULL;
	if (direct && file)
		file = bpf_rdonly_cast(file, bpf_core_type_id_kernel(struct file));
	return file;
}

/* What the open path reads from the opened file. */
struct sensor__opened {
	struct nhg_inode_key key;
	struct dentry *dentry;
	const unsigned char *name; /* dentry->d_name.name: a kernel address (see sensor__name_head) */
	__u32 name_len;
	__u32 f_mode;
};

/* Reads the opened file's mode, (device, inode) and name. direct: file is a BTF pointer
 * (bpf_rdonly_cast), so each field is a plain load the JIT makes fault-safe; otherwise each field
 * is a bpf_probe_read_kernel call, which costs each open ~0.3 us more. The two variants are
 * separate programs; `direct` is a constant in each. */
static __always_inline void sensor__read_opened(struct file *file, bool direct, struct sensor__opened *out)
{
	if (direct) {
		struct inode *inode = file->f_inode;

		out->f_mode = file->f_mode;
		out->key.dev = inode->i_sb->s_dev;
		out->key.ino = inode->i_ino;
		out->dentry = file->f_path.dentry;
		out->name_len = out->dentry->d_name.len;
		out->name = out->dentry->d_name.name;
	} else {
		struct inode *inode = BPF_CORE_READ(file, f_inode);
		struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
		struct qstr d_name = {};

		out->f_mode = BPF_CORE_READ(file, f_mode);
		out->key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
		out->key.ino = BPF_CORE_READ(inode, i_ino);
		out->dentry = dentry;
		bpf_core_read(&d_name, sizeof(d_name), &dentry->d_name);
		out->name_len = d_name.len;
		out->name = d_name.name;
	}
}

/* The first 8 bytes of the opened file's name (bytes past its end are not cleared). A short name
 * lives inside the dentry (d_shortname, kernel 6.14+): then a plain load reads it; otherwise a
 * helper call does. */
static __always_inline __u64 sensor__name_head(const struct sensor__opened *opened, bool direct)
{
	__u64 head = 0;

	if (direct && bpf_core_field_exists(struct dentry, d_shortname)) {
		struct dentry *dentry = opened->dentry;
		unsigned long inline_name =
			(unsigned long)dentry + bpf_core_field_offset(struct dentry, d_shortname);

		if ((unsigned long)opened->name == inline_name) {
			head = dentry->d_shortname.words[0];
			/* Keeps the compiler from merging this load and the helper's stack slot into one
			 * load through two pointer types, which the verifier refuses. */
			barrier_var(head);
			return head;
		}
	}
	bpf_probe_read_kernel(&head, sizeof(head), opened->name);
	return head;
}

/* Does the opened file's name (and maybe its parent's) match the candidate table? */
static __always_inline bool sensor__candidate(const struct sensor__opened *opened, bool direct)
{
	struct nhg_name_prefix_key prefix = {};
	struct nhg_name_only_key name = {};
	struct nhg_name_key pair = {};
	struct dentry *dentry = opened->dentry; /* a local: CO-RE reads start from kernel types only */
	__u32 len = opened->name_len;
	__u32 slot;
	__u32 *flags;
	__u32 *present;

	if (len == 0 || len >= NHG_NAME_LEN)
		return false;
	prefix.len = len;
	prefix.head = sensor__name_head(opened, direct);
	if (len < 8)
		prefix.head &= (1ull << (8 * len)) - 1; /* little-endian: keep the name's bytes */
	slot = nhg_candidate_filter_slot(len, (__u8)prefix.head);
	present = bpf_map_lookup_elem(&nhg_candidate_filter, &slot);
	if (!present || !*present)
		return false;
	if (!bpf_map_lookup_elem(&nhg_candidate_prefixes, &prefix))
		return false;

	bpf_probe_read_kernel_str(name.name, sizeof(name.name), opened->name);
	flags = bpf_map_lookup_elem(&nhg_candidate_names, &name);
	if (!flags)
		return false;
	if (*flags & NHG_NAME_ANY_PARENT)
		return true;
	if (!(*flags & NHG_NAME_BY_PARENT))
		return false;
	__builtin_memcpy(pair.name, name.name, sizeof(pair.name));
	bpf_probe_read_kernel_str(pair.parent, sizeof(pair.parent),
				  BPF_CORE_READ(dentry, d_parent, d_name.name));
	return bpf_map_lookup_elem(&nhg_candidate_pairs, &pair) != NULL;
}

/* Path argument and open flags of the syscall being exited, from the task's user registers. */
static __always_inline void sensor__syscall_args(struct nhg_file_event *event, __u16 syscall)
{
	struct pt_regs *regs;
	const char *path = NULL;
	long ret;

	event->open_flags = 0;
	event->requested_path[0] = '\0';
	if (!read_syscall_args) {
		event->flags |= NHG_FILE_PATH_MISSING;
		return;
	}
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	switch (syscall) {
	case NHG_SYS_OPENAT:
		path = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		event->open_flags = (__u32)PT_REGS_PARM3_CORE_SYSCALL(regs);
		break;
	case NHG_SYS_OPENAT2: {
		struct open_how *how = (struct open_how *)PT_REGS_PARM3_CORE_SYSCALL(regs);
		__u64 how_flags = 0;

		path = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		bpf_probe_read_user(&how_flags, sizeof(how_flags), &how->flags);
		event->open_flags = (__u32)how_flags;
		break;
	}
	case NHG_SYS_OPEN:
		path = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		event->open_flags = (__u32)PT_REGS_PARM2_CORE_SYSCALL(regs);
		break;
	case NHG_SYS_CREAT:
		path = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		event->open_flags = 0100 | 01 | 01000; /* O_CREAT | O_WRONLY | O_TRUNC */
		break;
	case NHG_SYS_OPEN_BY_HANDLE_AT:
		event->open_flags = (__u32)PT_REGS_PARM3_CORE_SYSCALL(regs);
		break;
	}
	if (!path) {
		event->flags |= NHG_FILE_PATH_MISSING;
		return;
	}
	ret = bpf_probe_read_user_str(event->requested_path, sizeof(event->requested_path), path);
	if (ret < 0) {
		event->requested_path[0] = '\0';
		event->flags |= NHG_FILE_PATH_MISSING;
	} else if (ret == sizeof(event->requested_path)) {
		event->flags |= NHG_FILE_PATH_TRUNCATED;
	}
}

/* What sensor__repeat found. */
enum sensor__read_kind {
	SENSOR_FIRST_READ = 0,	     /* the process had not read this file last: a full record */
	SENSOR_REPEAT_REPORTED = 1,  /* a repeat past the window: a record carrying the count */
	SENSOR_REPEAT_COALESCED = 2, /* a repeat inside the window: counted, no record */
	SENSOR_READ_UNCHECKED = 3,   /* not looked at yet */
};

/* Is this open a repeat by the process that last read this very file (see NHG_REPEAT_WINDOW_NS)?
 * A coalesced repeat is counted here and needs nothing more; for a reported one, *coalesced
 * receives the repeats counted since the last record. */
static __always_inline enum sensor__read_kind
sensor__repeat(struct task_struct *task, const struct nhg_inode_key *key, __u16 *coalesced)
{
	__u32 tgid = (__u32)task->tgid;
	struct nhg_taint *current = bpf_map_lookup_elem(&nhg_taint, &tgid);
	__u64 now;
	__u32 count;

	if (!current || current->source_tgid != tgid || current->file.ino != key->ino ||
	    current->file.dev != key->dev)
		return SENSOR_FIRST_READ;
	now = bpf_ktime_get_boot_ns();
	count = current->coalesced;
	if (now - current->window_start_ns < NHG_REPEAT_WINDOW_NS && count < NHG_REPEAT_MAX_COALESCED) {
		__sync_fetch_and_add(&current->coalesced, 1);
		maps__count(NHG_CTR_CREDENTIAL_OPENS);
		maps__count(NHG_CTR_CREDENTIAL_OPENS_COALESCED);
		return SENSOR_REPEAT_COALESCED;
	}
	current->window_start_ns = now;
	/* Subtracting what was read keeps the increments of threads that raced with it. */
	__sync_fetch_and_add(&current->coalesced, -count);
	*coalesced = count > NHG_REPEAT_MAX_COALESCED ? NHG_REPEAT_MAX_COALESCED : (__u16)count;
	return SENSOR_REPEAT_REPORTED;
}

/* ---- Opens that are not of a credential file but reach one another way ---- */

/* fs/proc's superblock magic and the inode type bits (include/uapi/linux/magic.h, stat.h). */
#define NHG_PROC_SUPER_MAGIC 0x9fa0
#define NHG_S_IFMT 00170000
#define NHG_S_IFBLK 0060000

/* Little-endian heads of the two /proc file names that expose a process's memory. */
#define NHG_NAME_HEAD_MEM 0x6d656dull		  /* "mem" */
#define NHG_NAME_HEAD_ENVIRON 0x6e6f7269766e65ull /* "environ" */

/* The decimal number a /proc directory name spells (a pid), or 0 when it is not one. */
static __always_inline __u32 sensor__dentry_number(struct dentry *dentry)
{
	char name[12] = {};
	__u32 value = 0;

	if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(dentry, d_name.name)) <= 1)
		return 0;
	for (int i = 0; i < 11; i++) {
		char c = name[i];

		if (c == '\0')
			break;
		if (c < '0' || c > '9')
			return 0;
		value = value * 10 + (c - '0');
	}
	return value;
}

static __always_inline bool sensor__dentry_is(struct dentry *dentry, const char *expected, int len)
{
	char name[8] = {};

	if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(dentry, d_name.name)) != len + 1)
		return false;
	for (int i = 0; i < len && i < 8; i++) {
		if (name[i] != expected[i])
			return false;
	}
	return true;
}

/* Emits a memory-access record: the current process reached into target_tgid, whose taint is
 * given. */
static __always_inline void sensor__report_memory_access(struct task_struct *task, __u32 target_tgid,
							 __u32 target_tid, const struct nhg_taint *taint,
							 __u16 how, __u32 f_mode, long result)
{
	struct nhg_memory_access_event *event;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_ACCESS);
		return;
	}
	process__header(&event->hdr, NHG_EVENT_MEMORY_ACCESS, sizeof(*event));
	process__describe(&event->proc, task);
	event->target_tgid = target_tgid;
	event->target_tid = target_tid;
	event->target_start_ns = taint->start_ns;
	event->taint_credential_id = taint->credential_id;
	event->taint_source_tgid = taint->source_tgid;
	event->tainted_at_ns = taint->tainted_at_ns;
	event->how = how;
	event->pad0 = 0;
	event->f_mode = f_mode;
	event->result = result;
	bpf_ringbuf_submit(event, maps__submit_flags());
}

/* An open of /proc/PID/mem or /proc/PID/environ (or /proc/PID/task/TID/...) of a tainted process
 * other than the opener. procfs inodes are not in the credential table: the file is known by its
 * name, its numeric parent and the superblock, and the target by its taint. Only files named "mem"
 * or "environ" get past the first comparison. */
static __always_inline void sensor__proc_memory_open(struct task_struct *task, struct file *file,
						     const struct sensor__opened *opened, long fd,
						     bool direct)
{
	struct dentry *dentry = opened->dentry;
	struct dentry *parent;
	struct nhg_taint *taint;
	__u32 target;
	__u32 tid;
	__u64 head;
	__u16 how;

	if (opened->name_len != 3 && opened->name_len != 7)
		return;
	head = sensor__name_head(opened, direct);
	if (opened->name_len == 3 && (head & 0xffffffull) == NHG_NAME_HEAD_MEM)
		how = NHG_MEM_PROC_MEM;
	else if (opened->name_len == 7 && (head & 0xffffffffffffffull) == NHG_NAME_HEAD_ENVIRON)
		how = NHG_MEM_PROC_ENVIRON;
	else
		return;
	if (BPF_CORE_READ(file, f_inode, i_sb, s_magic) != NHG_PROC_SUPER_MAGIC)
		return;
	parent = BPF_CORE_READ(dentry, d_parent);
	tid = sensor__dentry_number(parent);
	if (!tid)
		return;
	target = tid;
	taint = bpf_map_lookup_elem(&nhg_taint, &target);
	if (!taint) {
		/* /proc/PID/task/TID/mem: the thread's directory sits in its process's "task". */
		struct dentry *task_dir = BPF_CORE_READ(parent, d_parent);

		if (!sensor__dentry_is(task_dir, "task", 4))
			return;
		target = sensor__dentry_number(BPF_CORE_READ(task_dir, d_parent));
		if (!target)
			return;
		taint = bpf_map_lookup_elem(&nhg_taint, &target);
		if (!taint)
			return;
	}
	if (target == (__u32)task->tgid)
		return; /* a process reading its own memory reaches nothing new */
	sensor__report_memory_access(task, target, tid, taint, how, opened->f_mode, fd);
}

/* Is the opened file a block device special file? Raw reads of a disk bypass every file's mode. */
static __always_inline bool sensor__block_device(struct file *file, bool direct)
{
	__u16 mode;

	if (direct)
		mode = file->f_inode->i_mode;
	else
		mode = BPF_CORE_READ(file, f_inode, i_mode);
	return (mode & NHG_S_IFMT) == NHG_S_IFBLK;
}

static __always_inline void sensor__report_block_device(struct task_struct *task, struct file *file,
							const struct sensor__opened *opened, long fd,
							__u16 syscall)
{
	struct nhg_block_device_event *event;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_ACCESS);
		return;
	}
	process__header(&event->hdr, NHG_EVENT_BLOCK_DEVICE_OPEN, sizeof(*event));
	process__describe(&event->proc, task);
	event->rdev = BPF_CORE_READ(file, f_inode, i_rdev);
	event->f_mode = opened->f_mode;
	event->fd = (__s32)fd;
	event->syscall = syscall;
	event->pad0 = 0;
	event->pad1 = 0;
	bpf_probe_read_kernel_str(event->name, sizeof(event->name), opened->name);
	bpf_ringbuf_submit(event, maps__submit_flags());
}

/* An open that is neither a credential nor a candidate: a block device opened for reading, or a
 * /proc file exposing a tainted process's memory. */
static __always_inline void sensor__other_open(struct task_struct *task, struct file *file,
					       const struct sensor__opened *opened, long fd, __u16 syscall,
					       bool direct)
{
	if (!(opened->f_mode & FMODE_READ))
		return;
	if (sensor__block_device(file, direct)) {
		sensor__report_block_device(task, file, opened, fd, syscall);
		return;
	}
	sensor__proc_memory_open(task, file, opened, fd, direct);
}

/* The read path (readpath.bpf.h, included at the end) keeps per-(process, credential) and per-fd-table
 * state that the open path feeds. */
static __always_inline void readpath__opened(struct task_struct *task, const struct nhg_inode_key *key);
static __always_inline void readpath__doom_fd_table(struct task_struct *task,
						    const struct nhg_deny_key *deny);

static __always_inline int sensor__on_open_exit(long ret, __u16 syscall, bool direct)
{
	struct task_struct *task;
	struct nhg_file_event *event;
	struct nhg_credential_value *credential = NULL;
	enum sensor__read_kind kind = SENSOR_READ_UNCHECKED;
	struct sensor__opened opened = {};
	struct nhg_deny_key deny = {};
	struct dentry *dentry;
	struct file *file;
	__u32 credential_id = 0;
	bool denied = false;
	bool repeat = false;
	__u16 coalesced = 0;
	__u16 type;

	if (ret < 0)
		return 0;
	task = bpf_get_current_task_btf();
	if ((__u32)task->tgid == ignore_tgid)
		return 0;
	file = sensor__fd_file(task, ret, direct);
	if (!file) {
		maps__count(NHG_CTR_FD_LOOKUP_FAILED);
		return 0;
	}
	sensor__read_opened(file, direct, &opened);
	/* O_PATH descriptors can neither read nor write: the re-open through /proc/self/fd that
	 * would read the bytes is an open of its own and is matched then. */
	if (!(opened.f_mode & (FMODE_READ | FMODE_WRITE)))
		return 0;

	if (credentials__may_be(&opened.key)) {
		/* A repeat read is decided before the credential's own lookup, which it does not
		 * need; unless a deny is in force anywhere, since a deny must see every open. */
		if ((opened.f_mode & FMODE_READ) && !maps__enforcing(NHG_ENF_CREDENTIAL_DENIES)) {
			kind = sensor__repeat(task, &opened.key, &coalesced);
			if (kind == SENSOR_REPEAT_COALESCED)
				return 0;
		}
		credential = bpf_map_lookup_elem(&nhg_credentials, &opened.key);
	}
	if (credential) {
		type = NHG_EVENT_CREDENTIAL_OPEN;
		maps__count(NHG_CTR_CREDENTIAL_OPENS);
		credential_id = credential->credential_id;
		/* The kill is synchronous: the signal is pending before the syscall returns, so the
		 * reader dies without reading a byte. */
		if (credentials__deny_match(credential_id, &deny)) {
			bpf_send_signal(9 /* SIGKILL */);
			denied = true;
			maps__count(NHG_CTR_CREDENTIAL_DENIED);
			readpath__doom_fd_table(task, &deny);
		} else if (opened.f_mode & FMODE_READ) {
			if (kind == SENSOR_READ_UNCHECKED) {
				kind = sensor__repeat(task, &opened.key, &coalesced);
				if (kind == SENSOR_REPEAT_COALESCED)
					return 0;
			}
			if (kind == SENSOR_FIRST_READ) {
				credentials__taint(task, credential_id, &opened.key);
				readpath__opened(task, &opened.key);
			}
			repeat = kind == SENSOR_REPEAT_REPORTED;
		}
	} else if (sensor__candidate(&opened, direct)) {
		type = NHG_EVENT_CANDIDATE_OPEN;
		maps__count(NHG_CTR_CANDIDATE_OPENS);
	} else {
		sensor__other_open(task, file, &opened, ret, syscall, direct);
		return 0;
	}

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_FILE);
		return 0;
	}
	dentry = opened.dentry;
	process__header(&event->hdr, type, sizeof(*event));
	process__describe(&event->proc, task);
	event->file = opened.key;
	event->credential_id = credential_id;
	event->f_mode = opened.f_mode;
	event->fd = (__s32)ret;
	event->syscall = syscall;
	event->flags = denied ? NHG_FILE_DENIED : 0;
	event->coalesced_opens = coalesced;
	bpf_probe_read_kernel_str(event->name, sizeof(event->name), opened.name);
	bpf_probe_read_kernel_str(event->parent, sizeof(event->parent),
				  BPF_CORE_READ(dentry, d_parent, d_name.name));
	sensor__syscall_args(event, syscall);
	if (repeat) {
		event->cmdline_len = 0;
		event->flags |= NHG_FILE_CMDLINE_OMITTED;
	} else {
		process__cmdline(event, task);
	}
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

/* One program per open syscall and variant: sensor_exit_<syscall> reads the file with helpers
 * (kernels 5.8+), sensor_exit_<syscall>_direct with plain loads (6.2+). The agent loads one of
 * the two; both pin their link under the first name, so switching variants replaces the link. */
#define SENSOR_OPEN_EXIT(syscall_name, syscall_id)                             \
	SEC("tracepoint/syscalls/sys_exit_" #syscall_name)                     \
	int sensor_exit_##syscall_name(struct nhg_sys_exit_args *ctx)          \
	{                                                                      \
		return sensor__on_open_exit(ctx->ret, syscall_id, false);      \
	}                                                                      \
	SEC("tracepoint/syscalls/sys_exit_" #syscall_name)                     \
	int sensor_exit_##syscall_name##_direct(struct nhg_sys_exit_args *ctx) \
	{                                                                      \
		return sensor__on_open_exit(ctx->ret, syscall_id, true);       \
	}

SENSOR_OPEN_EXIT(openat, NHG_SYS_OPENAT)
SENSOR_OPEN_EXIT(openat2, NHG_SYS_OPENAT2)
SENSOR_OPEN_EXIT(open, NHG_SYS_OPEN)
SENSOR_OPEN_EXIT(creat, NHG_SYS_CREAT)
SENSOR_OPEN_EXIT(open_by_handle_at, NHG_SYS_OPEN_BY_HANDLE_AT)

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sensor_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct nhg_exec_event *event;
	long len;

	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_PROCESS);
		return 0;
	}
	process__header(&event->hdr, NHG_EVENT_PROCESS_EXEC, sizeof(*event));
	process__describe(&event->proc, task);
	event->old_tid = old_pid;
	event->flags = 0;
	event->pad0 = 0;
	len = bpf_probe_read_kernel_str(event->filename, sizeof(event->filename),
					BPF_CORE_READ(bprm, filename));
	if (len < 0)
		event->filename[0] = '\0';
	else if (len == sizeof(event->filename))
		event->flags |= NHG_FILE_PATH_TRUNCATED;
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sensor_process_fork, struct task_struct *parent, struct task_struct *child)
{
	struct nhg_fork_event *event;

	/* New threads share the process key of their leader: only new processes are events. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	/* Taint follows the credential into children (a shell that read a token and then runs curl). */
	{
		__u32 parent_tgid = BPF_CORE_READ(parent, tgid);
		__u32 child_tgid = BPF_CORE_READ(child, tgid);
		struct nhg_taint *taint = bpf_map_lookup_elem(&nhg_taint, &parent_tgid);

		if (taint) {
			struct nhg_taint inherited = *taint;

			inherited.start_ns = BPF_CORE_READ(child, start_boottime);
			inherited.coalesced = 0; /* the parent's uncounted repeats are the parent's */
			if (bpf_map_update_elem(&nhg_taint, &child_tgid, &inherited, BPF_ANY) != 0)
				maps__count(NHG_CTR_TAINT_MAP_FULL);
		}
		/* So does containment: a child forked after a move is as contained as its parent. */
		struct nhg_follow *follow = bpf_map_lookup_elem(&nhg_followed, &parent_tgid);

		if (follow) {
			struct nhg_follow child_follow = *follow;

			child_follow.start_ns = BPF_CORE_READ(child, start_boottime);
			if (bpf_map_update_elem(&nhg_followed, &child_tgid, &child_follow, BPF_ANY) != 0)
				maps__count(NHG_CTR_FOLLOW_MAP_FULL);
		}
	}
	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_PROCESS);
		return 0;
	}
	process__header(&event->hdr, NHG_EVENT_PROCESS_FORK, sizeof(*event));
	process__describe(&event->proc, parent);
	event->child_tgid = BPF_CORE_READ(child, tgid);
	event->pad0 = 0;
	event->child_start_ns = BPF_CORE_READ(child, start_boottime);
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

/* The repeat opens a process made after its last record of a credential would otherwise be known
 * only as a count in nhg_counters: at its exit they become one record of their own. */
static __always_inline void sensor__flush_repeats(struct task_struct *task, __u32 tgid)
{
	struct nhg_taint *taint = bpf_map_lookup_elem(&nhg_taint, &tgid);
	struct nhg_file_event *event;
	__u32 count;

	if (!taint || taint->source_tgid != tgid)
		return;
	count = taint->coalesced;
	if (count == 0)
		return;
	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_FILE);
		return;
	}
	process__header(&event->hdr, NHG_EVENT_CREDENTIAL_OPEN, sizeof(*event));
	process__describe(&event->proc, task);
	event->file = taint->file;
	event->credential_id = taint->credential_id;
	event->open_flags = 0;
	event->f_mode = FMODE_READ;
	event->fd = -1;
	event->syscall = 0;
	event->flags = NHG_FILE_REPEAT_SUMMARY | NHG_FILE_PATH_MISSING | NHG_FILE_CMDLINE_OMITTED;
	event->cmdline_len = 0;
	event->coalesced_opens = count > NHG_REPEAT_MAX_COALESCED ? NHG_REPEAT_MAX_COALESCED : (__u16)count;
	event->name[0] = '\0';
	event->parent[0] = '\0';
	event->requested_path[0] = '\0';
	bpf_ringbuf_submit(event, maps__submit_flags());
}

SEC("tracepoint/sched/sched_process_exit")
int sensor_process_exit(void *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct nhg_exit_event *event;

	/* signal->live reaches 0 when the last thread of the process exits: that is the process's end,
	 * whichever thread it is (the leader may have exited earlier). */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	{
		__u32 tgid = BPF_CORE_READ(task, tgid);

		sensor__flush_repeats(task, tgid);
		bpf_map_delete_elem(&nhg_taint, &tgid);
		bpf_map_delete_elem(&nhg_followed, &tgid);
	}
	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_PROCESS);
		return 0;
	}
	process__header(&event->hdr, NHG_EVENT_PROCESS_EXIT, sizeof(*event));
	process__describe(&event->proc, task);
	event->exit_code = BPF_CORE_READ(task, exit_code);
	event->pad0 = 0;
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

/* A followed (contained) or tainted process attached to another cgroup: the move is an event. The
 * containment itself needs nothing here (it is keyed by the process, nhg_followed); the tracepoint
 * runs after the move, so proc.cgroup_id is the new cgroup. */
SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(sensor_cgroup_attach_task, struct cgroup *dst_cgrp, const char *path, struct task_struct *task,
	     bool threadgroup)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct nhg_follow *follow = bpf_map_lookup_elem(&nhg_followed, &tgid);
	struct nhg_taint *taint = bpf_map_lookup_elem(&nhg_taint, &tgid);
	struct nhg_cgroup_move_event *event;

	__u32 flags = threadgroup ? 0 : NHG_MOVE_THREAD;

	/* Flags from each pointer on its own: the verifier refuses arithmetic on two pointers. */
	if (follow)
		flags |= NHG_MOVE_CONTAINED;
	if (taint)
		flags |= NHG_MOVE_TAINTED;
	if (!(flags & (NHG_MOVE_CONTAINED | NHG_MOVE_TAINTED)))
		return 0;
	event = bpf_ringbuf_reserve(&nhg_events, sizeof(*event), 0);
	if (!event) {
		maps__count(NHG_CTR_RINGBUF_DROP_PROCESS);
		return 0;
	}
	process__header(&event->hdr, NHG_EVENT_CGROUP_MOVE, sizeof(*event));
	process__describe(&event->proc, task);
	event->dst_cgroup_id = BPF_CORE_READ(dst_cgrp, kn, id);
	event->flags = flags;
	for (int i = 0; i < NHG_FOLLOW_MAX_TARGETS; i++)
		event->followed_cgroup_ids[i] = follow ? follow->cgroup_ids[i] : 0;
	event->taint_credential_id = taint ? taint->credential_id : 0;
	bpf_ringbuf_submit(event, maps__submit_flags());
	return 0;
}

/* ---- ptrace and process_vm_readv aimed at a tainted process ---- */

#define NHG_PTRACE_ATTACH 16
#define NHG_PTRACE_SEIZE 0x4206

/* Both syscalls are seen at their exit with their arguments from the task's user registers, so
 * one program per syscall sees the request and its result. */
SEC("tracepoint/syscalls/sys_exit_ptrace")
int sensor_exit_ptrace(struct nhg_sys_exit_args *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs *regs;
	struct nhg_taint *taint;
	long request;
	__u32 pid;
	__u32 target;

	if ((__u32)task->tgid == ignore_tgid || !read_syscall_args)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	request = PT_REGS_PARM1_CORE_SYSCALL(regs);
	if (request != NHG_PTRACE_ATTACH && request != NHG_PTRACE_SEIZE)
		return 0;
	pid = (__u32)PT_REGS_PARM2_CORE_SYSCALL(regs);
	target = pid;
	if (ctx->ret == 0) {
		/* Attached: the tracee was just put at the head of the tracer's ptraced list. It gives
		 * the thread's process when the pid named a thread other than the leader. */
		struct list_head *first = task->ptraced.next;

		if (first && first != &task->ptraced) {
			struct task_struct *tracee =
				(void *)first - bpf_core_field_offset(struct task_struct, ptrace_entry);

			if ((__u32)BPF_CORE_READ(tracee, pid) == pid)
				target = BPF_CORE_READ(tracee, tgid);
		}
	}
	/* A refused attempt (Yama, permissions) is reported too: it names the target. */
	taint = bpf_map_lookup_elem(&nhg_taint, &target);
	if (!taint || target == (__u32)task->tgid)
		return 0;
	sensor__report_memory_access(
		task, target, pid, taint,
		request == NHG_PTRACE_SEIZE ? NHG_MEM_PTRACE_SEIZE : NHG_MEM_PTRACE_ATTACH, 0, ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_process_vm_readv")
int sensor_exit_process_vm_readv(struct nhg_sys_exit_args *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct nhg_taint *taint;
	struct pt_regs *regs;
	__u32 pid;

	if ((__u32)task->tgid == ignore_tgid || !read_syscall_args)
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	pid = (__u32)PT_REGS_PARM1_CORE_SYSCALL(regs);
	taint = bpf_map_lookup_elem(&nhg_taint, &pid);
	if (!taint || pid == (__u32)task->tgid)
		return 0;
	sensor__report_memory_access(task, pid, pid, taint, NHG_MEM_PROCESS_VM_READV, 0, ctx->ret);
	return 0;
}

#include "readpath.bpf.h"
