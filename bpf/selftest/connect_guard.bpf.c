// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * connect_guard: deny IPv4 connect() to listed destinations for processes in the cgroup it is attached to.
 *
 * Hook: cgroup/connect4 (attached to a cgroup v2 directory; applies to every process below it).
 *   1. Build the key from the destination the process asked for (address and port).
 *   2. A hit in `egress4_deny` refuses the call: returning 0 makes connect() fail with EPERM.
 *   3. Everything else is allowed.
 * The foundation for the enforcer's egress path; identities and verdict records come with the enforcer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "records.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sl_egress4_key);
	__type(value, __u32);
} egress4_deny SEC(".maps");

SEC("cgroup/connect4")
int guard_connect4(struct bpf_sock_addr *ctx)
{
	struct sl_egress4_key key = {
		.daddr = ctx->user_ip4,
		.dport = bpf_ntohs((__u16)ctx->user_port),
	};

	return bpf_map_lookup_elem(&egress4_deny, &key) ? 0 : 1;
}
