/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * Every structure that crosses kernel <-> user space, and nothing else.
 *
 * Rules (checked by test/ebpf/records-layout.test.ts against the BTF of the compiled objects):
 *   - fixed-width types only; padding is an explicit field named _pad*; sizes pinned by _Static_assert;
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
	SL_RECORD_PROBE = 1, /* bpf/probe.bpf.c: one per traced kill(2), proves the ring path end to end */
};

/* Why the kernel side lost something; index into the per-CPU `drops` array of every object. */
enum sl_drop_reason {
	SL_DROP_RINGBUF_FULL = 0, /* bpf_ringbuf_reserve failed: user space drains too slowly */
	SL_DROP_REASON_COUNT = 1,
};

struct sl_record_header {
	__u16 type;    /* enum sl_record_type */
	__u16 version; /* layout version of that type */
	__u32 size;    /* bytes of the whole record, header included */
	__u64 ts_ns;   /* CLOCK_MONOTONIC (bpf_ktime_get_ns); user space converts to wall clock once */
};
_Static_assert(sizeof(struct sl_record_header) == 16, "sl_record_header layout");

#define SL_RECORD_VERSION_PROBE 1

/* One traced kill(2) from the configured process (see bpf/probe.bpf.c). */
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

/* Key of the egress deny map used by bpf/connect_guard.bpf.c: an IPv4 destination and port. */
struct sl_egress4_key {
	__u32 daddr;  /* network byte order, as in struct bpf_sock_addr.user_ip4 */
	__u16 dport;  /* host byte order */
	__u16 _pad0;
};
_Static_assert(sizeof(struct sl_egress4_key) == 8, "sl_egress4_key layout");

#endif
