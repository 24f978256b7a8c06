// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * selftest/recursion: a program the kernel skips exactly once per trigger, so tests can check how skipped
 * invocations are read (bpf_prog_info.recursion_misses, BpfProgram.recursionMisses()). A tracing program that fires
 * while it already runs on that CPU is not run but counted, as flows' raw tracepoint programs are under softirq
 * nesting.
 *
 *   1. tracepoint syscalls/sys_enter_getppid, for target_tgid: writes one trace line, which fires the raw
 *      tracepoint bpf_trace_printk;
 *   2. raw tracepoint bpf_trace_printk, for target_tgid: writes one trace line too, firing bpf_trace_printk again
 *      inside itself: the kernel skips that nested run and counts one miss.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;

static __always_inline int targeted(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int trigger(void *ctx)
{
	if (targeted())
		bpf_printk("sidecarless recursion selftest: trigger");
	return 0;
}

SEC("raw_tp/bpf_trace_printk")
int nest(struct bpf_raw_tracepoint_args *ctx)
{
	if (targeted())
		bpf_printk("sidecarless recursion selftest: nested");
	return 0;
}
