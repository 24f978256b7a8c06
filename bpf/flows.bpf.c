// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * flows: one record per TCP connection and side, with exact byte counts and TCP health, plus interim records for
 * long-lived connections.
 *
 * Hooks and algorithm:
 *   1. flow_sock_ops, a sock_ops program the collector attaches to each traced cgroup, follows each connection from
 *      start to end. It runs for the sockets of that cgroup and below (a socket belongs to the cgroup of the process
 *      that created it; an accepted socket to its listener's). Cgroup programs have no recursion guard: the kernel
 *      never skips them, so no connection's start or end can be missed (tracepoint programs are skipped when they
 *      fire inside another BPF program on that CPU, e.g. in a softirq that interrupted one).
 *      a. TCP_CONNECT_CB (connect(), process context, as the SYN is about to leave) starts a client-side entry in
 *         `conns`, with the owner; PASSIVE_ESTABLISHED_CB (handshake completed on an accepted socket, softirq)
 *         starts a server-side entry.
 *         Only sockets whose cgroup, or an ancestor of it, is in `traced_cgroups` are tracked, and never sockets of
 *         the agent's own cgroup: the decision is made here, once; later hooks, here and in other programs, look
 *         the socket up in `conns` (and adopt it, 5, if it is not there). The entry's conn_id comes from the
 *         `conn_ids` counter. Those maps are the connection tracking of bpf/include/conn.h, shared with other
 *         programs when the loader gives them one pin directory. A tracked socket gets state callbacks
 *         (BPF_SOCK_OPS_STATE_CB_FLAG).
 *      b. SYN_SENT -> ESTABLISHED: the handshake time, and the SYN retransmits (every retransmit so far).
 *      c. -> FIN_WAIT1 or -> LAST_ACK: close() or shutdown() queued our FIN, in the owner's process context.
 *      d. -> CLOSE emits the final record (counters read from struct tcp_sock, how it ended per close_flags())
 *         and forgets the socket. The callback runs first thing in tcp_set_state(), before the kernel unhashes
 *         the socket, releases its port or sends an abort's RST.
 *   2. The owner (pid, comm) is the first process seen using the socket: connect(), then the raw tracepoints
 *      tcp_rcv_space_adjust (recvmsg() copied data) and tcp_sendmsg_locked (sendmsg()), which run in the reading or
 *      writing process, and close()/shutdown() (1c). Other hooks run in softirq context, where "current" is
 *      whoever was interrupted.
 *   3. The raw tracepoint tcp_probe (each segment received on an established socket) emits an interim record when
 *      the last record of that connection is older than `active_timeout_ns`. An idle connection emits nothing
 *      until it carries traffic again or closes.
 *   4. The raw tracepoint tcp_send_reset flags a reset sent while the socket is still open (the kernel's own
 *      aborts: keepalive or orphan timers, memory limits, a socket kill).
 *   5. A connection open before tracing could see it start (the collector's first start on a busy node, a cgroup
 *      newly traced) is adopted by tcp_probe at the first segment it receives (sl_conn_adopt, conn.h: flagged
 *      ADOPTED, its side read from the socket), and ended by the raw tracepoint inet_sock_set_state, since only
 *      sock_ops can give a socket state callbacks and only at its start. Its records carry the kernel's counters
 *      since the connection began, as every record does; its start is when tracing first saw it.
 * Nothing is lost silently: a full ring or a full `conns` table is counted in `drops` by reason. A raw tracepoint
 * program is skipped when it fires while it already runs on that CPU; the kernel counts each skip in the program's
 * recursion_misses, which the collector reports as drop reason program_skipped. A skip delays an owner, an interim
 * record or an adoption, or loses a reset flag; it never loses a connection tracked from its start or its final
 * record. An adopted connection's end comes from a tracepoint, so a skip there loses its final record (counted
 * as program_skipped) and leaves its entry behind until a socket tracked from its start reuses the address.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"
#include "conn.h"
#include "retire.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EPIPE 32
#define ECONNRESET 104
#define ECONNREFUSED 111

const volatile __u64 active_timeout_ns = 10000000000; /* interim record period for open connections */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} flow_ring SEC(".maps");

static __always_inline void take_process(struct sl_conn_state *state)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	state->pid = pid_tgid >> 32;
	state->tid = (__u32)pid_tgid;
	bpf_get_current_comm(state->comm, sizeof(state->comm));
}

/* Returns whether the socket is now tracked. */
static __always_inline int start_tracking(struct sock *sk, __u8 side)
{
	struct sl_conn_state state = { .side = side, .start_ns = bpf_ktime_get_ns() };

	if (!sl_cgroup_is_traced(BPF_CORE_READ(sk, sk_cgrp_data.cgroup), &state.cgroup_id))
		return 0;
	state.conn_id = sl_conn_new_id();
	state.last_record_ns = state.start_ns;
	if (side == SL_SIDE_SERVER) {
		state.established_ns = state.start_ns;
		state.flags = SL_FLOW_FLAG_ESTABLISHED;
	} else {
		take_process(&state); /* connect() runs in the owner */
	}
	/* BPF_ANY: an entry left by an earlier socket at the same kernel address (a close we never saw) is replaced. */
	return sl_conn_insert(sk, &state, BPF_ANY) == 0;
}

static __always_inline int fin_acknowledged(struct tcp_sock *tp, struct sl_conn_state *state)
{
	return (state->flags & SL_FLOW_FLAG_FIN_SENT) && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq);
}

/*
 * The kernel's byte counters count sequence space: bytes_acked includes the client's SYN and our FIN once the peer
 * acknowledged them, bytes_received includes the peer's FIN. Records carry payload bytes, so those are taken out.
 */
static __always_inline __u64 payload_sent(struct tcp_sock *tp, struct sl_conn_state *state)
{
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 control = 0;

	if (state->side == SL_SIDE_CLIENT && (state->flags & SL_FLOW_FLAG_ESTABLISHED))
		control++; /* our SYN; a server socket is born after its SYN-ACK was acknowledged */
	if (fin_acknowledged(tp, state))
		control++; /* our FIN, the last sequence number */
	return acked > control ? acked - control : 0;
}

static __always_inline __u64 payload_received(struct tcp_sock *tp, __u8 *flags)
{
	__u64 received = BPF_CORE_READ(tp, bytes_received);
	unsigned long sk_flags = BPF_CORE_READ((struct sock *)tp, __sk_common.skc_flags);

	/* tcp_fin() sets SOCK_DONE when the peer's FIN is taken in order, after counting it in bytes_received. */
	if (sk_flags & (1UL << SOCK_DONE)) {
		*flags |= SL_FLOW_FLAG_FIN_RECEIVED;
		return received ? received - 1 : 0;
	}
	return received;
}

/*
 * How a connection ended, from what the kernel shows as the socket enters CLOSE (the flag a reset sent earlier left
 * comes on top; transform.ts names the close reasons from these flags):
 *   - sk_err ECONNREFUSED, ECONNRESET or EPIPE: tcp_reset() took an incoming RST (ECONNREFUSED also for an ICMP
 *     port unreachable answering our SYN): RST_RECEIVED;
 *   - any other sk_err (ETIMEDOUT from the SYN, retransmission or keepalive timers, ECONNABORTED from a socket
 *     kill, an ICMP error): ERROR;
 *   - no error, after the handshake, and not an orderly end: the kernel is aborting the connection and sends its
 *     RST right after this transition: close() with unread data, close() with SO_LINGER 0, connect(AF_UNSPEC),
 *     a listener closed with connections it never accepted: RST_SENT. An orderly end is our FIN acknowledged,
 *     and from FIN_WAIT2 also the peer's FIN received or the socket orphaned (the hand-over to a time-wait
 *     socket); FIN_WAIT2 without either is close() with unread data after shutdown(SHUT_WR).
 * Not distinguishable here, and documented with the reasons: an orphaned FIN_WAIT2 socket aborted because
 * TCP_LINGER2 is negative or memory ran out reads as orderly, and data arriving after close() (which Linux
 * answers through tcp_reset() and then an RST) reads as RST_RECEIVED.
 */
static __always_inline __u8 close_flags(struct tcp_sock *tp, struct sl_conn_state *state, int old_state)
{
	struct sock *sk = (struct sock *)tp;
	int err = BPF_CORE_READ(sk, sk_err);
	unsigned long sk_flags;

	if (err == ECONNREFUSED || err == ECONNRESET || err == EPIPE)
		return SL_FLOW_FLAG_RST_RECEIVED;
	if (err)
		return SL_FLOW_FLAG_ERROR;
	if (old_state == TCP_SYN_SENT || !fin_acknowledged(tp, state))
		return old_state == TCP_SYN_SENT ? 0 : SL_FLOW_FLAG_RST_SENT;
	sk_flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	if (old_state == TCP_FIN_WAIT2 && !(sk_flags & ((1UL << SOCK_DONE) | (1UL << SOCK_DEAD))))
		return SL_FLOW_FLAG_RST_SENT;
	return 0;
}

static __always_inline void emit(struct sock *sk, struct sl_conn_state *state, __u8 kind, __u8 tcp_state)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct sl_flow_record *r =
		sl_reserve_record(&flow_ring, struct sl_flow_record, SL_RECORD_FLOW, SL_RECORD_VERSION_FLOW);

	if (!r)
		return;
	r->conn_id = state->conn_id;
	r->start_ns = state->start_ns;
	r->cgroup_id = state->cgroup_id;
	r->flags = state->flags;
	r->bytes_sent = payload_sent(tp, state);
	r->bytes_received = payload_received(tp, &r->flags);
	r->segs_sent = BPF_CORE_READ(tp, segs_out);
	r->segs_received = BPF_CORE_READ(tp, segs_in);
	r->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	r->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	r->retransmits = BPF_CORE_READ(tp, total_retrans);
	r->syn_retransmits = state->syn_retransmits;
	r->connect_us = state->side == SL_SIDE_CLIENT && state->established_ns
				? (state->established_ns - state->start_ns) / 1000
				: 0;
	r->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->pid = state->pid;
	r->tid = state->tid;
	r->record_seq = state->records++;
	r->side = state->side;
	r->kind = kind;
	r->last_state = tcp_state;
	r->_pad0 = 0;
	__builtin_memcpy(r->comm, state->comm, sizeof(r->comm));

	r->family = sl_read_ends(sk, state->side, r->client_addr, r->server_addr, &r->client_port, &r->server_port);
	sl_submit_record(&flow_ring, r);
}

static __always_inline void state_change(struct sock *sk, int old_state, int new_state)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct sl_conn_state *state = sl_conn_lookup(sk);

	if (!state)
		return;
	/* Before the handshake completes, the only segment a client retransmits is its SYN. */
	if (old_state == TCP_SYN_SENT)
		state->syn_retransmits = BPF_CORE_READ(tp, total_retrans);
	if (old_state == TCP_SYN_SENT && new_state == TCP_ESTABLISHED) {
		state->established_ns = bpf_ktime_get_ns();
		state->flags |= SL_FLOW_FLAG_ESTABLISHED;
	}
	/* close() or shutdown() by the owner, which queues our FIN: process context, even on a server socket. */
	if (new_state == TCP_FIN_WAIT1 || new_state == TCP_LAST_ACK) {
		state->flags |= SL_FLOW_FLAG_FIN_SENT;
		if (!state->pid)
			take_process(state);
	}
	if (new_state == TCP_CLOSE) {
		state->flags |= close_flags(tp, state, old_state);
		emit(sk, state, SL_FLOW_FINAL, old_state);
		sl_conn_forget(sk, state);
	}
}

SEC("sockops")
int flow_sock_ops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *socket = skops->sk;
	struct tcp_sock *tp;
	__u8 side;

	if (!socket || sl_retired())
		return 1;
	/* A typed pointer (PTR_TO_BTF_ID) the verifier lets us read struct tcp_sock through. */
	tp = bpf_skc_to_tcp_sock(socket);
	if (!tp)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		side = skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB ? SL_SIDE_CLIENT : SL_SIDE_SERVER;
		/* The flags are the socket's, shared with any other sock_ops program: add ours, keep theirs. */
		if (!start_tracking((struct sock *)tp, side))
			break;
		/* Without state callbacks the connection would never end: forget it, and count it. */
		if (bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG)) {
			__u64 key = (__u64)tp;

			bpf_map_delete_elem(&conns, &key);
			sl_count_drop(SL_DROP_TRACKING_FAILED);
		}
		break;
	case BPF_SOCK_OPS_STATE_CB:
		state_change((struct sock *)tp, skops->args[0], skops->args[1]);
		break;
	}
	/* 1 = success, and `reply` left alone: the kernel's defaults for every op that asks for a value. */
	return 1;
}

static __always_inline void take_owner(const void *skaddr)
{
	struct sl_conn_state *state;

	if (sl_retired())
		return;
	state = sl_conn_lookup(skaddr);
	if (state && !state->pid)
		take_process(state);
}

SEC("raw_tp/tcp_rcv_space_adjust")
int flow_owner_read(struct bpf_raw_tracepoint_args *ctx)
{
	take_owner((const void *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/tcp_sendmsg_locked")
int flow_owner_write(struct bpf_raw_tracepoint_args *ctx)
{
	take_owner((const void *)ctx->args[0]);
	return 0;
}

SEC("raw_tp/tcp_probe")
int flow_interim(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	struct sl_conn_state *state;
	__u64 now;

	if (sl_retired())
		return 0;
	state = sl_conn_tracked(sk);
	if (!state)
		return 0;
	now = bpf_ktime_get_ns();
	if (now - state->last_record_ns < active_timeout_ns)
		return 0;
	state->last_record_ns = now;
	emit(sk, state, SL_FLOW_INTERIM, TCP_ESTABLISHED);
	return 0;
}

SEC("raw_tp/tcp_send_reset")
int flow_reset_sent(struct bpf_raw_tracepoint_args *ctx)
{
	/* The socket is NULL for an RST answering a segment no socket owns: no entry has that key. */
	struct sl_conn_state *state;

	if (sl_retired())
		return 0;
	state = sl_conn_lookup((const void *)ctx->args[0]);
	if (state)
		state->flags |= SL_FLOW_FLAG_RST_SENT;
	return 0;
}

/*
 * The state changes of an adopted connection (sl_conn_adopt), which has no sock_ops state callbacks. The tracepoint
 * fires in tcp_set_state() after the sock_ops callback and, for CLOSE, after the kernel unhashed the socket and
 * released its port: what state_change() and emit() read is still there (sl_read_ends reads inet_sport, which the
 * release leaves). It fires for every socket's every state change; a socket tracked from its start is left to
 * flow_sock_ops, so that no connection ends twice.
 */
SEC("raw_tp/inet_sock_set_state")
int flow_adopted_state(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	struct sl_conn_state *state;

	if (sl_retired())
		return 0;
	state = sl_conn_lookup(sk);
	if (state && (state->flags & SL_FLOW_FLAG_ADOPTED))
		state_change(sk, ctx->args[1], ctx->args[2]);
	return 0;
}
