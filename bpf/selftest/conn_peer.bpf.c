// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * selftest/conn_peer: a second object built on bpf/include/conn.h, standing in for the programs that share
 * connection tracking with flows (HTTP). test/ebpf/pins.test.ts loads it beside bpf/flows.bpf.c with one pin
 * directory and checks that the kernel side sees one set of maps.
 *
 * Hook: tracepoint syscalls/sys_enter_getppid, from target_tgid only.
 *   1. Look up `conns` at lookup_skaddr (an entry the test wrote through the other object) and keep its conn_id.
 *   2. Take a new connection id from the shared `conn_ids` counter.
 *   3. Ask whether the caller's cgroup is traced, by the shared `traced_cgroups`.
 * Results land in `results`, indexed by enum peer_result.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "conn.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum peer_result { PEER_FOUND_CONN_ID, PEER_NEW_CONN_ID, PEER_TRACED, PEER_RESULT_COUNT };

const volatile __u32 target_tgid = 0;
const volatile __u64 lookup_skaddr = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_RESULT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void set_result(__u32 index, __u64 value)
{
	bpf_map_update_elem(&results, &index, &value, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int peer_getppid(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct sl_conn_state *state;
	__u64 cgroup_id;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	state = sl_conn_lookup((const void *)lookup_skaddr);
	set_result(PEER_FOUND_CONN_ID, state ? state->conn_id : ~0ULL);
	set_result(PEER_NEW_CONN_ID, sl_conn_new_id());
	set_result(PEER_TRACED, sl_cgroup_is_traced(BPF_CORE_READ(task, cgroups, dfl_cgrp), &cgroup_id));
	return 0;
}
