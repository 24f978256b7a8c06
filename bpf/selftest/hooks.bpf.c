// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * selftest/hooks: one tiny program per attach type the loader supports, each counting its hits, so tests (and an
 * operator checking a node) can prove every hook works on this kernel and detaches cleanly.
 *
 *   1. tracepoint syscalls/sys_enter_getppid  - counts getppid() calls of target_tgid
 *   2. raw tracepoint sys_enter               - counts getppid() calls of target_tgid (syscall id filter)
 *   3. uprobe / uretprobe on libc getppid     - counts calls of target_tgid
 *   4. tc ingress                             - counts UDP packets to target_port (IPv4, no options parsing needed)
 * Counters live in `hits`, indexed by enum hook below.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum hook { HOOK_TRACEPOINT, HOOK_RAW_TRACEPOINT, HOOK_UPROBE, HOOK_URETPROBE, HOOK_TC, HOOK_COUNT };

#define NR_GETPPID 110 /* x86_64 */
#define ETH_P_IP 0x0800
#define IPPROTO_UDP_NUM 17
#define TC_ACT_OK 0

const volatile __u32 target_tgid = 0;
const volatile __u16 target_port = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HOOK_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void count(__u32 hook)
{
	__u64 *counter = bpf_map_lookup_elem(&hits, &hook);

	if (counter)
		__sync_fetch_and_add(counter, 1);
}

static __always_inline int is_target(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_tracepoint(void *ctx)
{
	if (is_target())
		count(HOOK_TRACEPOINT);
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int count_raw_tracepoint(struct bpf_raw_tracepoint_args *ctx)
{
	if (is_target() && ctx->args[1] == NR_GETPPID)
		count(HOOK_RAW_TRACEPOINT);
	return 0;
}

SEC("uprobe")
int count_uprobe(void *ctx)
{
	if (is_target())
		count(HOOK_UPROBE);
	return 0;
}

SEC("uretprobe")
int count_uretprobe(void *ctx)
{
	if (is_target())
		count(HOOK_URETPROBE);
	return 0;
}

SEC("tc")
int count_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto == bpf_htons(ETH_P_IP) && ip->ihl == 5 && ip->protocol == IPPROTO_UDP_NUM &&
	    udp->dest == bpf_htons(target_port))
		count(HOOK_TC);
	return TC_ACT_OK;
}
