/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Connection tracking shared by every program that reports on TCP connections (flows and http), so that each
 * record about one connection carries the same conn_id: the `conns` table, the `conn_ids` counter, the set of
 * traced cgroups and the answers remembered from it. Flows starts entries as connections start and ends them all;
 * flows and http both adopt a connection that was open before tracing could see it start (sl_conn_adopt).
 *
 * Sharing: these maps are declared `pinning LIBBPF_PIN_BY_NAME`, so the sharing travels with this header into every
 * object that includes it. Where they are pinned is never libbpf's default (the bpffs root) but what the loader is
 * given (src/ebpf/pins.ts, `LoadOptions.pins`): objects loaded with one pin directory use one kernel map each, the
 * first creating and pinning it, the next reusing it; an object loaded without one gets private copies (tests, a
 * lone program). A global counter in .bss would be one per object, hence `conn_ids` is a map.
 *
 * Every object sharing a pin directory must declare and configure these maps alike (type, key, value, max_entries):
 * a mismatch is refused at load. A pinned map outlives the programs that made it, so when the layout of one changes,
 * it gets a new name (conns -> conns_v2): new programs then never adopt an old pin with another meaning (a same-size
 * field change would pass libbpf's size checks), and old and new can run side by side during an upgrade.
 *
 * Included by kernel programs after vmlinux.h and bpf_helpers.h.
 */
#ifndef SIDECARLESS_CONN_H
#define SIDECARLESS_CONN_H

#include <bpf/bpf_core_read.h>
#include "common.bpf.h" /* sl_count_drop: an adoption the table cannot take is counted */
#include "records.h"

#define SL_MAX_CGROUP_DEPTH 16
#define E2BIG 7
#define EEXIST 17

/* cgroup id -> enum sl_cgroup_mark: which cgroups' sockets (and their descendants') are traced, and the agent's;
 * written by the collector. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} traced_cgroups SEC(".maps");

/* Keyed by the socket's kernel address: stable for the socket's life, and the key every tcp tracepoint carries. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sl_conn_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conns SEC(".maps");

/* One counter at index 0: the next conn_id. Pinned, it also survives a collector restart, so ids never repeat. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conn_ids SEC(".maps");

static __always_inline struct sl_conn_state *sl_conn_lookup(const void *skaddr)
{
	__u64 key = (__u64)skaddr;

	return bpf_map_lookup_elem(&conns, &key);
}

/*
 * Puts `state` in `conns` for the socket at `skaddr` (`flags`: BPF_ANY or BPF_NOEXIST); returns the update's error.
 * A failure is counted, conn_table_full when the table is full, tracking_failed otherwise, but for BPF_NOEXIST's
 * -EEXIST, which says the socket is tracked already.
 */
static __always_inline long sl_conn_insert(const void *skaddr, struct sl_conn_state *state, __u64 flags)
{
	__u64 key = (__u64)skaddr;
	long err = bpf_map_update_elem(&conns, &key, state, flags);

	if (err && err != -EEXIST)
		sl_count_drop(err == -E2BIG ? SL_DROP_CONN_TABLE_FULL : SL_DROP_TRACKING_FAILED);
	return err;
}

static __always_inline __u64 sl_conn_new_id(void)
{
	__u32 zero = 0;
	__u64 *next = bpf_map_lookup_elem(&conn_ids, &zero);

	/* Index 0 of a one-entry array always exists; the check is for the verifier. */
	return next ? __sync_fetch_and_add(next, 1) : 0;
}

/*
 * Whether `cgrp` or one of its ancestors is marked SL_CGROUP_TRACED in `traced_cgroups`; sets *cgroup_id to cgrp's
 * id. The agent's own cgroup (which may be below a traced one) is never traced, the agent's sockets and syscalls
 * must not become records: the running collector marks it SL_CGROUP_AGENT in the map (not in the programs: a
 * collector that adopts pinned programs runs in another cgroup than the one that loaded them).
 */
static __always_inline int sl_cgroup_is_traced(struct cgroup *cgrp, __u64 *cgroup_id)
{
	int level = BPF_CORE_READ(cgrp, level);
	int traced = 0;
	__u8 *mark;

	*cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	mark = bpf_map_lookup_elem(&traced_cgroups, cgroup_id);
	if (mark && *mark == SL_CGROUP_AGENT)
		return 0;
	for (int i = 0; i < SL_MAX_CGROUP_DEPTH; i++) {
		struct cgroup *ancestor;
		__u64 id;

		if (i > level)
			break;
		if (bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[i]))
			return 0;
		id = BPF_CORE_READ(ancestor, kn, id);
		mark = bpf_map_lookup_elem(&traced_cgroups, &id);
		if (mark && *mark == SL_CGROUP_TRACED)
			traced = 1;
	}
	return traced;
}

/*
 * Whether a cgroup's sockets and tasks are traced: sl_cgroup_is_traced's answer, which walks the cgroup's ancestors
 * (a map lookup and a few kernel reads each), remembered so that an untraced cgroup costs one lookup. It is asked on
 * hot paths: http's send and receive programs and flows' tcp_probe, for every send, receive and segment of an
 * untracked socket. Measured with bench syscall-tracing when http's programs were syscall tracepoints (dd in an
 * untraced pod, entry and return programs of read and write): 121 ns per program run walking every time, 47 ns
 * remembering in a hash map.
 *
 * A direct-mapped cache rather than a hash map: the slot is the cgroup id's low bits, and an array lookup is a few
 * instructions the verifier inlines, where a hash lookup computes a hash and walks a bucket. Measured in one run of
 * bench syscall-tracing each: http's four programs 122 ns per run with an LRU hash, 95 with this (the read/write of
 * an untraced process 365 -> 303 ns slower than without the programs). Each slot is one word,
 * written and read with one 8-byte access, so a reader never sees half of another writer's answer: the id's other
 * bits, SL_ANSWER_KNOWN, and SL_ANSWER_TRACED when traced (the slot's own bits are the id's low bits, so they are
 * free). Two cgroups with one slot take turns; a lost turn only costs a walk. Cgroup ids are never reused; the
 * collector zeroes this map whenever it rewrites `traced_cgroups` (src/collector/flows/kernel.ts), the only time an
 * answer changes.
 */
#define SL_CGROUP_ANSWER_SLOTS 16384 /* a power of two */
#define SL_ANSWER_SLOT_BITS (SL_CGROUP_ANSWER_SLOTS - 1)
#define SL_ANSWER_TRACED 1
#define SL_ANSWER_KNOWN 2

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SL_CGROUP_ANSWER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cgroup_answers SEC(".maps");

/* The answer remembered for cgroup `id`: 1 traced, 0 not, -1 none remembered. */
static __always_inline int sl_cgroup_remembered(__u64 id)
{
	__u32 slot = id & SL_ANSWER_SLOT_BITS;
	__u64 *word = bpf_map_lookup_elem(&cgroup_answers, &slot);
	__u64 answer;

	if (!word)
		return -1;
	answer = *(volatile __u64 *)word;
	if (!(answer & SL_ANSWER_KNOWN) || (answer & ~(__u64)SL_ANSWER_SLOT_BITS) != (id & ~(__u64)SL_ANSWER_SLOT_BITS))
		return -1;
	return answer & SL_ANSWER_TRACED;
}

/* sl_cgroup_is_traced, its answer remembered. */
static __always_inline int sl_cgroup_remember(struct cgroup *cgrp, __u64 *cgroup_id)
{
	int traced = sl_cgroup_is_traced(cgrp, cgroup_id);
	__u32 slot = *cgroup_id & SL_ANSWER_SLOT_BITS;
	__u64 *word = bpf_map_lookup_elem(&cgroup_answers, &slot);

	if (word)
		*(volatile __u64 *)word = (*cgroup_id & ~(__u64)SL_ANSWER_SLOT_BITS) | SL_ANSWER_KNOWN |
					  (traced ? SL_ANSWER_TRACED : 0);
	return traced;
}

/* sl_cgroup_is_traced for a cgroup reached through typed reads (sl_kernel_cast), from memory when it can be. */
static __always_inline int sl_cgroup_answer(struct cgroup *cgrp, __u64 *cgroup_id)
{
	int known;

	*cgroup_id = cgrp->kn->id;
	known = sl_cgroup_remembered(*cgroup_id);
	return known >= 0 ? known : sl_cgroup_remember(cgrp, cgroup_id);
}

#define AF_INET 2
#define AF_INET6 10

/* A kernel address as a read-only typed pointer: its fields are then plain loads the kernel guards against faults, a
 * few ns each, where a bpf_probe_read_kernel helper call costs tens. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define sl_kernel_cast(ptr, type) ((type *)bpf_rdonly_cast((const void *)(ptr), bpf_core_type_id_kernel(type)))

/* 16-byte address of one end of the socket, IPv4 stored v4-mapped (records.h). */
static __always_inline void sl_read_addr(__u8 out[16], __u16 family, __be32 v4, const struct in6_addr *v6)
{
	__u32 *words = (__u32 *)out;

	if (family == AF_INET) {
		words[0] = 0;
		words[1] = 0;
		words[2] = __builtin_bswap32(0xffff); /* bytes 10 and 11 are ff ff (a little-endian target, as the ports) */
		words[3] = v4;
	} else {
		words[0] = v6->in6_u.u6_addr32[0];
		words[1] = v6->in6_u.u6_addr32[1];
		words[2] = v6->in6_u.u6_addr32[2];
		words[3] = v6->in6_u.u6_addr32[3];
	}
}

/*
 * The connection's two ends as every record names them, client and server (by the socket's `side`, enum
 * sl_flow_side, rather than local and remote); returns the socket's family. Shared by the flows and http records,
 * so that both name a connection's ends the same way. `out` must be 4-byte aligned (records.h places addresses so).
 */
static __always_inline __u16 sl_read_ends(const void *skaddr, __u8 side, __u8 client_addr[16], __u8 server_addr[16],
					  __u16 *client_port, __u16 *server_port)
{
	struct inet_sock *inet = sl_kernel_cast(skaddr, struct inet_sock);
	struct sock_common *common = &inet->sk.__sk_common;
	__u16 family = common->skc_family;
	/* inet_sport, not skc_num: the kernel zeroes skc_num when it releases the port. */
	__u16 local_port = __builtin_bswap16(inet->inet_sport);
	__u16 remote_port = __builtin_bswap16(common->skc_dport);
	__u8 *local = side == SL_SIDE_CLIENT ? client_addr : server_addr;
	__u8 *remote = side == SL_SIDE_CLIENT ? server_addr : client_addr;

	*client_port = side == SL_SIDE_CLIENT ? local_port : remote_port;
	*server_port = side == SL_SIDE_CLIENT ? remote_port : local_port;
	sl_read_addr(local, family, common->skc_rcv_saddr, &common->skc_v6_rcv_saddr);
	sl_read_addr(remote, family, common->skc_daddr, &common->skc_v6_daddr);
	return family;
}

/*
 * A connection that was open before tracing could see it start: the collector's first start on a node with
 * long-lived connections (pools, keep-alive, streams), a cgroup traced by a new configuration, a connection whose
 * tracking failed at its start. flows' tcp_probe (a segment received) and http's send and receive programs call
 * this (through sl_conn_tracked) for a socket `conns` does not hold, and it tracks the socket from then on if it
 * is an established TCP socket of a traced cgroup; an untraced socket costs one remembered answer
 * (`cgroup_answers`). Returns the entry,
 * or NULL when the socket is not to be tracked, or cannot be: a full table is counted (conn_table_full) at each
 * attempt, that is at each segment or call of the socket until an entry frees.
 *   - Flags ESTABLISHED and ADOPTED (records.h). start_ns and last_record_ns are now: the start was not seen.
 *   - Counters need nothing: flows reads the kernel's totals since the connection began, as for any connection.
 *   - The side: an accepted socket is a copy of its listener (sk_clone_lock) and keeps the listener's accept
 *     backlog, sk_max_ack_backlog, which is 0 on a socket that connect()ed. A listener made with backlog 0 would
 *     read as a client; no such server is known to us.
 *   - The end: adopted sockets get no sock_ops state callbacks (only a sock_ops program can ask for them, at the
 *     connection's start), so flows' inet_sock_set_state tracepoint ends them instead.
 * BPF_NOEXIST: two CPUs may adopt one socket at once; the first entry stays and both use it.
 */
static __always_inline struct sl_conn_state *sl_conn_adopt(const void *skaddr)
{
	struct sock *sk = sl_kernel_cast(skaddr, struct sock);
	struct sl_conn_state state = { .flags = SL_FLOW_FLAG_ESTABLISHED | SL_FLOW_FLAG_ADOPTED };
	__u8 tcp_state = sk->__sk_common.skc_state;
	long err;

	if (sk->sk_protocol != IPPROTO_TCP || sk->sk_type != SOCK_STREAM)
		return NULL;
	if (tcp_state != TCP_ESTABLISHED && tcp_state != TCP_CLOSE_WAIT)
		return NULL;
	if (!sl_cgroup_answer(sk->sk_cgrp_data.cgroup, &state.cgroup_id))
		return NULL;
	state.side = sk->sk_max_ack_backlog ? SL_SIDE_SERVER : SL_SIDE_CLIENT;
	state.conn_id = sl_conn_new_id();
	state.start_ns = bpf_ktime_get_ns();
	state.established_ns = state.start_ns;
	state.last_record_ns = state.start_ns;
	err = sl_conn_insert(skaddr, &state, BPF_NOEXIST);
	return err && err != -EEXIST ? NULL : sl_conn_lookup(skaddr);
}

/*
 * The ends of a socket's connection in one word: its port, the peer's port and the last 32 bits of the peer's
 * address. What tells a closed connection's socket from a later socket at the same kernel address.
 */
static __always_inline __u64 sl_conn_ends_word(const void *skaddr)
{
	struct inet_sock *inet = sl_kernel_cast(skaddr, struct inet_sock);
	struct sock_common *common = &inet->sk.__sk_common;
	__u32 peer = common->skc_family == AF_INET ? common->skc_daddr : common->skc_v6_daddr.in6_u.u6_addr32[3];

	return (__u64)inet->inet_sport << 48 | (__u64)common->skc_dport << 32 | peer;
}

/* A connection's `conns` entry after its close, with the ends it had (sl_conn_ends_word). Never leaves the kernel. */
struct sl_closed_conn {
	struct sl_conn_state state;
	__u64 ends;
};

/*
 * Entries `conns` let go of at their connection's close (sl_conn_forget), kept a while longer by socket address: a
 * call can return after its connection closed, with bytes that came before the reset that closed it (a receive of
 * bytes queued before a reset, or a send that drew one: the kernel handles the reset as the call releases the
 * socket, before it returns), and its record still carries the connection's id (bpf/http.bpf.c). The least recently
 * closed go first when it is full: such a call comes within microseconds of the close. An entry stays until then,
 * and the kernel soon gives its address to another socket: sl_conn_closed checks that the socket is still that
 * connection's.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct sl_closed_conn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} closed_conns SEC(".maps");

/* The connection ended (flows reported its final record): its entry moves from `conns` to `closed_conns`. */
static __always_inline void sl_conn_forget(const void *skaddr, const struct sl_conn_state *state)
{
	struct sl_closed_conn closed = { .state = *state, .ends = sl_conn_ends_word(skaddr) };
	__u64 key = (__u64)skaddr;

	bpf_map_update_elem(&closed_conns, &key, &closed, BPF_ANY);
	bpf_map_delete_elem(&conns, &key);
}

/*
 * The entry of the closed connection of the socket at `skaddr`, for a call that returned after the close; NULL for
 * any other socket: one that is not a closed TCP stream, or one at an address a closed connection's socket had (a
 * later socket, whatever it is, must not be given that connection's id).
 */
static __always_inline struct sl_conn_state *sl_conn_closed(const void *skaddr)
{
	struct sock *sk = sl_kernel_cast(skaddr, struct sock);
	struct sl_closed_conn *closed;
	__u64 key = (__u64)skaddr;

	if (sk->__sk_common.skc_state != TCP_CLOSE || sk->sk_protocol != IPPROTO_TCP || sk->sk_type != SOCK_STREAM)
		return NULL;
	closed = bpf_map_lookup_elem(&closed_conns, &key);
	if (!closed || closed->ends != sl_conn_ends_word(skaddr))
		return NULL;
	return &closed->state;
}

/* The socket's entry in `conns`, adopting it (sl_conn_adopt) when it is an untracked connection of a traced cgroup. */
static __always_inline struct sl_conn_state *sl_conn_tracked(const void *skaddr)
{
	struct sl_conn_state *state = sl_conn_lookup(skaddr);

	return state ? state : sl_conn_adopt(skaddr);
}

#endif
