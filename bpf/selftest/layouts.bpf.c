// SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0)
/*
 * layouts: not a program. Programs reach ring records through void pointers and use enumerators as plain
 * numbers, so the compiler leaves those types out of the programs' BTF; this object names every records.h type
 * once so that its BTF holds every shared layout. Tests read it without loading it:
 *   - test/ebpf/records-layout.test.ts walks each sl_* struct and enum of its BTF and compares it with the TS
 *     mirror registered in src/ebpf/records/layouts.ts;
 *   - test/ebpf/records-golden.test.ts reads the sl_golden_* constants out of .rodata, the bytes exactly as the
 *     compiler laid them out, and compares them with the committed fixtures in test/ebpf/fixtures/.
 * Golden values are distinct and non-zero where the type allows, wider than 32 bits in 64-bit fields and above
 * 2^31 (2^15) in some unsigned 32-bit (16-bit) ones, so a field read at the wrong offset, width or sign shows.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include "records.h"

enum sl_record_type sl_layout_record_type;
enum sl_record_version sl_layout_record_version;
enum sl_drop_reason sl_layout_drop_reason;
enum sl_flow_side sl_layout_flow_side;
enum sl_flow_kind sl_layout_flow_kind;
enum sl_flow_flag sl_layout_flow_flag;
enum sl_cgroup_mark sl_layout_cgroup_mark;
enum sl_http_direction sl_layout_http_direction;
enum sl_http_chunk_flag sl_layout_http_chunk_flag;
enum sl_http_capture sl_layout_http_capture;
enum sl_policy_direction sl_layout_policy_direction;
enum sl_policy_flag sl_layout_policy_flag;
enum sl_verdict sl_layout_verdict;
enum sl_policy_hook sl_layout_policy_hook;

/* Not a real record type: every byte differs, so the header readers are checked byte by byte. */
const struct sl_record_header sl_golden_record_header = {
	.type = 0x0102,
	.version = 0x0304,
	.size = 0x05060708,
	.ts_ns = 0x090a0b0c0d0e0f10,
};

const struct sl_probe_record sl_golden_probe_record = {
	.header = {
		.type = SL_RECORD_PROBE,
		.version = SL_RECORD_VERSION_PROBE,
		.size = sizeof(struct sl_probe_record),
		.ts_ns = 0x4142434445464748,
	},
	.pid = 74565,
	.tid = 74566,
	.seq = 0x1000000000000005,
	.target_pid = -1,
	.signal = 15,
	.comm = "probe-selftest1", /* 15 characters and the NUL */
};

const struct sl_flow_record sl_golden_flow_record = {
	.header = {
		.type = SL_RECORD_FLOW,
		.version = SL_RECORD_VERSION_FLOW,
		.size = sizeof(struct sl_flow_record),
		.ts_ns = 0x3132333435363738,
	},
	.conn_id = 0x0102030405060708,
	.start_ns = 0x1112131415161718,
	.cgroup_id = 0x2122232425262728,
	.bytes_sent = 0x0000000312345678,
	.bytes_received = 0x0000000487654321,
	.segs_sent = 3000000001,
	.segs_received = 2000000002,
	.srtt_us = 12345,
	.rttvar_us = 678,
	.retransmits = 9,
	.syn_retransmits = 2,
	.connect_us = 4321,
	.netns_ino = 4026531992,
	.pid = 4242,
	.tid = 4243,
	.record_seq = 7,
	.family = 10, /* AF_INET6: a dual-stack socket, so one v4-mapped and one v6 address are both possible */
	.client_port = 50000,
	.server_port = 443,
	.side = SL_SIDE_SERVER,
	.kind = SL_FLOW_FINAL,
	.last_state = TCP_LAST_ACK,
	.flags = SL_FLOW_FLAG_ESTABLISHED | SL_FLOW_FLAG_FIN_SENT | SL_FLOW_FLAG_FIN_RECEIVED,
	.client_addr = { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2, [15] = 3 }, /* ::ffff:10.1.2.3 */
	.server_addr = { 0x20, 0x01, 0x0d, 0xb8, [10] = 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x34 }, /* 2001:db8::8a2e:370:7334 */
	.comm = "envoy-worker-07",
};

/* The fixed part only: the copied bytes follow it in a ring record (the golden test appends `copied` of them). */
const struct sl_http_chunk_record sl_golden_http_chunk_record = {
	.header = {
		.type = SL_RECORD_HTTP_CHUNK,
		.version = SL_RECORD_VERSION_HTTP_CHUNK,
		.size = sizeof(struct sl_http_chunk_record) + 5,
		.ts_ns = 0x5152535455565758,
	},
	.conn_id = 0x0102030405060708,
	.cgroup_id = 0x2122232425262728,
	.call_start_ns = 0x5152535455560000,
	.length = 0x0000000123456789,
	.pid = 3000000001,
	.tid = 3000000002,
	.copied = 5,
	.direction = SL_HTTP_RECEIVED,
	.flags = SL_HTTP_CHUNK_TRUNCATED,
	.family = 2, /* AF_INET */
	.client_port = 49153,
	.server_port = 8080,
	.side = SL_SIDE_SERVER,
	.client_addr = { [10] = 0xff, [11] = 0xff, 10, 1, 2, 3 },
	.server_addr = { 0xfd, [15] = 0x01 },
};

const struct sl_egress4_key sl_golden_egress4_key = {
	.daddr = bpf_htonl(0x0a000007), /* 10.0.0.7 */
	.dport = 8080,
};

/* Value of the shared `conns` map (bpf/include/conn.h). */
const struct sl_conn_state sl_golden_conn_state = {
	.conn_id = 0x0102030405060708,
	.start_ns = 0x1112131415161718,
	.established_ns = 0x2122232425262728,
	.last_record_ns = 0x3132333435363738,
	.cgroup_id = 0x4142434445464748,
	.pid = 3000000001,
	.tid = 3000000002,
	.syn_retransmits = 3,
	.records = 2000000004,
	.side = SL_SIDE_SERVER,
	.flags = SL_FLOW_FLAG_ESTABLISHED | SL_FLOW_FLAG_FIN_RECEIVED,
	.comm = "conn-selftest-1", /* 15 characters and the NUL */
};

/* The enforcer's keys (bpf/policy.bpf.c) and its verdict record. */
const struct sl_cgroup_identity_key sl_golden_cgroup_identity_key = {
	.cgroup_id = 0x0102030405060708,
	.generation = 1,
};

const struct sl_endpoint_key sl_golden_endpoint_key = {
	.addr = { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2, [15] = 3 }, /* ::ffff:10.1.2.3 */
	.generation = 1,
};

const struct sl_prefix_key sl_golden_prefix_key = {
	.prefixlen = 32 + 96 + 12, /* 172.16.0.0/12 */
	.generation = 1,
	.addr = { [10] = 0xff, [11] = 0xff, [12] = 172, [13] = 16 },
};

const struct sl_isolation_key sl_golden_isolation_key = {
	.subject = 0x4142434445464748,
	.generation = 1,
	.direction = SL_DIRECTION_EGRESS,
};

const struct sl_policy_key sl_golden_policy_key = {
	.prefixlen = 160 + 13, /* a block of 8 ports */
	.generation = 1,
	.direction = SL_DIRECTION_INGRESS,
	.protocol = 17,
	.subject = 0x4142434445464748,
	.peer = 0x8182838485868788,
	.port = bpf_htons(0x1f48), /* 8008 */
};

const struct sl_udp_flow_key sl_golden_udp_flow_key = {
	.socket_cookie = 0x1112131415161718,
	.peer_addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x35 }, /* 2001:db8::35 */
	.peer_port = 53000,
};

const struct sl_verdict_record sl_golden_verdict_record = {
	.header = {
		.type = SL_RECORD_VERDICT,
		.version = SL_RECORD_VERSION_VERDICT,
		.size = sizeof(struct sl_verdict_record),
		.ts_ns = 0x3132333435363738,
	},
	.cgroup_id = 0x2122232425262728,
	.subject = 0x4142434445464748,
	.peer = 0x4a4b4c4d4e4f5051,
	.peer_prefix = 0x8182838485868788,
	.src_addr = { [10] = 0xff, [11] = 0xff, [12] = 10, [13] = 1, [14] = 2, [15] = 3 }, /* ::ffff:10.1.2.3 */
	.dst_addr = { 0x20, 0x01, 0x0d, 0xb8, [10] = 0x8a, 0x2e, 0x03, 0x70, 0x73, 0x34 }, /* 2001:db8::8a2e:370:7334 */
	.src_port = 50000,
	.dst_port = 443,
	.protocol = 6,
	.direction = SL_DIRECTION_EGRESS,
	.verdict = SL_VERDICT_AUDIT_DENY,
	.hook = SL_HOOK_CONNECT,
	.generation = 3000000001,
};
