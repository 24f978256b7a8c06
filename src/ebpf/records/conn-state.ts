/**
 * struct sl_conn_state (bpf/include/records.h): value of the shared `conns` map (bpf/include/conn.h), keyed by the
 * socket's kernel address (u64). User space reads it to adopt connections that were open before a restart.
 * Checked against the compiled layout by test/ebpf/records-layout.test.ts (mirror registered in ./layouts.ts) and
 * pinned by golden bytes in test/ebpf/records-golden.test.ts.
 */
import type { Codec } from '../map.js';
import { decodeComm } from './comm.js';

export const CONN_STATE = {
  struct: 'sl_conn_state',
  size: 80,
  offsets: {
    conn_id: 0,
    start_ns: 8,
    established_ns: 16,
    last_record_ns: 24,
    cgroup_id: 32,
    pid: 40,
    tid: 44,
    syn_retransmits: 48,
    records: 52,
    side: 56,
    flags: 57,
    http_open_head: 58,
    _pad0: 60,
    comm: 64,
  },
} as const;

/** enum sl_cgroup_mark: values of the shared `traced_cgroups` map, keyed by cgroup id. */
export const CGROUP_MARK = { enum: 'sl_cgroup_mark', prefix: 'SL_CGROUP_', values: { traced: 1, agent: 2 } } as const;
export const CgroupMark = CGROUP_MARK.values;

export interface ConnState {
  connId: bigint;
  /** Kernel monotonic ns, as every time the kernel records. */
  startMonotonicNs: bigint;
  /** 0 before the handshake completed. */
  establishedMonotonicNs: bigint;
  lastRecordMonotonicNs: bigint;
  cgroupId: bigint;
  pid: number;
  tid: number;
  synRetransmits: number;
  /** Records emitted so far for this connection: the record_seq of the next one. */
  records: number;
  /** enum sl_flow_side (FlowSide in ./flow.js). */
  side: number;
  /** SL_FLOW_FLAG_* gathered so far. */
  flags: number;
  comm: string;
}

const o = CONN_STATE.offsets;

export const connStateCodec: Codec<ConnState> = {
  size: CONN_STATE.size,
  encode(state, target) {
    target.fill(0, 0, CONN_STATE.size);
    target.writeBigUInt64LE(state.connId, o.conn_id);
    target.writeBigUInt64LE(state.startMonotonicNs, o.start_ns);
    target.writeBigUInt64LE(state.establishedMonotonicNs, o.established_ns);
    target.writeBigUInt64LE(state.lastRecordMonotonicNs, o.last_record_ns);
    target.writeBigUInt64LE(state.cgroupId, o.cgroup_id);
    target.writeUInt32LE(state.pid, o.pid);
    target.writeUInt32LE(state.tid, o.tid);
    target.writeUInt32LE(state.synRetransmits, o.syn_retransmits);
    target.writeUInt32LE(state.records, o.records);
    target.writeUInt8(state.side, o.side);
    target.writeUInt8(state.flags, o.flags);
    target.write(state.comm, o.comm, 15, 'latin1'); // the kernel's comm is 15 bytes and a NUL
  },
  decode(source, offset) {
    return {
      connId: source.readBigUInt64LE(offset + o.conn_id),
      startMonotonicNs: source.readBigUInt64LE(offset + o.start_ns),
      establishedMonotonicNs: source.readBigUInt64LE(offset + o.established_ns),
      lastRecordMonotonicNs: source.readBigUInt64LE(offset + o.last_record_ns),
      cgroupId: source.readBigUInt64LE(offset + o.cgroup_id),
      pid: source.readUInt32LE(offset + o.pid),
      tid: source.readUInt32LE(offset + o.tid),
      synRetransmits: source.readUInt32LE(offset + o.syn_retransmits),
      records: source.readUInt32LE(offset + o.records),
      side: source.readUInt8(offset + o.side),
      flags: source.readUInt8(offset + o.flags),
      comm: decodeComm(new DataView(source.buffer, source.byteOffset, source.length), offset + o.comm),
    };
  },
};
