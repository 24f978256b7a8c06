// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * http: the first bytes of every read and write of a traced TCP connection, for the collector's HTTP/1.x parser
 * (src/collector/http/). The kernel does not parse anything: it copies, user space frames and pairs.
 *
 * Hooks and algorithm:
 *   1. Classic syscall tracepoints syscalls/sys_enter_<call> and sys_exit_<call> for write, writev, sendto,
 *      sendmsg, sendfile64 (sent; sendfile's record has the length and no bytes) and read, readv, recvfrom,
 *      recvmsg (received). Per-syscall tracepoints rather than
 *      raw_syscalls: the kernel runs these programs only for those nine calls and checks a bitmap for every other
 *      syscall, where a raw_syscalls program would run on every syscall of the machine. Measured in one run on an
 *      untraced process against the same programs as raw_tp/sys_enter and sys_exit (filtering on the syscall id):
 *      both add about 190 ns to each read/write, but 10 ns to every other syscall here against 130 ns there.
 *   2. On entry, first whether the calling task's cgroup (or an ancestor) is traced and not the agent's
 *      (sl_cgroup_is_traced, bpf/include/conn.h: the flows program's own check, on the task's cgroup here, its
 *      answer remembered per cgroup in the shared `cgroup_answers`); an untraced task costs that one lookup and
 *      nothing else. Then the fd is resolved to its socket through the task's fdtable (typed reads, sl_kernel_cast;
 *      the file must be a socket inode), and the socket is looked up in the shared `conns` table, so the record's
 *      conn_id is the one that connection's flow records carry. An established TCP socket of a traced cgroup that
 *      is not there, a connection open before tracing could see it start, is adopted (sl_conn_adopt), so that
 *      its first call after tracing began is captured; any other socket (UDP, unix) is left alone. The call's
 *      arguments (buffer, iovec array or msghdr, in user memory), its conn_id and entry time are kept in the
 *      thread's `calls` storage (its creation failing is counted, call_table_full). A peek (MSG_PEEK) is left
 *      alone before all that: the call that then reads the bytes records them.
 *   3. On return, the thread's entry in `calls` (none or cleared: not a traced call) is taken and cleared. If the
 *      call moved bytes (ret > 0), min(ret, capture_bytes) of them are copied from user memory: the buffer, or the
 *      iovecs in order (at most SL_HTTP_MAX_IOVECS; msghdr's read at return, where the kernel left them). They are
 *      copied at return because only then do received bytes exist and is the length known; a failed copy sends
 *      what was copied, counted (copy_failed). The record is built in a per-CPU buffer and copied onto the ring at
 *      its exact size (bpf_ringbuf_output: a reservation must have a constant size, and a short call should not
 *      cost a full one); a full ring is counted (ringbuf_full).
 *   4. The record carries the call's full length (ret), what was copied and a truncated flag when that is less,
 *      the entry and return times, pid/tid, the direction, the socket's cgroup and side (from `conns`, as flows has
 *      them) and the connection's ends read from the socket at the return (sl_read_ends, as flows names them), so
 *      that an exchange says who talked without waiting for a flow record of its connection. Which time stands for
 *      a message's bytes is user space's choice (src/collector/http/capture.ts): a read's bytes exist when it
 *      returns, a write's when it enters. An adopted connection's records are flagged so (its parser may start in
 *      the middle of a message).
 * A tracepoint program is skipped when another tracing program runs on that CPU; the kernel counts it in the
 * program's recursion_misses (reported as program_skipped): a skipped entry loses that call's record, a skipped
 * return leaves its `calls` entry until the thread's next call of the nine replaces or clears it (enter()).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* Bytes each record copies at most, from 0 to SL_HTTP_CAPTURE_MAX (http.captureBytes, checked by the loader). */
const volatile __u32 capture_bytes = 256;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} http_ring SEC(".maps");

/* How the call's bytes are laid out in user memory. */
enum call_layout {
	CALL_BUFFER = 1, /* write, read, sendto, recvfrom: one buffer */
	CALL_IOVEC = 2,  /* writev, readv: an iovec array */
	CALL_MSGHDR = 3, /* sendmsg, recvmsg: a struct user_msghdr pointing to an iovec array */
	CALL_FILE = 4,   /* sendfile64: the bytes come from a file in the kernel, not from user memory: none copied */
};

/* A traced call between its entry and its return, in its thread's `calls` storage. Never leaves the kernel. */
struct pending_call {
	__u64 conn_id;
	__u64 cgroup_id;
	__u64 start_ns;
	__u64 args;   /* the buffer, iovec array or msghdr */
	__u64 iovcnt; /* CALL_IOVEC: iovecs at args */
	__u64 sk;     /* the socket, valid until the return: the call holds its file */
	__u8 layout;  /* enum call_layout; 0: the thread has no traced call in progress */
	__u8 direction;
	__u8 side;    /* enum sl_flow_side, from `conns` */
	__u8 adopted; /* the connection's entry is flagged SL_FLOW_FLAG_ADOPTED */
	__u8 _pad0[4];
};

/*
 * Each thread's traced call in progress (a thread is in one syscall at a time): task-local storage rather than a
 * hash keyed by pid_tgid, because the kernel keeps it on the task itself, so the entry and the return find it
 * without hashing or taking a bucket lock, a call reuses the thread's entry instead of allocating and freeing one,
 * and the entry goes with its thread. Created at a thread's first traced call (a failed creation is counted,
 * call_table_full).
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending_call);
} calls SEC(".maps");

/*
 * Where a record is built: the fixed part, then room for twice the largest copy, so that a copy at any offset up to
 * SL_HTTP_CAPTURE_MAX of any length up to it stays inside (what the verifier can prove of an iovec loop). Per CPU:
 * a tracepoint program runs to its end on its CPU without another of ours starting there.
 */
struct chunk_buffer {
	__u8 bytes[sizeof(struct sl_http_chunk_record) + 2 * SL_HTTP_CAPTURE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct chunk_buffer);
} chunk_buffers SEC(".maps");

/* Whether the calling task's cgroup (or an ancestor) is traced: its id from a helper, the answer remembered. */
static __always_inline int current_is_traced(void)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	int known = sl_cgroup_remembered(cgroup_id);

	if (known >= 0)
		return known;
	return sl_cgroup_remember(bpf_get_current_task_btf()->cgroups->dfl_cgrp, &cgroup_id);
}

/*
 * The sock behind `task`'s fd, or NULL when the fd is not a socket. Typed reads (sl_kernel_cast) but for the slot
 * of the fd array, a pointer to pointers, which only a helper can read.
 */
static __always_inline struct sock *socket_of(struct task_struct *task, __u64 fd)
{
	struct fdtable *fdt = task->files->fdt;
	struct socket *socket;
	struct file *slot, *file;

	if (fd >= fdt->max_fds)
		return NULL;
	if (bpf_probe_read_kernel(&slot, sizeof(slot), &fdt->fd[fd]) || !slot)
		return NULL;
	file = sl_kernel_cast(slot, struct file);
	if ((file->f_inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	socket = sl_kernel_cast(file->private_data, struct socket);
	return socket ? socket->sk : NULL;
}

/*
 * A traced task's call: its arguments wait in `calls` for the return when the fd is a socket flows tracks. Any other
 * call of a traced task (a file, a pipe, an untracked socket, a peek) clears the thread's entry instead: an entry
 * left by a return program the kernel skipped would otherwise give this call's return the bytes of a file under
 * that earlier connection's id.
 */
static __always_inline void enter(__u64 fd, __u64 args, __u64 iovcnt, __u8 layout, __u8 direction, bool peek)
{
	struct task_struct *task;
	struct sl_conn_state *state = NULL;
	struct pending_call *call;
	struct sock *sk = NULL;

	if (!current_is_traced())
		return;
	task = bpf_get_current_task_btf();
	if (!peek)
		sk = socket_of(task, fd);
	if (sk)
		state = sl_conn_lookup(sk);
	if (sk && !state)
		state = sl_conn_adopt(sk);
	call = bpf_task_storage_get(&calls, task, 0, state ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!call) {
		if (state)
			sl_count_drop(SL_DROP_CALL_TABLE_FULL);
		return;
	}
	if (!state) {
		call->layout = 0;
		return;
	}
	call->conn_id = state->conn_id;
	call->cgroup_id = state->cgroup_id;
	call->sk = (__u64)sk;
	call->side = state->side;
	call->adopted = (state->flags & SL_FLOW_FLAG_ADOPTED) != 0;
	call->args = args;
	call->iovcnt = iovcnt;
	call->direction = direction;
	call->start_ns = bpf_ktime_get_ns();
	call->layout = layout;
}

/* Copies up to `want` bytes of the iovecs at `iovs`, in order, to `data`; returns how many were copied. */
static __always_inline __u32 copy_iovecs(__u8 *data, const struct iovec *iovs, __u64 count, __u32 want)
{
	__u32 copied = 0;

	for (int i = 0; i < SL_HTTP_MAX_IOVECS; i++) {
		struct iovec iov;
		__u32 offset;
		__u64 n;

		if (i >= count || copied >= want)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), &iovs[i]))
			goto failed;
		n = want - copied;
		if (iov.iov_len < n)
			n = iov.iov_len;
		/*
		 * For the verifier, which cannot follow copied < want <= SL_HTTP_CAPTURE_MAX through the loop: an offset
		 * below the bound and a length up to it stay inside the buffer (twice the bound). Neither changes a value;
		 * barrier_var keeps the compiler, which can follow it, from removing them.
		 */
		offset = copied;
		barrier_var(offset);
		offset &= SL_HTTP_CAPTURE_MAX - 1;
		barrier_var(n);
		if (n > SL_HTTP_CAPTURE_MAX)
			break;
		if (bpf_probe_read_user(data + offset, n, iov.iov_base))
			goto failed;
		copied += n;
	}
	return copied;
failed:
	sl_count_drop(SL_DROP_COPY_FAILED);
	return copied;
}

static __always_inline __u32 copy_bytes(__u8 *data, const struct pending_call *call, __u32 want)
{
	struct user_msghdr msg;

	switch (call->layout) {
	case CALL_BUFFER:
		if (bpf_probe_read_user(data, want, (const void *)call->args)) {
			sl_count_drop(SL_DROP_COPY_FAILED);
			return 0;
		}
		return want;
	case CALL_IOVEC:
		return copy_iovecs(data, (const struct iovec *)call->args, call->iovcnt, want);
	case CALL_FILE:
		return 0;
	default:
		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)call->args)) {
			sl_count_drop(SL_DROP_COPY_FAILED);
			return 0;
		}
		return copy_iovecs(data, msg.msg_iov, msg.msg_iovlen, want);
	}
}

static __always_inline void leave(long ret)
{
	struct pending_call *pending = bpf_task_storage_get(&calls, bpf_get_current_task_btf(), 0, 0);
	struct sl_http_chunk_record *r;
	struct pending_call call;
	struct chunk_buffer *buffer;
	__u32 zero = 0, want, copied;
	__u64 id;

	if (!pending || !pending->layout)
		return;
	call = *pending;
	pending->layout = 0;
	if (ret <= 0)
		return;
	buffer = bpf_map_lookup_elem(&chunk_buffers, &zero);
	if (!buffer)
		return;
	r = (struct sl_http_chunk_record *)buffer->bytes;
	want = capture_bytes < SL_HTTP_CAPTURE_MAX ? capture_bytes : SL_HTTP_CAPTURE_MAX;
	if ((__u64)ret < want)
		want = ret;
	copied = copy_bytes(r->data, &call, want);
	barrier_var(copied); /* the check below is never true, but the verifier needs it for the output's size */
	if (copied > SL_HTTP_CAPTURE_MAX)
		return;
	r->header.type = SL_RECORD_HTTP_CHUNK;
	r->header.version = SL_RECORD_VERSION_HTTP_CHUNK;
	r->header.size = sizeof(*r) + copied;
	r->header.ts_ns = bpf_ktime_get_ns();
	id = bpf_get_current_pid_tgid();
	r->conn_id = call.conn_id;
	r->cgroup_id = call.cgroup_id;
	r->call_start_ns = call.start_ns;
	r->length = ret;
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->copied = copied;
	r->direction = call.direction;
	r->flags = (copied < (__u64)ret ? SL_HTTP_CHUNK_TRUNCATED : 0) | (call.adopted ? SL_HTTP_CHUNK_ADOPTED : 0);
	r->side = call.side;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	r->family = sl_read_ends((const void *)call.sk, call.side, r->client_addr, r->server_addr, &r->client_port,
				 &r->server_port);
	sl_output_record(&http_ring, r, sizeof(*r) + copied);
}

/* recv(2)'s flag: the bytes are returned but stay queued, for a later call to read again (socket.h). */
#define SL_MSG_PEEK 0x2
/* For a call without flags: the flags argument it does not have. */
#define NO_FLAGS -1

/*
 * One entry and one return program per call; args[0] is the fd of all nine (sendfile's out_fd). A peek (recvfrom,
 * recvmsg with MSG_PEEK; wget peeks at each response's head before reading it) is not recorded: the bytes it returns
 * come again with the call that reads them, and recording both would give the parser the bytes twice.
 */
#define TRACE_CALL(call, layout, direction, flags_arg)                                        \
	SEC("tracepoint/syscalls/sys_enter_" #call)                                           \
	int http_enter_##call(struct trace_event_raw_sys_enter *ctx)                          \
	{                                                                                     \
		enter(ctx->args[0], ctx->args[1], ctx->args[2], layout, direction,           \
		      flags_arg != NO_FLAGS && (ctx->args[flags_arg] & SL_MSG_PEEK));           \
		return 0;                                                                     \
	}                                                                                     \
	SEC("tracepoint/syscalls/sys_exit_" #call)                                            \
	int http_exit_##call(struct trace_event_raw_sys_exit *ctx)                            \
	{                                                                                     \
		leave(ctx->ret);                                                              \
		return 0;                                                                     \
	}

TRACE_CALL(write, CALL_BUFFER, SL_HTTP_SENT, NO_FLAGS)
TRACE_CALL(writev, CALL_IOVEC, SL_HTTP_SENT, NO_FLAGS)
TRACE_CALL(sendto, CALL_BUFFER, SL_HTTP_SENT, NO_FLAGS)
TRACE_CALL(sendmsg, CALL_MSGHDR, SL_HTTP_SENT, NO_FLAGS)
/*
 * sendfile64(out_fd, in_fd, offset, count): a static file's body (nginx's `sendfile on`) leaves from the page cache.
 * Its record carries the length and no bytes (cut to nothing), so the parser counts them as the body they are; else
 * the next message's bytes would be taken for that body. splice(2) is not traced (proxies move bodies with it).
 */
TRACE_CALL(sendfile64, CALL_FILE, SL_HTTP_SENT, NO_FLAGS)
TRACE_CALL(read, CALL_BUFFER, SL_HTTP_RECEIVED, NO_FLAGS)
TRACE_CALL(readv, CALL_IOVEC, SL_HTTP_RECEIVED, NO_FLAGS)
TRACE_CALL(recvfrom, CALL_BUFFER, SL_HTTP_RECEIVED, 3) /* recvfrom(fd, buf, len, flags, addr, addrlen) */
TRACE_CALL(recvmsg, CALL_MSGHDR, SL_HTTP_RECEIVED, 2)  /* recvmsg(fd, msg, flags) */
