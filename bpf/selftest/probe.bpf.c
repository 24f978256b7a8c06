// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * probe: the smallest real producer of ring records, used to prove and measure the kernel -> JS path.
 *
 * Hook: tracepoint syscalls/sys_enter_kill.
 *   1. Ignore every caller but the configured process (target_tgid), so the hook costs others one compare.
 *   2. Emit `burst` records per call (bpf_loop), each with the next value of a global sequence counter;
 *      burst > 1 lets a benchmark fill the ring from a single syscall.
 *   3. A full ring is counted in `drops` (SL_DROP_RINGBUF_FULL) and the rest of the burst is skipped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "common.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0; /* only this process is traced; 0 traces nobody */
const volatile __u32 burst = 1;       /* records per traced call */

__u64 next_seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} probe_ring SEC(".maps");

struct burst_ctx {
	__s32 target_pid;
	__s32 signal;
	__u64 pid_tgid;
};

static long emit_one(__u64 index, struct burst_ctx *ctx)
{
	struct sl_probe_record *r =
		sl_reserve_record(&probe_ring, struct sl_probe_record, SL_RECORD_PROBE, SL_RECORD_VERSION_PROBE);

	if (!r)
		return 1; /* stop the loop: the ring is full and this drop is counted */
	r->pid = ctx->pid_tgid >> 32;
	r->tid = (__u32)ctx->pid_tgid;
	r->seq = __sync_fetch_and_add(&next_seq, 1);
	r->target_pid = ctx->target_pid;
	r->signal = ctx->signal;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_kill")
int probe_kill(struct trace_event_raw_sys_enter *ctx)
{
	struct burst_ctx burst_ctx = { .pid_tgid = bpf_get_current_pid_tgid() };

	if ((__u32)(burst_ctx.pid_tgid >> 32) != target_tgid)
		return 0;
	burst_ctx.target_pid = (__s32)ctx->args[0];
	burst_ctx.signal = (__s32)ctx->args[1];
	bpf_loop(burst, emit_one, &burst_ctx, 0);
	return 0;
}
