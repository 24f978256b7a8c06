// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * flows: one record per TCP connection and side, with exact byte counts and TCP health, plus interim records for
 * long-lived connections.
 *
 * Hooks and algorithm:
 *   1. sock/inet_sock_set_state CLOSE -> SYN_SENT (connect(), process context) starts a client-side entry;
 *      SYN_RECV -> ESTABLISHED (handshake completed on a child socket) starts a server-side entry. Only sockets
 *      whose cgroup, or an ancestor of it, is in `traced_cgroups` are tracked, and never sockets of the agent's
 *      own cgroup (the agent's sockets): the decision is made here, once; later hooks only look the socket up in `conns`.
 *   2. The pid and comm are taken only on transitions that run in the owning process (connect, close, shutdown);
 *      other transitions run in softirq context, where "current" is whoever was interrupted.
 *   3. tcp/tcp_retransmit_skb counts SYN retransmits; tcp/tcp_receive_reset and tcp/tcp_send_reset flag resets.
 *   4. tcp/tcp_probe (each segment received on an established socket) emits an interim record when the last
 *      record of that connection is older than `active_timeout_ns`. An idle connection emits nothing until it
 *      carries traffic again or closes.
 *   5. -> CLOSE emits the final record (counters read from struct tcp_sock) and forgets the socket.
 * Nothing is lost silently: a full ring or a full `conns` table is counted in `drops` by reason.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MAX_CGROUP_DEPTH 16
#define E2BIG 7

const volatile __u64 agent_cgroup_id = 0;            /* sockets of this cgroup are never traced */
const volatile __u64 active_timeout_ns = 10000000000; /* interim record period for open connections */

__u64 next_conn_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} flow_ring SEC(".maps");

/* cgroup ids whose sockets (and their descendants' sockets) are traced; written by the collector. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} traced_cgroups SEC(".maps");

/* What the kernel does not keep for us until close; private to this program. */
struct conn_state {
	__u64 conn_id;
	__u64 start_ns;
	__u64 established_ns;
	__u64 last_record_ns;
	__u64 cgroup_id;
	__u32 pid;
	__u32 tid;
	__u32 syn_retransmits;
	__u32 records;
	__u8 side;
	__u8 flags;
	__u8 _pad[6];
	char comm[16];
};

/* Keyed by the socket's kernel address: stable for the socket's life, and the key every tcp tracepoint carries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_state);
} conns SEC(".maps");

static __always_inline int cgroup_is_traced(struct sock *sk, __u64 *cgroup_id)
{
	struct cgroup *cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	int level = BPF_CORE_READ(cgrp, level);
	int traced = 0;

	*cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	/* The agent's own sockets live in its own cgroup (which may be the root, an ancestor of everything). */
	if (*cgroup_id == agent_cgroup_id)
		return 0;
	for (int i = 0; i < MAX_CGROUP_DEPTH; i++) {
		struct cgroup *ancestor;
		__u64 id;

		if (i > level)
			break;
		if (bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[i]))
			return 0;
		id = BPF_CORE_READ(ancestor, kn, id);
		if (bpf_map_lookup_elem(&traced_cgroups, &id))
			traced = 1;
	}
	return traced;
}

static __always_inline void take_process(struct conn_state *state)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	state->pid = pid_tgid >> 32;
	state->tid = (__u32)pid_tgid;
	bpf_get_current_comm(state->comm, sizeof(state->comm));
}

static __always_inline void start_tracking(__u64 key, struct sock *sk, __u8 side, int process_context)
{
	struct conn_state state = { .side = side, .start_ns = bpf_ktime_get_ns() };

	if (!cgroup_is_traced(sk, &state.cgroup_id))
		return;
	state.conn_id = __sync_fetch_and_add(&next_conn_id, 1);
	state.last_record_ns = state.start_ns;
	if (side == SL_SIDE_SERVER) {
		state.established_ns = state.start_ns;
		state.flags = SL_FLOW_FLAG_ESTABLISHED;
	}
	if (process_context)
		take_process(&state);
	/* BPF_ANY: an entry left by a socket whose close we missed (same kernel address, reused) is replaced. */
	if (bpf_map_update_elem(&conns, &key, &state, BPF_ANY) == -E2BIG)
		sl_count_drop(SL_DROP_CONN_TABLE_FULL);
}

/* 16-byte address of the socket's local or remote end, IPv4 stored v4-mapped. */
static __always_inline void read_addr(__u8 out[16], __u16 family, const __u8 *v4, const __u8 *v6)
{
	if (family == AF_INET) {
		__builtin_memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		bpf_probe_read_kernel(out + 12, 4, v4);
	} else {
		bpf_probe_read_kernel(out, 16, v6);
	}
}

/*
 * The kernel's byte counters count sequence space: bytes_acked includes the client's SYN and our FIN once the peer
 * acknowledged them, bytes_received includes the peer's FIN. Records carry payload bytes, so those are taken out.
 */
static __always_inline __u64 payload_sent(struct tcp_sock *tp, struct conn_state *state)
{
	__u64 acked = BPF_CORE_READ(tp, bytes_acked);
	__u64 control = 0;

	if (state->side == SL_SIDE_CLIENT && (state->flags & SL_FLOW_FLAG_ESTABLISHED))
		control++; /* our SYN; a server socket is born after its SYN-ACK was acknowledged */
	if ((state->flags & SL_FLOW_FLAG_FIN_SENT) && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq))
		control++; /* our FIN, the last sequence number, is acknowledged */
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

static __always_inline void emit(struct sock *sk, struct conn_state *state, __u8 kind, __u8 tcp_state)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct sl_flow_record *r =
		sl_reserve_record(&flow_ring, struct sl_flow_record, SL_RECORD_FLOW, SL_RECORD_VERSION_FLOW);
	__u16 family, local_port, remote_port;
	__u8 *local, *remote;

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

	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->family = family;
	/* inet_sport, not skc_num: the kernel zeroes skc_num (releasing the port) before the CLOSE tracepoint. */
	local_port = __builtin_bswap16(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	remote_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (state->side == SL_SIDE_CLIENT) {
		local = r->client_addr;
		remote = r->server_addr;
		r->client_port = local_port;
		r->server_port = remote_port;
	} else {
		local = r->server_addr;
		remote = r->client_addr;
		r->server_port = local_port;
		r->client_port = remote_port;
	}
	read_addr(local, family, (const __u8 *)&sk->__sk_common.skc_rcv_saddr,
		  (const __u8 *)&sk->__sk_common.skc_v6_rcv_saddr);
	read_addr(remote, family, (const __u8 *)&sk->__sk_common.skc_daddr,
		  (const __u8 *)&sk->__sk_common.skc_v6_daddr);
	sl_submit_record(&flow_ring, r);
}

SEC("tracepoint/sock/inet_sock_set_state")
int flow_state_change(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	__u64 key = (__u64)ctx->skaddr;
	int old_state = ctx->oldstate, new_state = ctx->newstate;
	struct conn_state *state;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	if (new_state == TCP_SYN_SENT) {
		start_tracking(key, sk, SL_SIDE_CLIENT, 1);
		return 0;
	}
	if (old_state == TCP_SYN_RECV && new_state == TCP_ESTABLISHED) {
		start_tracking(key, sk, SL_SIDE_SERVER, 0);
		return 0;
	}
	state = bpf_map_lookup_elem(&conns, &key);
	if (!state)
		return 0;
	if (old_state == TCP_SYN_SENT && new_state == TCP_ESTABLISHED) {
		state->established_ns = bpf_ktime_get_ns();
		state->flags |= SL_FLOW_FLAG_ESTABLISHED;
	}
	/* close() or shutdown() by the owner, which queues our FIN: process context, even on a server socket. */
	if ((old_state == TCP_ESTABLISHED && new_state == TCP_FIN_WAIT1) ||
	    (old_state == TCP_CLOSE_WAIT && new_state == TCP_LAST_ACK)) {
		state->flags |= SL_FLOW_FLAG_FIN_SENT;
		if (!state->pid)
			take_process(state);
	}
	if (new_state == TCP_CLOSE) {
		emit(sk, state, SL_FLOW_FINAL, old_state);
		bpf_map_delete_elem(&conns, &key);
	}
	return 0;
}

SEC("tracepoint/tcp/tcp_probe")
int flow_interim(struct trace_event_raw_tcp_probe *ctx)
{
	__u64 key = (__u64)ctx->skaddr;
	struct conn_state *state = bpf_map_lookup_elem(&conns, &key);
	__u64 now;

	if (!state)
		return 0;
	now = bpf_ktime_get_ns();
	if (now - state->last_record_ns < active_timeout_ns)
		return 0;
	state->last_record_ns = now;
	emit((struct sock *)ctx->skaddr, state, SL_FLOW_INTERIM, TCP_ESTABLISHED);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int flow_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	__u64 key = (__u64)ctx->skaddr;
	struct conn_state *state = bpf_map_lookup_elem(&conns, &key);

	if (state && ctx->state == TCP_SYN_SENT)
		state->syn_retransmits++;
	return 0;
}

static __always_inline void flag_reset(const void *skaddr, __u8 flag)
{
	__u64 key = (__u64)skaddr;
	struct conn_state *state = bpf_map_lookup_elem(&conns, &key);

	if (state)
		state->flags |= flag;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int flow_reset_received(struct trace_event_raw_tcp_event_sk *ctx)
{
	flag_reset(ctx->skaddr, SL_FLOW_FLAG_RST_RECEIVED);
	return 0;
}

SEC("tracepoint/tcp/tcp_send_reset")
int flow_reset_sent(struct trace_event_raw_tcp_send_reset *ctx)
{
	flag_reset(ctx->skaddr, SL_FLOW_FLAG_RST_SENT);
	return 0;
}
