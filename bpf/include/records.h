/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Every structure that crosses kernel <-> user space, and nothing else.
 *
 * Rules (checked against bpf/selftest/layouts.bpf.c, which names every type here: test/ebpf/records-layout.test.ts
 * compares each sl_* struct and enum of its BTF with the TS mirror in src/ebpf/records/layouts.ts, and
 * test/ebpf/records-golden.test.ts its golden records' bytes with the fixtures in test/ebpf/fixtures/):
 *   - fixed-width types only; padding is an explicit field named _pad*; sizes pinned by _Static_assert;
 *   - constants user space reads are enumerators, not #defines: BTF carries enums, so they can be checked;
 *   - every ring record starts with struct sl_record_header, whose type tag says which decoder applies;
 *   - addresses are 16 bytes, IPv4 stored v4-mapped (::ffff:a.b.c.d), ports in host byte order;
 *   - changing a layout means a new version number in the header (SL_RECORD_VERSION_*), never a silent edit.
 *
 * Included by every kernel program after vmlinux.h, which provides the __u8 .. __u64 types.
 */
#ifndef SIDECARLESS_RECORDS_H
#define SIDECARLESS_RECORDS_H

/* Type tag of a ring record. */
enum sl_record_type {
	SL_RECORD_PROBE = 1, /* bpf/selftest/probe.bpf.c: one per traced kill(2), proves the ring path end to end */
	SL_RECORD_FLOW = 2,  /* bpf/flows.bpf.c: one TCP connection seen from one side */
	SL_RECORD_HTTP_CHUNK = 3, /* bpf/http.bpf.c: the first bytes of one read or write of a traced connection */
	SL_RECORD_VERDICT = 4, /* bpf/policy.bpf.c: one policy decision (denials, audits, sampled allows) */
};

/* Layout version of each record type (sl_record_header.version); a layout change takes the next number. */
enum sl_record_version {
	SL_RECORD_VERSION_PROBE = 1,
	SL_RECORD_VERSION_FLOW = 1,
	SL_RECORD_VERSION_HTTP_CHUNK = 1,
	SL_RECORD_VERSION_VERDICT = 1,
};

/* Why the kernel side lost something; index into the per-CPU `drops` array of every object. */
enum sl_drop_reason {
	SL_DROP_RINGBUF_FULL = 0,    /* bpf_ringbuf_reserve failed: user space drains too slowly */
	SL_DROP_CONN_TABLE_FULL = 1, /* a new connection found the tracking table full: it is not recorded */
	SL_DROP_TRACKING_FAILED = 2, /* the kernel refused to track a connection otherwise (map update, callback flags) */
	SL_DROP_CALL_TABLE_FULL = 3, /* no longer counted (http's syscall programs did); kept: later reasons keep index */
	SL_DROP_COPY_FAILED = 4,     /* http: the call's bytes could not be read from user memory (sent short, marked cut) */
	SL_DROP_REASON_COUNT = 5,
};

struct sl_record_header {
	__u16 type;    /* enum sl_record_type */
	__u16 version; /* layout version of that type */
	__u32 size;    /* bytes of the whole record, header included */
	__u64 ts_ns;   /* CLOCK_MONOTONIC (bpf_ktime_get_ns); user space converts to wall clock once */
};
_Static_assert(sizeof(struct sl_record_header) == 16, "sl_record_header layout");

/* One traced kill(2) from the configured process (see bpf/selftest/probe.bpf.c). */
struct sl_probe_record {
	struct sl_record_header header;
	__u32 pid;        /* tgid of the caller */
	__u32 tid;        /* thread id of the caller */
	__u64 seq;        /* per-object counter: consecutive records differ by exactly one */
	__s32 target_pid; /* kill(2) first argument */
	__s32 signal;     /* kill(2) second argument */
	char comm[16];
};
_Static_assert(sizeof(struct sl_probe_record) == 56, "sl_probe_record layout");

/* Which end of the connection the observing socket is. */
enum sl_flow_side {
	SL_SIDE_CLIENT = 1, /* the socket called connect() */
	SL_SIDE_SERVER = 2, /* the socket came out of accept() */
};

enum sl_flow_kind {
	SL_FLOW_INTERIM = 1, /* the connection is still open; counters so far */
	SL_FLOW_FINAL = 2,   /* the socket reached TCP_CLOSE; counters are final */
};

/* Bits of sl_flow_record.flags; an enum rather than #defines so that BTF carries them for the layout test. */
enum sl_flow_flag {
	SL_FLOW_FLAG_RST_SENT = 0x01,     /* this side aborted the connection with a reset */
	SL_FLOW_FLAG_RST_RECEIVED = 0x02, /* the kernel closed the socket on the peer's reset (or refusal) */
	SL_FLOW_FLAG_ESTABLISHED = 0x04,  /* the handshake completed */
	SL_FLOW_FLAG_FIN_SENT = 0x08,     /* this side closed its direction (close() or shutdown()) */
	SL_FLOW_FLAG_FIN_RECEIVED = 0x10, /* the peer closed its direction */
	SL_FLOW_FLAG_ERROR = 0x20,        /* the kernel closed the socket on another error (a timeout, ICMP, a kill) */
	SL_FLOW_FLAG_ADOPTED = 0x40,      /* open before tracing saw it start: start_ns is when tracing first saw it,
					   * and the side was read from the socket (sl_conn_adopt, bpf/include/conn.h) */
};

/*
 * One TCP connection as one of its sockets saw it. Counters are cumulative since the connection began, in every
 * record of that connection (interim or final), so the newest record of a connection carries its totals.
 * Times are CLOCK_MONOTONIC ns. Addresses are 16 bytes, IPv4 v4-mapped; ports in host byte order.
 */
struct sl_flow_record {
	struct sl_record_header header; /* ts_ns: when these counters were read */
	__u64 conn_id;                  /* unique per boot and node: assigned when tracking began */
	__u64 start_ns;                 /* client: connect(); server: handshake completed; adopted: first seen */
	__u64 cgroup_id;                /* cgroup v2 id of the socket (inherited from the creating process) */
	__u64 bytes_sent;               /* payload bytes this side sent that the peer acknowledged (no SYN/FIN) */
	__u64 bytes_received;           /* payload bytes this side received in order (no FIN) */
	__u32 segs_sent;
	__u32 segs_received;
	__u32 srtt_us;                  /* smoothed RTT; 0 until the first sample */
	__u32 rttvar_us;                /* RTT mean deviation */
	__u32 retransmits;              /* segments retransmitted, SYN included */
	__u32 syn_retransmits;          /* SYN retransmits (a slow or lossy connect) */
	__u32 connect_us;               /* client: connect() to established; 0 when unknown */
	__u32 netns_ino;                /* inode number of the socket's network namespace */
	__u32 pid;                      /* tgid of the owning process; 0 when never seen in process context */
	__u32 tid;
	__u32 record_seq;               /* 0, 1, 2...: order of this record among its connection's records */
	__u16 family;                   /* AF_INET or AF_INET6 of the socket */
	__u16 client_port;
	__u16 server_port;
	__u8 side;                      /* enum sl_flow_side */
	__u8 kind;                      /* enum sl_flow_kind */
	__u8 last_state;                /* final: TCP state before CLOSE (says how it ended); interim: current */
	__u8 flags;                     /* bits of enum sl_flow_flag */
	__u16 _pad0;
	__u8 client_addr[16];
	__u8 server_addr[16];
	char comm[16];
};
_Static_assert(sizeof(struct sl_flow_record) == 160, "sl_flow_record layout");

/* Which way the bytes of an sl_http_chunk_record went, seen from the observed socket. */
enum sl_http_direction {
	SL_HTTP_SENT = 1,     /* a sendmsg of the socket: write, writev, sendto, sendmsg, sendfile, ... */
	SL_HTTP_RECEIVED = 2, /* a recvmsg of the socket: read, readv, recvfrom, recvmsg, ... */
};

/* Bits of sl_http_chunk_record.flags. */
enum sl_http_chunk_flag {
	SL_HTTP_CHUNK_TRUNCATED = 0x01, /* copied < length: the copy holds only the call's first bytes */
	SL_HTTP_CHUNK_ADOPTED = 0x02,   /* the connection was open before tracing began (SL_FLOW_FLAG_ADOPTED): its first
					 * captured call may be in the middle of a message */
};

/* Bounds of the bytes one sl_http_chunk_record copies (the tunables capture_bytes and head_bytes lie below them). */
enum sl_http_capture {
	SL_HTTP_CAPTURE_MAX = 16384, /* most bytes a record copies: the parser's largest head (MAX_HEADER_BYTES) */
	SL_HTTP_MAX_IOVECS = 8,      /* iovecs of a writev/readv/sendmsg/recvmsg the copy reads at most, in order */
};

/*
 * One successful send or receive of a traced TCP connection (ret > 0), with its first bytes. Variable size:
 * header.size = sizeof(struct sl_http_chunk_record) + copied, the copied bytes following the fixed part, so a short
 * call costs the ring only what it carried. Times are CLOCK_MONOTONIC ns: header.ts_ns is when the call's send or
 * receive returned.
 */
struct sl_http_chunk_record {
	struct sl_record_header header; /* ts_ns: the call returned */
	__u64 conn_id;                  /* the socket's entry in `conns`: the conn_id of its flow records */
	__u64 cgroup_id;                /* cgroup v2 id of the socket, as its flow records carry it */
	__u64 call_start_ns;            /* a send: when it began (the return when that was not seen); a receive: = ts_ns */
	__u64 length;                   /* the call's return value: bytes it wrote or read */
	__u32 pid;                      /* tgid of the caller */
	__u32 tid;
	__u32 copied;                   /* bytes that follow: min(length, capture_bytes, or head_bytes for a call that
					 * begins or goes on with a head), less if a copy failed */
	__u8 direction;                 /* enum sl_http_direction */
	__u8 flags;                     /* bits of enum sl_http_chunk_flag */
	__u16 family;                   /* AF_INET or AF_INET6 of the socket */
	__u16 client_port;              /* the connection's ends as its flow records name them (by side) */
	__u16 server_port;
	__u8 side;                      /* enum sl_flow_side of the socket */
	__u8 _pad0[3];
	__u8 client_addr[16];
	__u8 server_addr[16];
	__u8 data[];                    /* the first `copied` bytes of the call, across its iovecs in order */
};
_Static_assert(sizeof(struct sl_http_chunk_record) == 104, "sl_http_chunk_record layout");

/*
 * Value of the `conns` map (bpf/include/conn.h), keyed by the socket's kernel address: what the kernel does not keep
 * for us until a connection closes. Shared by every program that reports on connections, and read by user space
 * to adopt the connections a restarted collector finds open. It lives in a pinned map, whose name is its version:
 * change this layout only together with a new map name (conns -> conns_v2).
 */
struct sl_conn_state {
	__u64 conn_id;        /* unique per boot and node: taken from the shared `conn_ids` counter */
	__u64 start_ns;       /* client: connect(); server: handshake completed */
	__u64 established_ns; /* when the handshake completed; 0 before */
	__u64 last_record_ns; /* when the last record of this connection was emitted (or tracking began) */
	__u64 cgroup_id;      /* cgroup v2 id of the socket */
	__u32 pid;            /* tgid of the owning process; 0 until seen in process context */
	__u32 tid;
	__u32 syn_retransmits;
	__u32 records;        /* records emitted so far: the record_seq of the next one */
	__u8 side;            /* enum sl_flow_side */
	__u8 flags;           /* SL_FLOW_FLAG_* gathered so far */
	/*
	 * By enum sl_http_direction - 1: 0, or the direction's last call began an HTTP message, or its last calls went on
	 * with a head, so the next call may go on with it (bpf/http.bpf.c); then the bytes copied of it so far, in units
	 * of 128 rounded up. A byte each: the two directions' calls may run at once on two CPUs. Programs older
	 * than it left the bytes 0; those of before 16 KiB heads wrote 1 for an open head.
	 */
	__u8 http_open_head[2];
	__u8 _pad0[4];
	char comm[16];
};
_Static_assert(sizeof(struct sl_conn_state) == 80, "sl_conn_state layout");

/*
 * Value of the `traced_cgroups` map (bpf/include/conn.h), keyed by cgroup id: what the collector says of a cgroup.
 * The agent's mark lives in the map, not in the programs, because pinned programs outlive the collector that
 * loaded them and the next one runs in another cgroup (a new pod).
 */
enum sl_cgroup_mark {
	SL_CGROUP_TRACED = 1, /* its sockets, and those of cgroups below it, are traced */
	SL_CGROUP_AGENT = 2,  /* the running collector's own: its sockets are never traced */
};

/* Key of the egress deny map used by bpf/selftest/connect_guard.bpf.c: an IPv4 destination and port. */
struct sl_egress4_key {
	__u32 daddr;  /* network byte order, as in struct bpf_sock_addr.user_ip4 */
	__u16 dport;  /* host byte order */
	__u16 _pad0;
};
_Static_assert(sizeof(struct sl_egress4_key) == 8, "sl_egress4_key layout");

/*
 * The enforcer's maps (bpf/policy.bpf.c; the contents are src/enforcer/compile/map-state.ts's MapState, written by
 * src/enforcer/apply/). Every key carries the generation it belongs to (0 or 1): each map holds two complete
 * policies, and the programs read only the active one (policy.bpf.c says why). Identities are the compiler's 64-bit
 * numbers (pod: top bits 01, CIDR: 10, 0: any peer), stored in host byte order; in LPM keys they are compared as
 * bytes, which only needs writer and reader to agree. Ports in LPM keys are big-endian, because a port range is
 * written as prefixes of the port's bits. The maps are pinned in the enforcer's installation, whose directory name is
 * a digest of the object: a layout change here is a new object, hence new maps, never a reinterpreted old one.
 */
enum sl_policy_direction {
	SL_DIRECTION_INGRESS = 1,
	SL_DIRECTION_EGRESS = 2,
};

/* Value bits of the `isolation` and `policy` maps (a __u32). */
enum sl_policy_flag {
	SL_POLICY_FLAG_AUDIT = 0x1, /* made only by audit-mode policies: reported, never lets through or denies */
};

/* What the kernel decided (sl_verdict_record.verdict); as explain.ts's SideVerdict names them. */
enum sl_verdict {
	SL_VERDICT_ALLOW = 1,       /* an enforcing rule allows it */
	SL_VERDICT_DENY = 2,        /* isolated, and no enforcing rule allows it: refused */
	SL_VERDICT_AUDIT_DENY = 3,  /* isolated only by audit-mode policies, no rule allows it: passed, would be denied */
	SL_VERDICT_AUDIT_ALLOW = 4, /* isolated only by audit-mode policies, an audit rule allows it: passed */
};

/* Which program decided. */
enum sl_policy_hook {
	SL_HOOK_CONNECT = 1, /* cgroup/connect4, connect6: TCP and connected UDP */
	SL_HOOK_SENDMSG = 2, /* cgroup/sendmsg4, sendmsg6: a datagram of an unconnected UDP socket */
	SL_HOOK_INGRESS = 3, /* cgroup_skb/ingress: a TCP SYN, or a datagram to an unconnected UDP socket */
};

/* `cgroup_identity` (hash) key -> __u64 pod identity: the node's pod containers' cgroups. */
struct sl_cgroup_identity_key {
	__u64 cgroup_id;
	__u8 generation;
	__u8 _pad0[7];
};
_Static_assert(sizeof(struct sl_cgroup_identity_key) == 16, "sl_cgroup_identity_key layout");

/* `endpoints` (hash) key -> __u64 pod identity: every pod address of the cluster. */
struct sl_endpoint_key {
	__u8 addr[16]; /* v4-mapped for IPv4 */
	__u8 generation;
	__u8 _pad0[3];
};
_Static_assert(sizeof(struct sl_endpoint_key) == 20, "sl_endpoint_key layout");

/* `prefixes` (LPM trie) key -> __u64 CIDR identity: every ipBlock cidr and except. */
struct sl_prefix_key {
	__u32 prefixlen; /* 32 (generation and padding) + the prefix length in the 128-bit space */
	__u8 generation;
	__u8 _pad0[3];
	__u8 addr[16]; /* network address, v4-mapped for IPv4 */
};
_Static_assert(sizeof(struct sl_prefix_key) == 24, "sl_prefix_key layout");

/* `isolation` (hash) key -> __u32 enum sl_policy_flag bits: present iff some policy selects the subject. */
struct sl_isolation_key {
	__u64 subject;
	__u8 generation;
	__u8 direction; /* enum sl_policy_direction */
	__u8 _pad0[6];
};
_Static_assert(sizeof(struct sl_isolation_key) == 16, "sl_isolation_key layout");

/* `policy` (LPM trie) key -> __u32 enum sl_policy_flag bits: an allow for a block of ports. */
struct sl_policy_key {
	__u32 prefixlen; /* 160 (everything before the port) + the port block's bits (0..16) */
	__u8 generation;
	__u8 direction; /* enum sl_policy_direction */
	__u8 protocol;  /* IANA number; 0: any */
	__u8 _pad0;
	__u64 subject;
	__u64 peer;     /* pod or CIDR identity; 0: any peer */
	__be16 port;    /* first port of the block, big-endian */
	__u8 _pad1[6];
};
_Static_assert(sizeof(struct sl_policy_key) == 32, "sl_policy_key layout");

/*
 * `udp_flows` (LRU hash) key -> __u64 last time (ns): datagrams an unconnected UDP socket exchanged with a peer that
 * a policy allowed, so that the answers pass in the other direction (NetworkPolicy allows replies).
 */
struct sl_udp_flow_key {
	__u64 socket_cookie;
	__u8 peer_addr[16]; /* v4-mapped for IPv4 */
	__u16 peer_port;    /* host byte order */
	__u8 _pad0[6];
};
_Static_assert(sizeof(struct sl_udp_flow_key) == 32, "sl_udp_flow_key layout");

/*
 * One policy decision (bpf/policy.bpf.c): every denial and audit would-be denial, and allows sampled. src is the
 * end that opens the connection or sends the datagram, dst the other: at egress src is the socket's own address
 * (all zero when connect() runs before the socket is bound, src_port 0 likewise), at ingress the packet's sender.
 */
struct sl_verdict_record {
	struct sl_record_header header;
	__u64 cgroup_id;   /* cgroup v2 id the subject identity was found by */
	__u64 subject;     /* pod identity of the socket's pod */
	__u64 peer;        /* pod identity of the peer address (endpoints); 0: not a known pod */
	__u64 peer_prefix; /* CIDR identity of the peer address's longest prefix (prefixes); 0: none */
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u16 src_port;
	__u16 dst_port;
	__u8 protocol;  /* IANA number */
	__u8 direction; /* enum sl_policy_direction: the subject's side */
	__u8 verdict;   /* enum sl_verdict */
	__u8 hook;      /* enum sl_policy_hook */
	__u32 generation;
	__u32 _pad0;
};
_Static_assert(sizeof(struct sl_verdict_record) == 96, "sl_verdict_record layout");

#endif
