/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * nhiguard kernel <-> user-space ABI: the one place where records and map layouts are defined.
 *
 * Included by the BPF programs (after vmlinux.h) and by the agent's decoder. Everything is
 * fixed-width, little-endian host order unless a field says otherwise, explicitly padded, and
 * sized/offset-checked by tests/unit/abi_layout_test.cpp. Enum values are explicit and never
 * reused; a record that changes layout bumps NHG_ABI_VERSION.
 *
 * Times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns), so they keep counting across
 * suspend and compare with the expires_at of enforcement entries.
 */
#ifndef NHIGUARD_BPF_ABI_H
#define NHIGUARD_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define NHG_ABI_VERSION 1

#define NHG_COMM_LEN 16
#define NHG_PATH_LEN 256 /* path as the process passed it (truncated, flagged) */
#define NHG_NAME_LEN 64	 /* one dentry name */
#define NHG_EXEC_PATH_LEN 256
#define NHG_CMDLINE_LEN 256 /* argv of the opener, NUL-separated (truncated, flagged) */

/* Record types: the first field of every ring-buffer record. */
enum nhg_event_type {
	NHG_EVENT_CREDENTIAL_OPEN = 1, /* an open whose inode is in the credential map */
	NHG_EVENT_CANDIDATE_OPEN = 2,  /* an open whose (parent, name) is in the name table */
	NHG_EVENT_PROCESS_EXEC = 3,
	NHG_EVENT_PROCESS_FORK = 4,
	NHG_EVENT_PROCESS_EXIT = 5,
	NHG_EVENT_EGRESS = 6,	   /* a connect/sendmsg of a tainted process, or a denied one */
	NHG_EVENT_CGROUP_MOVE = 7, /* a contained or tainted process moved to another cgroup */
	/* ptrace attach/seize, process_vm_readv or a /proc/PID/{mem,environ} open aimed at a tainted
	 * process: another process reaching into the memory that holds a credential */
	NHG_EVENT_MEMORY_ACCESS = 8,
	NHG_EVENT_BLOCK_DEVICE_OPEN = 9, /* a block device opened for reading: raw reads bypass file modes */
};

/* Which syscall opened the file. */
enum nhg_open_syscall {
	NHG_SYS_OPENAT = 1,
	NHG_SYS_OPENAT2 = 2,
	NHG_SYS_OPEN = 3,
	NHG_SYS_CREAT = 4,
	NHG_SYS_OPEN_BY_HANDLE_AT = 5,
	/* Not an open: a credential fd arrived in this process (SCM_RIGHTS, pidfd_getfd), seen by BPF
	 * LSM file_receive; fd -1, no path. */
	NHG_SYS_FILE_RECEIVE = 6,
	/* An open seen by BPF LSM file_open, before the file is usable: any syscall (io_uring too); fd
	 * -1, no path (the hook does not know which syscall it serves). */
	NHG_SYS_LSM_FILE_OPEN = 7,
	/* An open submitted through io_uring (IORING_OP_OPENAT / OPENAT2), seen at its completion. */
	NHG_SYS_IO_URING_OPENAT = 8,
	NHG_SYS_IO_URING_OPENAT2 = 9,
	/* The first read-family syscall on a credential fd by a process that did not open it (the fd
	 * was inherited, received, or opened before the agent started): seen at the syscall's entry,
	 * before it reads. fd is the descriptor read from; requested_path is empty (PATH_MISSING). */
	NHG_SYS_READ = 10,
	NHG_SYS_PREAD64 = 11,
	NHG_SYS_READV = 12,
	NHG_SYS_PREADV = 13, /* preadv and preadv2 */
	/* An io_uring read (IORING_OP_READ, READV, READ_FIXED) of a credential, seen at its completion:
	 * after the read; fd -1 (the request's file, whichever fd or fixed slot named it). */
	NHG_SYS_IO_URING_READ = 14,
	NHG_SYS_MMAP = 15,
	NHG_SYS_SENDFILE = 16,
	NHG_SYS_SPLICE = 17,
	NHG_SYS_COPY_FILE_RANGE = 18,
	/* io_uring_setup or io_uring_enter by a process under a credential deny: it is killed before
	 * its ring can open or read anything. No file: dev, ino 0, fd -1; credential_id is the denied
	 * credential's. */
	NHG_SYS_IO_URING_RING = 19,
};

/* nhg_file_event.flags */
enum nhg_file_event_flags {
	NHG_FILE_PATH_TRUNCATED = 1u << 0,    /* requested_path was longer than NHG_PATH_LEN - 1 */
	NHG_FILE_PATH_MISSING = 1u << 1,      /* requested_path could not be read */
	NHG_FILE_CMDLINE_TRUNCATED = 1u << 2, /* the argv area was longer than NHG_CMDLINE_LEN */
	NHG_FILE_CMDLINE_MISSING = 1u << 3,   /* the argv area could not be read (kernel thread, paged out) */
	NHG_FILE_DENIED = 1u << 4,	      /* a deny_credential rule matched: the reader was SIGKILLed,
					       * or with NHG_FILE_REFUSED, the open refused */
	/* a repeat read by the same process: its argv came with the first */
	NHG_FILE_CMDLINE_OMITTED = 1u << 5,
	NHG_FILE_REPEAT_SUMMARY = 1u << 6, /* not an open: at the process's exit, the repeat opens counted
					       * after its last record (coalesced_opens); syscall 0, fd -1,
					       * no names or path */
	/* With NHG_FILE_DENIED: BPF LSM refused the open (or the fd's receipt) with EACCES before a
	 * byte was read; nobody was killed. */
	NHG_FILE_REFUSED = 1u << 7,
	/* With NHG_FILE_DENIED: the reader was killed because it shares the fd table of a process a
	 * deny killed (clone(CLONE_FILES)), wherever its own cgroup is. */
	NHG_FILE_SHARED_FD_TABLE = 1u << 8,
};

/* A process that opens the same credential for reading again within NHG_REPEAT_WINDOW_NS of its
 * last reported open, and before NHG_REPEAT_MAX_COALESCED such opens, is counted instead of
 * reported; its next reported open carries the count (nhg_file_event.coalesced_opens). A loop of
 * reads in one process then costs one record per window, not one per open, and cannot fill the
 * ring buffer and push out the records of other processes. */
#define NHG_REPEAT_WINDOW_NS 1000000000ull
#define NHG_REPEAT_MAX_COALESCED 0xffffu

/* Drop / error counters, one slot each in the per-CPU `nhg_counters` array. */
enum nhg_counter {
	NHG_CTR_RINGBUF_DROP_FILE = 0,		/* ring buffer reservation failed for a file event */
	NHG_CTR_RINGBUF_DROP_PROCESS = 1,	/* ring buffer reservation failed for a lifecycle event */
	NHG_CTR_FD_LOOKUP_FAILED = 2,		/* open succeeded but the fd table did not yield a file */
	NHG_CTR_CREDENTIAL_OPENS = 3,		/* credential opens seen (emitted or not) */
	NHG_CTR_CANDIDATE_OPENS = 4,		/* name-table hits seen */
	NHG_CTR_RINGBUF_DROP_EGRESS = 5,	/* ring buffer reservation failed for an egress event */
	NHG_CTR_EGRESS_DENIED = 6,		/* connects/sendmsgs/packets refused by an egress block */
	NHG_CTR_CREDENTIAL_DENIED = 7,		/* readers killed by a deny_credential rule */
	NHG_CTR_CREDENTIAL_OPENS_COALESCED = 8, /* repeat opens counted into a later record, not sent */
	NHG_CTR_TAINT_MAP_FULL = 9,   /* a taint (a read, or inherited on fork) not recorded: nhg_taint
					   * refused the update (full); that process's egress is not seen */
	NHG_CTR_LSM_REFUSED = 10,     /* opens, fd receipts, reads and socket calls refused by BPF LSM */
	NHG_CTR_FOLLOW_MAP_FULL = 11, /* a contained process's fork not followed: nhg_followed full */
	NHG_CTR_CGROUP_DEPTH_EXCEEDED = 12, /* an enforcement walk stopped at NHG_MAX_CGROUP_DEPTH with the
					     * cgroup deeper: a block or deny below that level is not seen */
	/* a deny kill whose fd table could not be recorded (nhg_doomed_files full): a process sharing
	 * that table from another cgroup is not killed on its read */
	NHG_CTR_DOOMED_FILES_FULL = 13,
	/* ring buffer reservation failed for a memory-access or block-device record */
	NHG_CTR_RINGBUF_DROP_ACCESS = 14,
	NHG_CTR__COUNT = 16, /* array size; room to add counters without resizing */
};

/* Header of every record. size is the whole record in bytes, header included. */
struct nhg_event_header {
	__u16 type;    /* enum nhg_event_type */
	__u16 size;    /* bytes, including this header */
	__u16 version; /* NHG_ABI_VERSION */
	__u16 cpu;
	__u64 ts_ns; /* CLOCK_BOOTTIME ns at the probe */
};

/* The process a record is about, as the kernel saw it at the probe. */
struct nhg_process {
	__u32 tgid;
	__u32 tid;
	__u32 ppid; /* tgid of real_parent */
	__u32 uid;  /* real uid */
	__u32 euid;
	__u32 gid;
	__u32 sessionid; /* audit session id; 0xffffffff when unset */
	__u32 pad0;
	__u64 start_ns;	 /* group leader's start_boottime, ns: with tgid, the process key */
	__u64 cgroup_id; /* cgroup v2 id (the cgroup directory's inode number) */
	char comm[NHG_COMM_LEN];
};

/* Key of the credential map: a file, independent of the path it is reached by. */
struct nhg_inode_key {
	__u64 dev; /* kernel dev_t of the superblock: (major << 20) | minor */
	__u64 ino;
};

/* Value of the credential map. */
struct nhg_credential_value {
	__u32 credential_id; /* agent-assigned, > 0 */
	__u32 class_id;	     /* agent's credential class enum, informational in the kernel */
};

/* ---- Prefilters of the open path ----
 * Two arrays the open programs read before any hash lookup. An array lookup is inlined by the
 * verifier (a bounds check and a load) where a hash lookup is a call that hashes its key, and
 * nearly every open in a system misses both tables; the agent keeps the arrays in step with the
 * tables they guard (it raises a slot before adding an entry and lowers it after removing one, so a
 * slot is never zero while an entry behind it exists). Both sides compute slots with these
 * functions. */

/* nhg_credential_filter: slot -> number of nhg_credentials entries hashing to it. */
#define NHG_CREDENTIAL_FILTER_BITS 14
#define NHG_CREDENTIAL_FILTER_SLOTS (1u << NHG_CREDENTIAL_FILTER_BITS)

static inline __u32 nhg_credential_filter_slot(__u64 dev, __u64 ino)
{
	/* Multiplicative (Fibonacci) hashing: the top bits of the product mix every input bit. */
	return (__u32)(((ino ^ (dev << 32)) * 0x9E3779B97F4A7C15ull) >> (64 - NHG_CREDENTIAL_FILTER_BITS));
}

/* nhg_candidate_filter: slot -> 1 while a candidate name of that length and first byte exists. */
#define NHG_CANDIDATE_FILTER_SLOTS (NHG_NAME_LEN * 256)

static inline __u32 nhg_candidate_filter_slot(__u32 len, __u8 first_byte)
{
	return ((len & (NHG_NAME_LEN - 1)) << 8) | first_byte;
}

/* Values of nhg_candidate_names (a bit set per name). */
enum nhg_candidate_name_flags {
	NHG_NAME_ANY_PARENT = 1u, /* this name matches in any directory */
	NHG_NAME_BY_PARENT = 2u,  /* look up (parent, name) in nhg_candidate_pairs */
};

/* Key of the name table: (parent directory name, file name); parent "" matches any directory. */
struct nhg_name_key {
	char parent[NHG_NAME_LEN];
	char name[NHG_NAME_LEN];
};

/* Key of the name table's prefilter: a name's length and its first 8 bytes (zero-padded,
 * little-endian as loaded from memory). */
struct nhg_name_prefix_key {
	__u32 len;
	__u32 pad;
	__u64 head;
};

/* NHG_EVENT_CREDENTIAL_OPEN and NHG_EVENT_CANDIDATE_OPEN. */
struct nhg_file_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	struct nhg_inode_key file;
	__u32 credential_id;	   /* 0 for a candidate */
	__u32 open_flags;	   /* flags argument of the syscall (O_*) */
	__u32 f_mode;		   /* file->f_mode: FMODE_READ = 1, FMODE_WRITE = 2 */
	__s32 fd;		   /* the syscall's return value */
	__u16 syscall;		   /* enum nhg_open_syscall */
	__u16 flags;		   /* enum nhg_file_event_flags */
	__u16 cmdline_len;	   /* bytes of cmdline used, including argument NULs */
	__u16 coalesced_opens;	   /* repeat opens since the previous record of this process and credential */
	char name[NHG_NAME_LEN];   /* the dentry's own name */
	char parent[NHG_NAME_LEN]; /* the parent dentry's name */
	char requested_path[NHG_PATH_LEN];
	/* The opener's argv as the kernel holds it, so a process that exits before the agent reads
	 * /proc is still reported with its command line. */
	char cmdline[NHG_CMDLINE_LEN];
};

/* NHG_EVENT_PROCESS_EXEC. */
struct nhg_exec_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u32 old_tid; /* tid that called execve (a non-leader thread's exec takes over the tgid) */
	__u16 flags;   /* NHG_FILE_PATH_TRUNCATED when filename was cut */
	__u16 pad0;
	char filename[NHG_EXEC_PATH_LEN]; /* the path execve was given, as the kernel resolved it */
};

/* NHG_EVENT_PROCESS_FORK: a new process (not a thread). proc is the parent. */
struct nhg_fork_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u32 child_tgid;
	__u32 pad0;
	__u64 child_start_ns;
};

/* NHG_EVENT_PROCESS_EXIT: the whole process (thread group leader) exited. */
struct nhg_exit_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__s32 exit_code; /* task->exit_code: wait status encoding */
	__u32 pad0;
};

/* How a process reached into another's memory (nhg_memory_access_event.how). */
enum nhg_memory_access_how {
	NHG_MEM_PTRACE_ATTACH = 1,    /* ptrace(PTRACE_ATTACH, pid) */
	NHG_MEM_PTRACE_SEIZE = 2,     /* ptrace(PTRACE_SEIZE, pid) */
	NHG_MEM_PROCESS_VM_READV = 3, /* process_vm_readv(pid, ...) */
	NHG_MEM_PROC_MEM = 4,	      /* open of /proc/PID/mem (or /proc/PID/task/TID/mem) */
	NHG_MEM_PROC_ENVIRON = 5,     /* open of /proc/PID/environ (or its task/TID form) */
};

/* NHG_EVENT_MEMORY_ACCESS: proc (the accessor) reached into target_tgid, which is tainted: it, or
 * an ancestor it inherited from, read credential taint_credential_id, whose bytes may be in its
 * memory or environment. Seen at the syscall's exit, whether the kernel allowed it or not: result
 * is its return value (ptrace: 0 or -errno; process_vm_readv: bytes read or -errno; an open: the
 * fd, only successful opens are seen). */
struct nhg_memory_access_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u32 target_tgid;
	__u32 target_tid;      /* the pid the accessor named (a thread of target_tgid, or target_tgid) */
	__u64 target_start_ns; /* the target's start_boottime, from its taint entry */
	__u32 taint_credential_id;
	__u32 taint_source_tgid; /* the process that read the credential (differs when inherited) */
	__u64 tainted_at_ns;
	__u16 how; /* enum nhg_memory_access_how */
	__u16 pad0;
	__u32 f_mode; /* the /proc opens: file->f_mode (FMODE_READ 1, FMODE_WRITE 2); 0 for syscalls */
	__s64 result; /* the syscall's return value */
};

/* NHG_EVENT_BLOCK_DEVICE_OPEN: proc opened a block device special file (S_ISBLK) for reading. The
 * agent compares the opener with the policy's allow-list (block_device_readers). */
struct nhg_block_device_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u64 rdev;   /* the device: kernel dev_t, (major << 20) | minor */
	__u32 f_mode; /* file->f_mode */
	__s32 fd;
	__u16 syscall; /* enum nhg_open_syscall */
	__u16 pad0;
	__u32 pad1;
	char name[NHG_NAME_LEN]; /* the device node's dentry name ("sda", "loop0") */
};

/* ---- Enforcement (pinned; every entry expires in the kernel at expires_at_ns) ---- */

/* Slots of nhg_enforcement_counts: how many entries each enforcement map holds, kept by the agent,
 * so the hot paths skip the cgroup-ancestor walk entirely while nothing is enforced. */
enum nhg_enforcement_slot {
	NHG_ENF_CREDENTIAL_DENIES = 0,
	NHG_ENF_EGRESS_BLOCKS = 1,
	/* Not a count: 1 while the BPF LSM programs (lsm.bpf.c) are attached, set by the loader. The
	 * read path's kills (a denied read, io_uring under a deny) then stand down: the LSM hooks
	 * refuse the same reads and opens with EACCES and nobody needs killing. */
	NHG_ENF_LSM_ACTIVE = 3,
	NHG_ENF__COUNT = 4,
};

/* Processes nhg_taint holds at once; past it a taint is counted (NHG_CTR_TAINT_MAP_FULL), not kept. */
#define NHG_TAINT_MAX_ENTRIES 32768

/* Value of nhg_taint, keyed by tgid: this process (or an ancestor it inherited from) opened a
 * credential for reading. */
struct nhg_taint {
	__u64 start_ns;	     /* the tainted process's start_boottime: a reused tgid is not tainted */
	__u64 tainted_at_ns; /* CLOCK_BOOTTIME of the read */
	__u32 credential_id;
	__u32 source_tgid;	   /* the process that read it (differs from the key when inherited) */
	struct nhg_inode_key file; /* the credential file source_tgid read: its repeat opens coalesce */
	__u64 window_start_ns;	   /* CLOCK_BOOTTIME of the last record of it */
	__u32 coalesced;	   /* repeat opens since then, counted instead of reported */
	__u32 pad;
};

enum nhg_egress_block_mode {
	NHG_BLOCK_ALL = 1,    /* every connect/sendmsg and packet of the cgroup */
	NHG_BLOCK_LISTED = 2, /* only destinations in nhg_egress_dests for this cgroup */
};

/* Value of nhg_egress_blocks, keyed by cgroup id (__u64). Applies to the cgroup and every
 * cgroup below it. */
struct nhg_egress_block {
	__u64 expires_at_ns; /* CLOCK_BOOTTIME; the programs ignore the entry from then on */
	__u32 mode;	     /* enum nhg_egress_block_mode */
	__u32 rule_id;	     /* agent's short id of the action, for events */
};

/* Key of nhg_egress_dests (LPM trie): prefixlen counts bits of data[] from its start, so the
 * cgroup id and port are always matched whole (prefixlen >= 80) and the address by its prefix.
 * IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). port 0 = any port. */
struct nhg_egress_dest_key {
	__u32 prefixlen;
	__u8 cgroup_id[8]; /* host order bytes of the cgroup id */
	__u8 port[2];	   /* network byte order */
	__u8 addr[16];	   /* network byte order */
	__u8 pad[2];	   /* never inside a prefix: prefixlen <= 208 */
};

/* How deep the enforcement lookups walk down from the cgroup root (level 1) to find a blocked or
 * denied ancestor: a target cgroup at a deeper level could never match, so the agent refuses it. */
#define NHG_MAX_CGROUP_DEPTH 16

/* ---- Containment that follows the process ----
 * A block or deny is keyed by cgroup, so a process that leaves the cgroup (writes itself into
 * another cgroup's cgroup.procs) would leave it behind. nhg_followed, keyed by tgid, holds for a
 * process that was in a contained cgroup when its action applied (the agent writes it for every
 * process of the target's subtree) the ids of those contained cgroups: the egress hooks and the deny
 * check look up blocks and denies under them as under the process's own ancestors. Fork copies the
 * entry into the child, exit deletes it, and the agent removes a cgroup id from every entry when the
 * last block or deny on that cgroup ends (rollback, expiry). A cgroup id whose entries are gone
 * matches nothing, so a stale id is harmless. */
#define NHG_FOLLOW_MAX_TARGETS 4
#define NHG_FOLLOW_MAX_ENTRIES 16384

struct nhg_follow {
	__u64 start_ns; /* the process's start_boottime: with tgid, which process the entry is for */
	__u64 cgroup_ids[NHG_FOLLOW_MAX_TARGETS]; /* contained cgroups; 0 = unused slot */
};

/* Key of nhg_credential_denies: reading this credential from this cgroup (or below) kills the
 * reader on open. */
struct nhg_deny_key {
	__u32 credential_id;
	__u32 pad;
	__u64 cgroup_id;
};

struct nhg_deny_value {
	__u64 expires_at_ns;
	__u32 rule_id;
	__u32 pad;
};

/* A credential read taints the reader's cgroup for NHG_CGROUP_TAINT_WINDOW_NS: an untainted process
 * of that cgroup connecting out within the window is reported as tainted by that read, at a lower
 * confidence (NHG_TAINT_CGROUP_WINDOW). It catches a pipe from a reader to a sender that never
 * opened the file and descends from no reader (`cat creds | curl -d @- ...`); it also attributes
 * unrelated egress of the same cgroup in the window (README, "Pipes: the cgroup window"). */
#define NHG_CGROUP_TAINT_WINDOW_NS 10000000000ull

/* Value of nhg_cgroup_taint, keyed by cgroup id (__u64): the last credential read in that cgroup. */
struct nhg_cgroup_taint {
	__u64 tainted_at_ns; /* CLOCK_BOOTTIME of the read */
	__u32 credential_id;
	__u32 source_tgid; /* the reader */
};

/* nhg_egress_event.taint_kind: how the process came to be tainted. */
enum nhg_taint_kind {
	NHG_TAINT_NONE = 0,
	NHG_TAINT_PROCESS = 1,	     /* it read the credential, or inherited the taint on fork */
	NHG_TAINT_CGROUP_WINDOW = 2, /* another process of its cgroup read it within the window */
};

enum nhg_egress_hook {
	NHG_HOOK_CONNECT4 = 1,
	NHG_HOOK_CONNECT6 = 2,
	NHG_HOOK_SENDMSG4 = 3,
	NHG_HOOK_SENDMSG6 = 4,
	NHG_HOOK_SOCK_CREATE = 5, /* a raw socket refused at creation: no destination (addr 0, port 0) */
};

enum nhg_verdict {
	NHG_VERDICT_ALLOWED = 1,
	NHG_VERDICT_DENIED = 2,
};

/* NHG_EVENT_EGRESS. cgroup hooks cannot read the task struct: proc.start_ns comes from the taint
 * entry (0 when untainted), proc.ppid/euid/gid/sessionid are 0. */
struct nhg_egress_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u8 addr[16];		   /* destination, network byte order; IPv4 mapped into IPv6 */
	__u16 port;		   /* destination port, host byte order */
	__u16 family;		   /* AF_INET / AF_INET6 */
	__u16 protocol;		   /* IPPROTO_TCP / IPPROTO_UDP / ... */
	__u16 hook;		   /* enum nhg_egress_hook */
	__u32 verdict;		   /* enum nhg_verdict */
	__u32 rule_id;		   /* the block that denied it, 0 when allowed */
	__u32 taint_credential_id; /* 0 when the process is not tainted */
	__u32 taint_source_tgid;
	__u64 tainted_at_ns;
	__u32 taint_kind; /* enum nhg_taint_kind */
	__u32 pad0;
};

/* nhg_cgroup_move_event.flags */
enum nhg_cgroup_move_flags {
	NHG_MOVE_CONTAINED =
		1u << 0, /* the process is followed (nhg_followed): its containment moved with it */
	NHG_MOVE_TAINTED = 1u << 1, /* the process had read a credential */
	NHG_MOVE_THREAD = 1u << 2,  /* one thread moved (cgroup.threads), not the whole process */
};

/* NHG_EVENT_CGROUP_MOVE: a followed or tainted process was attached to another cgroup (the
 * cgroup_attach_task tracepoint, after the move). proc.cgroup_id is the new cgroup. */
struct nhg_cgroup_move_event {
	struct nhg_event_header hdr;
	struct nhg_process proc;
	__u64 dst_cgroup_id;
	__u64 followed_cgroup_ids[NHG_FOLLOW_MAX_TARGETS]; /* the containment the process carries; 0 = none */
	__u32 flags;					   /* enum nhg_cgroup_move_flags */
	__u32 taint_credential_id;			   /* 0 when not tainted */
};

#endif /* NHIGUARD_BPF_ABI_H */
