// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * http: the first bytes of every send and receive of a traced TCP connection, for the collector's HTTP/1.x parser
 * (src/collector/http/). The kernel does not parse anything: it copies, user space frames and pairs.
 *
 * Hooks and algorithm:
 *   1. The raw tracepoints sock:sock_send_length and sock:sock_recv_length, which the kernel fires at the end of
 *      every sendmsg and recvmsg of a socket (write, writev, sendto, sendmsg, read, readv, recvfrom, recvmsg, and
 *      the sendmsg of a sendfile or splice), with the socket, the call's result and its flags. They are given the
 *      socket, so the socket is looked up in the shared `conns` table straight away (its record then carries the
 *      conn_id that connection's flow records carry): no walk from a file descriptor to its socket, no check of the
 *      calling task, and nothing at all for a call that is not on a socket (files, pipes: the bulk of a node's
 *      reads and writes). An established TCP socket of a traced cgroup that `conns` does not hold, a connection
 *      open before tracing could see it start, is adopted (sl_conn_adopt, bpf/include/conn.h), so that its first
 *      call after tracing began is captured; any other socket (UDP, unix, an untraced cgroup's) costs that lookup
 *      and a few reads of the socket. A peek (MSG_PEEK: wget peeks at each response's head) is left alone: the
 *      call that then reads the bytes records them; so are reads of the urgent byte and of the error queue.
 *      Measured against the syscall tracepoints this replaces (an entry and a return program per call, each
 *      resolving the fd through the task's fdtable): see bench http-live and bench syscall-tracing in the README.
 *   2. Where the bytes are: the calling thread's registers as the syscall entered (bpf_task_pt_regs: x86-64's
 *      orig_ax names the syscall, di/si/dx hold its arguments, and the kernel leaves them untouched until the
 *      return). For read/write/recvfrom/sendto the buffer, for readv/writev the iovec array, for recvmsg/sendmsg
 *      the msghdr pointing to it; min(ret, capture_bytes) of them are copied from user memory, the iovecs in order
 *      (at most SL_HTTP_MAX_IOVECS), or min(ret, head_bytes) when those first bytes begin a start line and the
 *      call is longer, or when the previous call of that direction began a head without ending it (copied again:
 *      the head of a message is longer than the bytes a body call needs). A call whose bytes are not in user
 *      memory (sendfile, splice) or that these
 *      registers do not describe (sendmmsg, io_uring, a 32-bit process) gets a record with its length and no
 *      bytes, cut short, so that the parser counts them as the bytes they are. A failed copy sends what was
 *      copied, counted (copy_failed). The record is built in a per-CPU buffer and copied onto the ring at its exact
 *      size (bpf_ringbuf_output: a reservation must have a constant size, and a short call should not cost a full
 *      one); a full ring is counted (ringbuf_full).
 *   3. When: a received message's bytes exist when the receive returns, the tracepoint's time. A sent message's
 *      time is when the send began (the parser measures a request from its last byte sent to its response's first
 *      byte received): the raw tracepoint tcp:tcp_sendmsg_locked, at the start of TCP's send (and once per segment
 *      it builds), notes the socket and the time in the thread's `send_starts` storage the first time it fires in
 *      a send; sock_send_length takes it. Without one (its creation failed, or the program was skipped) the send
 *      is timed at its end.
 *   4. The record carries the call's full length (ret), what was copied and a truncated flag when that is less,
 *      the time (header.ts_ns, and call_start_ns as in 3), pid/tid, the direction, the socket's cgroup and side
 *      (from `conns`, as flows has them) and the connection's ends read from the socket (sl_read_ends, as flows
 *      names them), so that an exchange says who talked without waiting for a flow record of its connection. An
 *      adopted connection's records are flagged so (its parser may start in the middle of a message).
 *   5. Once per call across layouts: while a layout change has two installations attached, a call is recorded by
 *      the first program that runs for it (http_last_calls, which says where that fails), and a retired
 *      installation records nothing (bpf/include/retire.h).
 * A raw tracepoint program is skipped when it fires while it already runs on that CPU; the kernel counts it in the
 * program's recursion_misses (reported as program_skipped): a skipped send or receive loses that call's record.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "conn.h"
#include "retire.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Bytes each record copies at most, from 0 to SL_HTTP_CAPTURE_MAX (http.captureBytes, checked by the loader). */
const volatile __u32 capture_bytes = 256;
/*
 * Bytes copied of a call whose first capture_bytes begin with an HTTP/1.x start line (http.headBytes, up to
 * SL_HTTP_CAPTURE_MAX): a head (cookies, long URLs, nginx's head for a large file) that capture_bytes would cut, so
 * that its framing is read, while the calls of bodies cost only capture_bytes.
 */
const volatile __u32 head_bytes = 8192;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} http_ring SEC(".maps");

/* How the call's bytes are laid out in user memory. */
enum call_layout {
	CALL_UNSEEN = 0, /* not in user memory (sendfile, splice), or a call the registers do not describe: none copied */
	CALL_BUFFER = 1, /* write, read, sendto, recvfrom: one buffer */
	CALL_IOVEC = 2,  /* writev, readv: an iovec array */
	CALL_MSGHDR = 3, /* sendmsg, recvmsg: a struct user_msghdr pointing to an iovec array */
};

/* A send in progress on its thread, from tcp_sendmsg_locked to sock_send_length. Never leaves the kernel. */
struct send_start {
	__u64 sk; /* the socket; 0 when none is in progress (taken by sock_send_length) */
	__u64 start_ns;
};

/*
 * Each thread's send in progress (a thread is in one syscall at a time): task-local storage rather than a hash keyed
 * by pid_tgid, because the kernel keeps it on the task itself, so both programs find it without hashing or taking a
 * bucket lock, a send reuses the thread's entry instead of allocating and freeing one, and the entry goes with its
 * thread. Created at a thread's first send on a tracked socket.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct send_start);
} send_starts SEC(".maps");

/*
 * The last call each thread recorded: the socket, the direction, where the call left the socket's byte stream
 * (tcp_sock write_seq after a send, copied_seq after a receive) and the installation whose program recorded it.
 * Shared by every layout of this object, pinned by name with the maps of bpf/include/conn.h (so, like `conns`, its
 * layout changes only together with a new name, and the one upgrade that brings the new name repeats calls again).
 * While two layouts are attached (the instant of a layout change, src/collector/installed-source.ts) the programs
 * of one call run one after the other on the calling thread, the older layout's first, and the second finds the
 * call recorded by the other installation and records nothing; it then forgets the mark, so that a mark makes one
 * call skipped at most. Each call of a thread moves the stream (ret > 0 bytes before the position is read), so a
 * position names one call of a thread, with these exceptions:
 *   - another thread's call on the socket between the two programs' reads moves the position: that call is
 *     recorded twice;
 *   - where calls do not move the stream (a sockmap redirect, kTLS holding a record open), a call just after the
 *     older programs were detached can match the mark of the thread's last call they recorded, and is skipped.
 * One installation alone never skips a call: its own marks do not count.
 */
struct last_call {
	__u64 sk;
	__u64 installation; /* retire.h's word of the installation that recorded the call, the retired bit cleared */
	__u32 stream_end;
	__u8 direction;
	__u8 _pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct last_call);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} http_last_calls SEC(".maps");

/*
 * Where a record is built: the fixed part, then room for twice the largest copy, so that a copy at any offset up to
 * SL_HTTP_CAPTURE_MAX of any length up to it stays inside (what the verifier can prove of an iovec loop). One per
 * CPU, taken by the CPU's number: a tracepoint program runs to its end on its CPU without another of ours starting
 * there. An array indexed by CPU rather than a per-CPU array, whose values the kernel limits to 32 KiB (this one is
 * larger); the loader sizes it to the possible CPUs (src/collector/http/kernel.ts).
 */
struct chunk_buffer {
	__u8 bytes[sizeof(struct sl_http_chunk_record) + 2 * SL_HTTP_CAPTURE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* the possible CPUs, set by the loader */
	__type(key, __u32);
	__type(value, struct chunk_buffer);
} chunk_buffers SEC(".maps");

/* The call's arguments, as the syscall entered with them. */
struct call_args {
	__u64 args;   /* the buffer, iovec array or msghdr */
	__u64 iovcnt; /* CALL_IOVEC: iovecs at args */
	__u8 layout;  /* enum call_layout */
};

/* x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of the calls whose bytes are copied. */
enum {
	NR_READ = 0,
	NR_WRITE = 1,
	NR_READV = 19,
	NR_WRITEV = 20,
	NR_SENDTO = 44,
	NR_RECVFROM = 45,
	NR_SENDMSG = 46,
	NR_RECVMSG = 47,
};

/* The code segment of a 64-bit task (__USER_CS): a 32-bit task's syscalls have other numbers and arguments. */
#define USER_CS_64 0x33

/* Which syscall the current thread is in, and where its bytes are: its registers at entry. */
static __always_inline void current_call(struct call_args *call)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

	call->layout = CALL_UNSEEN;
	if (!regs || (regs->cs & 0xffff) != USER_CS_64)
		return;
	call->args = regs->si;
	call->iovcnt = regs->dx;
	switch (regs->orig_ax) {
	case NR_READ:
	case NR_WRITE:
	case NR_SENDTO:
	case NR_RECVFROM:
		call->layout = CALL_BUFFER;
		break;
	case NR_READV:
	case NR_WRITEV:
		call->layout = CALL_IOVEC;
		break;
	case NR_SENDMSG:
	case NR_RECVMSG:
		call->layout = CALL_MSGHDR;
		break;
	default:
		break;
	}
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

static __always_inline __u32 copy_bytes(__u8 *data, const struct call_args *call, __u32 want)
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
	case CALL_MSGHDR:
		if (bpf_probe_read_user(&msg, sizeof(msg), (const void *)call->args)) {
			sl_count_drop(SL_DROP_COPY_FAILED);
			return 0;
		}
		return copy_iovecs(data, msg.msg_iov, msg.msg_iovlen, want);
	default:
		return 0;
	}
}

/* Longest method token taken as one (the parser's MAX_METHOD_LENGTH). */
#define MAX_METHOD_LENGTH 20

/*
 * Whether `data` (copied bytes) begins like an HTTP/1.x request or status line: `HTTP/1.` or a method token (upper
 * case, '-', '_') and a space. Body bytes that look so only cost a longer copy; the parser decides.
 */
static __always_inline bool begins_start_line(const __u8 *data, __u32 copied)
{
	if (copied >= 7 && data[0] == 'H' && data[1] == 'T' && data[2] == 'T' && data[3] == 'P' && data[4] == '/' &&
	    data[5] == '1' && data[6] == '.')
		return true;
	for (int i = 0; i <= MAX_METHOD_LENGTH; i++) {
		__u8 byte;

		if (i >= copied)
			return false;
		byte = data[i];
		if (byte == ' ')
			return i > 0;
		if (!((byte >= 'A' && byte <= 'Z') || byte == '-' || byte == '_'))
			return false;
	}
	return false;
}

/* Whether the copy ends with the blank line that ends a head (CRLF CRLF): nothing of the message follows it here. */
static __always_inline bool ends_head(const __u8 *data, __u32 copied)
{
	__u32 at = copied - 4;

	if (copied < 4 || copied > SL_HTTP_CAPTURE_MAX)
		return false;
	barrier_var(at);
	at &= SL_HTTP_CAPTURE_MAX - 1; /* no change (copied <= the bound), for the verifier */
	return data[at] == '\r' && data[at + 1] == '\n' && data[at + 2] == '\r' && data[at + 3] == '\n';
}

/*
 * http_open_head counts the bytes copied of a head that goes on in later calls in units of this many (rounded up):
 * SL_HTTP_CAPTURE_MAX, the largest head the parser takes, is 128 of them, which a byte holds.
 */
#define HEAD_UNIT 128

/* One record for a call of `ret` bytes on the tracked socket `sk`, its bytes timed at `at_ns`. */
static __always_inline void record(const void *sk, struct sl_conn_state *state, long ret, __u8 direction,
				   __u64 at_ns)
{
	struct sl_http_chunk_record *r;
	struct chunk_buffer *buffer;
	struct call_args call;
	__u8 *open_head = &state->http_open_head[direction == SL_HTTP_SENT ? 0 : 1];
	__u32 cpu = bpf_get_smp_processor_id(), want, copied, first, head;
	bool starts;
	__u64 id;

	buffer = bpf_map_lookup_elem(&chunk_buffers, &cpu);
	if (!buffer)
		return;
	r = (struct sl_http_chunk_record *)buffer->bytes;
	current_call(&call);
	want = capture_bytes < SL_HTTP_CAPTURE_MAX ? capture_bytes : SL_HTTP_CAPTURE_MAX;
	if ((__u64)ret < want)
		want = ret;
	copied = copy_bytes(r->data, &call, want);
	starts = begins_start_line(r->data, copied);
	/*
	 * A head the first copy cut (a call longer than capture_bytes that begins a message, or that goes on with a head
	 * calls before began without ending it: nginx reads a request into 1 KiB first, then 8 KiB at a time; Go's
	 * net/http writes a response through a 4 KiB buffer): copied again, longer. A failed copy leaves nothing of what
	 * it copied: then the first copy is made again.
	 */
	if (copied == want && (__u64)ret > want && head_bytes > want && (starts || *open_head)) {
		first = copied;
		want = head_bytes < SL_HTTP_CAPTURE_MAX ? head_bytes : SL_HTTP_CAPTURE_MAX;
		if ((__u64)ret < want)
			want = ret;
		copied = copy_bytes(r->data, &call, want);
		if (copied < first)
			copied = copy_bytes(r->data, &call, first);
	}
	/*
	 * Whether the next call of this direction is copied as one that goes on with a message this call began or went
	 * on with: this call's copy is whole, the message's bytes so far are fewer than the parser takes for a head, and
	 * either this call began the message (the next may hold the rest of its head, or its body and the messages after
	 * it: a client reads pipelined responses together, and the first one's body, sent by sendfile, may come apart
	 * from its head), or the head goes on (the copy does not end with its blank line). A call of a head and the start
	 * of its body also says so (longer copies of the next calls, up to that bound); every call decides again.
	 */
	if (starts)
		head = copied;
	else if (*open_head && !ends_head(r->data, copied))
		head = *open_head * HEAD_UNIT + copied;
	else
		head = 0;
	if (copied != (__u64)ret || head >= SL_HTTP_CAPTURE_MAX)
		head = 0;
	head = (head + HEAD_UNIT - 1) / HEAD_UNIT; /* the units http_open_head keeps */
	if (*open_head != head)
		*open_head = head;
	barrier_var(copied); /* the check below is never true, but the verifier needs it for the output's size */
	if (copied > SL_HTTP_CAPTURE_MAX)
		return;
	r->header.type = SL_RECORD_HTTP_CHUNK;
	r->header.version = SL_RECORD_VERSION_HTTP_CHUNK;
	r->header.size = sizeof(*r) + copied;
	r->header.ts_ns = bpf_ktime_get_ns();
	id = bpf_get_current_pid_tgid();
	r->conn_id = state->conn_id;
	r->cgroup_id = state->cgroup_id;
	r->call_start_ns = at_ns ? at_ns : r->header.ts_ns;
	r->length = ret;
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->copied = copied;
	r->direction = direction;
	r->flags = (copied < (__u64)ret ? SL_HTTP_CHUNK_TRUNCATED : 0) |
		   (state->flags & SL_FLOW_FLAG_ADOPTED ? SL_HTTP_CHUNK_ADOPTED : 0);
	r->side = state->side;
	__builtin_memset(r->_pad0, 0, sizeof(r->_pad0));
	r->family = sl_read_ends(sk, state->side, r->client_addr, r->server_addr, &r->client_port, &r->server_port);
	sl_output_record(&http_ring, r, sizeof(*r) + copied);
}

/*
 * Whether another installation's program already recorded this call (http_last_calls); notes it as this thread's
 * last recorded call otherwise (`installation`: this one's word, retire.h). Without the thread's storage (its creation failed) the call is recorded.
 */
static __always_inline bool recorded_already(const void *sk, __u8 direction, __u64 installation)
{
	const struct tcp_sock *tp = sk;
	__u64 self = installation & ~SL_RETIRED;
	struct last_call *last;
	__u32 end;

	end = direction == SL_HTTP_SENT ? BPF_CORE_READ(tp, write_seq) : BPF_CORE_READ(tp, copied_seq);
	last = bpf_task_storage_get(&http_last_calls, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!last)
		return false;
	if (last->sk == (__u64)sk && last->stream_end == end && last->direction == direction && last->installation != self) {
		last->sk = 0; /* one skipped call per mark */
		return true;
	}
	last->sk = (__u64)sk;
	last->installation = self;
	last->stream_end = end;
	last->direction = direction;
	return false;
}

/*
 * recv(2)'s flags whose bytes are not the stream's next ones (socket.h): MSG_PEEK returns bytes that stay queued,
 * for a later call to read again; MSG_OOB the urgent byte, which is not in the stream; MSG_ERRQUEUE the socket's
 * error queue (timestamps, zerocopy completions).
 */
#define SL_MSG_PEEK 0x2
#define SL_MSG_OOB 0x1
#define SL_MSG_ERRQUEUE 0x2000

/* tcp_sendmsg_locked(sk, msg, skb, size_goal): TCP's send began (or built its next segment) on the socket. */
SEC("raw_tp/tcp_sendmsg_locked")
int http_send_start(struct bpf_raw_tracepoint_args *ctx)
{
	const void *sk = (const void *)ctx->args[0];
	struct send_start *start;

	if (!sl_conn_lookup(sk))
		return 0;
	start = bpf_task_storage_get(&send_starts, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	/* Only the send's first segment: the message's bytes began to leave then. */
	if (start && start->sk != (__u64)sk) {
		start->sk = (__u64)sk;
		start->start_ns = bpf_ktime_get_ns();
	}
	return 0;
}

/* sock_send_length(sk, ret, flags): a sendmsg of the socket returned `ret`. */
SEC("raw_tp/sock_send_length")
int http_sent(struct bpf_raw_tracepoint_args *ctx)
{
	const void *sk = (const void *)ctx->args[0];
	int ret = (int)ctx->args[1];
	struct sl_conn_state *state;
	__u64 installation = sl_installation_word();
	struct send_start *start;
	__u64 start_ns = 0;

	/* Taken whatever the send's result, so that a failed send leaves no start to the next one. */
	start = bpf_task_storage_get(&send_starts, bpf_get_current_task_btf(), 0, 0);
	if (start && start->sk == (__u64)sk) {
		start_ns = start->start_ns;
		start->sk = 0;
	}
	if (ret <= 0 || (installation & SL_RETIRED))
		return 0;
	state = sl_conn_tracked(sk);
	if (!state)
		state = sl_conn_closed(sk); /* closed by a reset the send drew (bpf/include/conn.h) */
	if (state && !recorded_already(sk, SL_HTTP_SENT, installation))
		record(sk, state, ret, SL_HTTP_SENT, start_ns);
	return 0;
}

/* sock_recv_length(sk, ret, flags): a recvmsg of the socket returned `ret`. */
SEC("raw_tp/sock_recv_length")
int http_received(struct bpf_raw_tracepoint_args *ctx)
{
	const void *sk = (const void *)ctx->args[0];
	int ret = (int)ctx->args[1];
	int flags = (int)ctx->args[2];
	__u64 installation = sl_installation_word();
	struct sl_conn_state *state;

	if (ret <= 0 || (flags & (SL_MSG_PEEK | SL_MSG_OOB | SL_MSG_ERRQUEUE)) || (installation & SL_RETIRED))
		return 0;
	state = sl_conn_tracked(sk);
	if (!state)
		state = sl_conn_closed(sk); /* bytes that came before the reset that closed it (bpf/include/conn.h) */
	if (state && !recorded_already(sk, SL_HTTP_RECEIVED, installation))
		record(sk, state, ret, SL_HTTP_RECEIVED, 0);
	return 0;
}
