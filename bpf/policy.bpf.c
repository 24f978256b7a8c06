// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * policy: Kubernetes NetworkPolicy enforced per pod, from the maps src/enforcer/apply/ writes (their contents are the
 * MapState of src/enforcer/compile/map-state.ts; layouts in bpf/include/records.h).
 *
 * Hooks (attached to the cgroups holding the node's pods; they run for every socket below):
 *   1. Egress. cgroup/connect4 and connect6 judge a TCP connect() and a UDP connect() (a connected UDP socket then
 *      talks to that peer only); cgroup/sendmsg4 and sendmsg6 judge each datagram an unconnected UDP socket sends
 *      with an address. A denial returns 0: the call fails with EPERM and nothing leaves.
 *   2. Ingress. cgroup_skb/ingress sees each packet delivered to a socket of the pod, and judges only what opens
 *      something new: a TCP SYN without ACK, and a UDP datagram to an unconnected socket. A denial drops the packet
 *      (the client sees a timeout, as with the e2e suite's expectations). Everything else passes, because it belongs to
 *      a flow a hook already judged: a TCP segment other than a bare SYN reaches a socket only through a connection
 *      whose SYN was judged here (accepted) or at connect (own), or is answered with a reset; the SYN-ACK of an own
 *      connection carries ACK; a datagram to a connected UDP socket comes from the peer its connect() was judged for
 *      (the kernel delivers nothing else to it). A SYN cookie's ACK needs the SYN-ACK of a judged SYN. SCTP as TCP: an
 *      INIT chunk opens an association and is judged, the rest belongs to one (egress SCTP goes through the connect
 *      hooks like TCP). Other protocols (ICMP) pass: NetworkPolicy leaves them undefined.
 *   3. Replies of unconnected UDP sockets. NetworkPolicy allows the answers of an allowed exchange. A datagram that
 *      passes one direction of an unconnected socket, while its pod is isolated for the other direction, notes
 *      (socket cookie, peer address, peer port) in the LRU `udp_flows`; a datagram of the other direction to or from
 *      that peer within `udp_reply_window_ns` of the last one passes as a reply without a lookup.
 *
 * Algorithm of one decision (map-state.ts "lookup order"; explain.ts evaluates the same in TS):
 *   a. generation = the one `active_generation` points at, read once: every later lookup uses it.
 *   b. subject = cgroup_identity[socket's cgroup id]; none: pass (not a pod). The enforcer writes the cgroup id of
 *      each container of each local pod (the cgroup a socket takes from the process that creates it), so the lookup
 *      is exact, without walking ancestors. Egress uses the calling process's cgroup (connect and sendmsg run in
 *      it: the process that creates the connection is the one judged), ingress the receiving socket's.
 *   c. isolation[subject, direction]; none: pass (no policy selects the pod for that direction).
 *   d. peers: endpoints[peer address] (a pod), prefixes[peer address] (longest ipBlock prefix), and any (0).
 *   e. for each peer, for protocol then any: policy LPM[subject, direction, protocol, peer, port]; an entry without
 *      the audit flag allows (stop). At most six lookups.
 *   f. otherwise: the isolation's audit flag passes it as audit (audit-allow when an audit entry matched, else
 *      audit-deny); no flag denies.
 * Every denial and audit-deny is reported on `verdict_ring`; allows and audit-allows one in `allow_sample_every`.
 * A full ring is counted in `drops` (SL_DROP_RINGBUF_FULL), never silent. Only the installation `verdict_reporter`
 * names reports: of two layouts attached at an upgrade, both enforce and one reports.
 *
 * Atomic changes: every key holds a generation (0 or 1), so each map holds two complete policies. The apply step
 * writes the whole new state into the inactive generation, then points `active_generation` (an ARRAY_OF_MAPS of one
 * slot) at the inner map `generation_0` or `generation_1` that holds that number, then brings the other generation
 * up to date. Why this shape:
 *   - one index read once per decision: no decision mixes two generations (a relabeled pod's new identity, its
 *     cgroup's entry and its rules change together);
 *   - the flip is an update of a map-in-map, after which the kernel waits for an RCU grace period before the
 *     syscall returns (kernel/bpf/syscall.c maybe_wait_bpf_programs): when it returns, no program still runs with
 *     the old generation, so rewriting that generation right away cannot be seen half done. A plain array index
 *     would give no such moment to user space;
 *   - the generation in the key rather than two sets of maps: one pinned map per kind, read back and diffed as one,
 *     with no inner-map file descriptors to carry across enforcer restarts; the memory is the same as two copies.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "common.bpf.h"
#include "retire.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_SYN 0x02
#define SCTP_CHUNK_INIT 1
#define IPV6_MAX_EXTENSION_HEADERS 4
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_DEST 60

const volatile __u32 allow_sample_every = 0;                /* report one allow in N; 0: none */
const volatile __u64 udp_reply_window_ns = 120000000000ULL; /* as conntrack's UDP stream timeout */

struct generation_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
};

/* Each holds its own number at index 0 (user space writes generation_1's 1 at install). */
struct generation_map generation_0 SEC(".maps");
struct generation_map generation_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct generation_map);
} active_generation SEC(".maps") = {
	.values = { &generation_0 },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct sl_cgroup_identity_key);
	__type(value, __u64);
} cgroup_identity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 65536);
	__type(key, struct sl_endpoint_key);
	__type(value, __u64);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_prefix_key);
	__type(value, __u64);
} prefixes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 16384);
	__type(key, struct sl_isolation_key);
	__type(value, __u32);
} isolation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 2 * 262144);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sl_policy_key);
	__type(value, __u32);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct sl_udp_flow_key);
	__type(value, __u64);
} udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} verdict_ring SEC(".maps");

/*
 * The installation that reports verdicts: its id (bits 1-63 of its `retired` word, bpf/include/retire.h; 0 before an
 * enforcer wrote one). Shared by every layout, pinned by name: while an upgrade has two layouts attached, both
 * enforce, and one update of this word moves the reporting from the old one to the new one, so a decision is
 * reported by one of them (the one exception: a decision whose two programs run on either side of that update is
 * reported by both). The enforcer then reads the old ring to its end (src/enforcer/apply/kernel.ts).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} verdict_reporter SEC(".maps");

static __always_inline bool reports_verdicts(void)
{
	__u32 zero = 0;
	__u64 *reporter = bpf_map_lookup_elem(&verdict_reporter, &zero);

	return reporter && *reporter == sl_installation_word() >> 1;
}

/* One decision in the making. Ports in host byte order; `port` is the destination port, the one rules name. */
struct decision {
	__u64 cgroup_id;
	__u64 subject;
	__u64 peer;
	__u64 peer_prefix;
	__u64 socket_cookie;
	__u32 generation;
	__u8 local_addr[16];
	__u8 peer_addr[16];
	__u16 local_port;
	__u16 peer_port;
	__u16 port;
	__u8 direction;
	__u8 protocol;
	__u8 verdict;
	__u8 hook;
};

static __always_inline void v4_mapped(__u8 out[16], __u32 addr_be)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr_be, 4);
}

static __always_inline void v6_copy(__u8 out[16], const __u32 words[4])
{
	__u32 copy[4] = { words[0], words[1], words[2], words[3] };

	__builtin_memcpy(out, copy, 16);
}

/* Steps a and b: whether the socket is a pod's; sets generation and subject. */
static __always_inline int find_subject(struct decision *d)
{
	struct sl_cgroup_identity_key key = { .cgroup_id = d->cgroup_id };
	__u32 zero = 0, *generation;
	__u64 *subject;
	void *active;

	active = bpf_map_lookup_elem(&active_generation, &zero);
	if (!active)
		return 0;
	generation = bpf_map_lookup_elem(active, &zero);
	if (!generation)
		return 0;
	d->generation = *generation & 1;
	key.generation = d->generation;
	subject = bpf_map_lookup_elem(&cgroup_identity, &key);
	if (!subject)
		return 0;
	d->subject = *subject;
	return 1;
}

/* Step c: the isolation flags of (subject, direction), or -1 when the subject is open in that direction. */
static __always_inline long isolation_of(const struct decision *d, __u8 direction)
{
	struct sl_isolation_key key = { .subject = d->subject, .generation = d->generation, .direction = direction };
	__u32 *flags = bpf_map_lookup_elem(&isolation, &key);

	return flags ? (long)*flags : -1;
}

enum rule_match {
	NO_RULE = 0,
	AUDIT_RULE = 1,
	ENFORCING_RULE = 2,
};

/* Step e for one peer: the protocol's entry, then the any-protocol one. */
static __always_inline enum rule_match rule_for(const struct decision *d, __u64 peer)
{
	struct sl_policy_key key = {
		.prefixlen = 176,
		.generation = d->generation,
		.direction = d->direction,
		.protocol = d->protocol,
		.subject = d->subject,
		.peer = peer,
		.port = bpf_htons(d->port),
	};
	enum rule_match match = NO_RULE;
	__u32 *flags;

	flags = bpf_map_lookup_elem(&policy, &key);
	if (flags) {
		if (!(*flags & SL_POLICY_FLAG_AUDIT))
			return ENFORCING_RULE;
		match = AUDIT_RULE;
	}
	key.protocol = 0;
	flags = bpf_map_lookup_elem(&policy, &key);
	if (flags) {
		if (!(*flags & SL_POLICY_FLAG_AUDIT))
			return ENFORCING_RULE;
		match = AUDIT_RULE;
	}
	return match;
}

/* Steps d to f for an isolated subject; sets peer, peer_prefix and verdict. */
static __always_inline void decide(struct decision *d, __u32 isolation_flags)
{
	struct sl_endpoint_key endpoint = { .generation = d->generation };
	struct sl_prefix_key prefix = { .prefixlen = 32 + 128, .generation = d->generation };
	enum rule_match match = NO_RULE, found;
	__u64 *identity;

	__builtin_memcpy(endpoint.addr, d->peer_addr, 16);
	__builtin_memcpy(prefix.addr, d->peer_addr, 16);
	identity = bpf_map_lookup_elem(&endpoints, &endpoint);
	d->peer = identity ? *identity : 0;
	identity = bpf_map_lookup_elem(&prefixes, &prefix);
	d->peer_prefix = identity ? *identity : 0;

	if (d->peer) {
		found = rule_for(d, d->peer);
		if (found == ENFORCING_RULE)
			goto allow;
		match |= found;
	}
	if (d->peer_prefix) {
		found = rule_for(d, d->peer_prefix);
		if (found == ENFORCING_RULE)
			goto allow;
		match |= found;
	}
	found = rule_for(d, 0);
	if (found == ENFORCING_RULE)
		goto allow;
	match |= found;
	if (isolation_flags & SL_POLICY_FLAG_AUDIT)
		d->verdict = match == AUDIT_RULE ? SL_VERDICT_AUDIT_ALLOW : SL_VERDICT_AUDIT_DENY;
	else
		d->verdict = SL_VERDICT_DENY;
	return;
allow:
	d->verdict = SL_VERDICT_ALLOW;
}

static __always_inline void report(const struct decision *d)
{
	struct sl_verdict_record *record;
	int egress = d->direction == SL_DIRECTION_EGRESS;

	if (d->verdict == SL_VERDICT_ALLOW || d->verdict == SL_VERDICT_AUDIT_ALLOW) {
		if (!allow_sample_every || bpf_get_prandom_u32() % allow_sample_every)
			return;
	}
	if (!reports_verdicts())
		return;
	record = sl_reserve_record(&verdict_ring, struct sl_verdict_record, SL_RECORD_VERDICT, SL_RECORD_VERSION_VERDICT);
	if (!record)
		return;
	record->cgroup_id = d->cgroup_id;
	record->subject = d->subject;
	record->peer = d->peer;
	record->peer_prefix = d->peer_prefix;
	__builtin_memcpy(record->src_addr, egress ? d->local_addr : d->peer_addr, 16);
	__builtin_memcpy(record->dst_addr, egress ? d->peer_addr : d->local_addr, 16);
	record->src_port = egress ? d->local_port : d->peer_port;
	record->dst_port = d->port;
	record->protocol = d->protocol;
	record->direction = d->direction;
	record->verdict = d->verdict;
	record->hook = d->hook;
	record->generation = d->generation;
	record->_pad0 = 0;
	sl_submit_record(&verdict_ring, record);
}

static __always_inline struct sl_udp_flow_key udp_flow_key(const struct decision *d)
{
	struct sl_udp_flow_key key = { .socket_cookie = d->socket_cookie, .peer_port = d->peer_port };

	__builtin_memcpy(key.peer_addr, d->peer_addr, 16);
	return key;
}

/* Step 3: a datagram answering one that passed the other direction of this socket recently. */
static __always_inline int udp_reply(const struct decision *d)
{
	struct sl_udp_flow_key key = udp_flow_key(d);
	__u64 *last = bpf_map_lookup_elem(&udp_flows, &key);

	return last && bpf_ktime_get_ns() - *last <= udp_reply_window_ns;
}

/* Step 3: lets the answers of a datagram that passed in, when the pod is isolated for the other direction. */
static __always_inline void note_udp_flow(const struct decision *d)
{
	__u8 other = d->direction == SL_DIRECTION_EGRESS ? SL_DIRECTION_INGRESS : SL_DIRECTION_EGRESS;
	struct sl_udp_flow_key key;
	__u64 now;

	if (isolation_of(d, other) < 0)
		return;
	key = udp_flow_key(d);
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&udp_flows, &key, &now, BPF_ANY);
}

/* The whole decision for a pod's socket: 1 passes, 0 refuses. */
static __always_inline int judge(struct decision *d)
{
	int datagram = d->hook != SL_HOOK_CONNECT && d->protocol == IPPROTO_UDP;
	long flags;

	if (!find_subject(d))
		return 1;
	if (datagram && udp_reply(d))
		return 1;
	flags = isolation_of(d, d->direction);
	if (flags >= 0) {
		decide(d, (__u32)flags);
		report(d);
		if (d->verdict == SL_VERDICT_DENY)
			return 0;
	}
	if (datagram)
		note_udp_flow(d);
	return 1;
}

static __always_inline int judge_egress4(struct bpf_sock_addr *ctx, __u8 hook, __u32 src_ip4)
{
	struct decision d = { .direction = SL_DIRECTION_EGRESS, .hook = hook, .protocol = ctx->protocol };
	struct bpf_sock *sk = ctx->sk;

	d.cgroup_id = bpf_get_current_cgroup_id();
	d.socket_cookie = bpf_get_socket_cookie(ctx);
	v4_mapped(d.peer_addr, ctx->user_ip4);
	d.peer_port = d.port = bpf_ntohs((__u16)ctx->user_port);
	if (sk) {
		v4_mapped(d.local_addr, src_ip4 ? src_ip4 : sk->src_ip4);
		d.local_port = sk->src_port;
	}
	return judge(&d);
}

static __always_inline int judge_egress6(struct bpf_sock_addr *ctx, __u8 hook, int from_message)
{
	struct decision d = { .direction = SL_DIRECTION_EGRESS, .hook = hook, .protocol = ctx->protocol };
	struct bpf_sock *sk = ctx->sk;
	__u32 src[4] = {};

	d.cgroup_id = bpf_get_current_cgroup_id();
	d.socket_cookie = bpf_get_socket_cookie(ctx);
	src[0] = ctx->user_ip6[0];
	src[1] = ctx->user_ip6[1];
	src[2] = ctx->user_ip6[2];
	src[3] = ctx->user_ip6[3];
	v6_copy(d.peer_addr, src);
	d.peer_port = d.port = bpf_ntohs((__u16)ctx->user_port);
	if (from_message) {
		src[0] = ctx->msg_src_ip6[0];
		src[1] = ctx->msg_src_ip6[1];
		src[2] = ctx->msg_src_ip6[2];
		src[3] = ctx->msg_src_ip6[3];
	} else {
		src[0] = src[1] = src[2] = src[3] = 0;
	}
	if (sk) {
		if (!(src[0] | src[1] | src[2] | src[3])) {
			src[0] = sk->src_ip6[0];
			src[1] = sk->src_ip6[1];
			src[2] = sk->src_ip6[2];
			src[3] = sk->src_ip6[3];
		}
		d.local_port = sk->src_port;
	}
	v6_copy(d.local_addr, src);
	return judge(&d);
}

SEC("cgroup/connect4")
int policy_connect4(struct bpf_sock_addr *ctx)
{
	return judge_egress4(ctx, SL_HOOK_CONNECT, 0);
}

SEC("cgroup/connect6")
int policy_connect6(struct bpf_sock_addr *ctx)
{
	return judge_egress6(ctx, SL_HOOK_CONNECT, 0);
}

SEC("cgroup/sendmsg4")
int policy_sendmsg4(struct bpf_sock_addr *ctx)
{
	return judge_egress4(ctx, SL_HOOK_SENDMSG, ctx->msg_src_ip4);
}

SEC("cgroup/sendmsg6")
int policy_sendmsg6(struct bpf_sock_addr *ctx)
{
	return judge_egress6(ctx, SL_HOOK_SENDMSG, 1);
}

/* The IP header's addresses and the offset of the transport header (of any protocol); 0 when it cannot be read. */
static __always_inline __u32 parse_ip(struct __sk_buff *skb, struct decision *d)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		v4_mapped(d->peer_addr, ip.saddr);
		v4_mapped(d->local_addr, ip.daddr);
		d->protocol = ip.protocol;
		return ip.ihl * 4;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip;
		struct ipv6_opt_hdr extension;
		__u32 offset = sizeof(ip);
		__u8 next;
		int i;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		__builtin_memcpy(d->peer_addr, &ip.saddr, 16);
		__builtin_memcpy(d->local_addr, &ip.daddr, 16);
		next = ip.nexthdr;
		for (i = 0; i < IPV6_MAX_EXTENSION_HEADERS; i++) {
			if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST)
				break;
			if (bpf_skb_load_bytes(skb, offset, &extension, sizeof(extension)))
				return 0;
			next = extension.nexthdr;
			offset += (extension.hdrlen + 1) * 8;
		}
		d->protocol = next;
		return offset;
	}
	return 0;
}

SEC("cgroup_skb/ingress")
int policy_ingress(struct __sk_buff *skb)
{
	struct decision d = { .direction = SL_DIRECTION_INGRESS, .hook = SL_HOOK_INGRESS };
	struct bpf_sock *sk = skb->sk;
	__u32 offset;
	__u16 ports[2];

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	offset = parse_ip(skb, &d);
	if (!offset || (d.protocol != IPPROTO_TCP && d.protocol != IPPROTO_UDP && d.protocol != IPPROTO_SCTP))
		return 1;
	if (bpf_skb_load_bytes(skb, offset, ports, sizeof(ports)))
		return 1;
	if (d.protocol == IPPROTO_TCP) {
		__u8 flags;

		if (bpf_skb_load_bytes(skb, offset + 13, &flags, 1))
			return 1;
		if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
			return 1;
	} else if (d.protocol == IPPROTO_SCTP) {
		__u8 chunk;

		/* The first chunk after the 12-byte common header: only an INIT opens an association. */
		if (bpf_skb_load_bytes(skb, offset + 12, &chunk, 1))
			return 1;
		if (chunk != SCTP_CHUNK_INIT)
			return 1;
	} else if (sk->state == BPF_TCP_ESTABLISHED) {
		return 1; /* a connected UDP socket: its peer was judged at connect() */
	}
	d.peer_port = bpf_ntohs(ports[0]);
	d.local_port = d.port = bpf_ntohs(ports[1]);
	d.cgroup_id = bpf_skb_cgroup_id(skb);
	d.socket_cookie = bpf_get_socket_cookie(skb);
	return judge(&d);
}
