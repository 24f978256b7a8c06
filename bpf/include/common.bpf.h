/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/* Kernel-side helpers shared by every kernel program: drop counters and ring reservation that never fails silently. */
#ifndef SIDECARLESS_COMMON_BPF_H
#define SIDECARLESS_COMMON_BPF_H

#include "records.h"

/* Per-CPU counters indexed by enum sl_drop_reason; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SL_DROP_REASON_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void sl_count_drop(__u32 reason)
{
	__u64 *counter = bpf_map_lookup_elem(&drops, &reason);

	if (counter)
		*counter += 1;
}

/* Reserve a record on `ring` and fill its header; a full ring is counted, never silent. */
#define sl_reserve_record(ring, record_type, type_tag, type_version)                          \
	({                                                                                    \
		record_type *__r = bpf_ringbuf_reserve(ring, sizeof(record_type), 0);         \
		if (__r) {                                                                    \
			__r->header.type = (type_tag);                                        \
			__r->header.version = (type_version);                                 \
			__r->header.size = sizeof(record_type);                               \
			__r->header.ts_ns = bpf_ktime_get_ns();                               \
		} else {                                                                      \
			sl_count_drop(SL_DROP_RINGBUF_FULL);                                  \
		}                                                                             \
		__r;                                                                          \
	})

/*
 * Wake-ups. The kernel wakes the reader for a record only if the reader had read everything before it. A reader
 * that, once woken, lets records gather before it drains (src/collector/collector.ts) is therefore woken once
 * per drain, not per record, and not at all while nothing happens; this makes the kernel wake it early each time
 * the unread bytes pass a multiple of `ring_wakeup_bytes`, so a burst cannot fill the ring while it waits. 0: never
 * early. Each wake-up is an irq_work the submitting program pays for: at 500 connections/s with a reader that
 * drained per wake-up, the flows programs ran 0.012 cores; woken once per drain, 0.002.
 *
 * On passing a multiple, not whenever the unread bytes are above one: the reader needs one signal, and until its
 * drain has moved the consumer position back below, every record would be another irq_work (each a self-IPI, µs
 * in a VM). Measured with bench http-live's traffic at 5,000 requests/s, where the HTTP ring passed its wake-up mark
 * every ~150 ms: 800-1,100 ns per return program's run when each record above the mark forced a wake-up, against
 * 300-400 with no early wake-up at all. Producers on two CPUs read the unread bytes apart from reserving theirs, so
 * both may see the same count and neither pass a multiple: the next multiple then wakes the reader, and the
 * reader's own flushMs timeout bounds the wait in any case.
 */
const volatile __u64 ring_wakeup_bytes = 0;

/* The wake-up flag of a record of `size` bytes on `ring`; `unread` counts the ring's unread bytes, it included. */
static __always_inline __u64 sl_wakeup_flags(__u64 unread, __u64 size)
{
	return unread / ring_wakeup_bytes != (unread - size) / ring_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : 0;
}

/* Submit a record reserved on `ring` (its header filled), waking the reader early as ring_wakeup_bytes says. */
static __always_inline void sl_submit_record(void *ring, void *record)
{
	/* A reserved record is already among the unread bytes. */
	__u64 flags = ring_wakeup_bytes ? sl_wakeup_flags(bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA),
							  ((struct sl_record_header *)record)->size) : 0;

	bpf_ringbuf_submit(record, flags);
}

/*
 * Copy a record of `size` bytes built elsewhere (a record whose size is only known at run time: reserve takes a
 * constant) onto `ring`; a full ring is counted, as sl_reserve_record does. The caller has filled its header.
 */
static __always_inline void sl_output_record(void *ring, void *record, __u64 size)
{
	__u64 flags = ring_wakeup_bytes ? sl_wakeup_flags(bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) + size, size) : 0;

	if (bpf_ringbuf_output(ring, record, size, flags))
		sl_count_drop(SL_DROP_RINGBUF_FULL);
}

#endif
