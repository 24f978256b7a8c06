/**
 * Flow records (struct sl_flow_record bytes, as the kernel writes them) that reach every branch of the flows
 * encoding: both sides, every close reason, IPv4 and IPv6 addresses of every compressed shape, null and present
 * RTT, connect latency and owner, empty, full and non-ASCII comms, counters above 2^32 and 2^53, conn ids beyond a
 * double. test/flows/flow-encoding.test.ts holds the collector's encoding of them to fixed bytes.
 */
import { FLOW_RECORD, FlowFlag, FlowKind, FlowSide, TcpState } from '../../src/ebpf/records/flow.js';
import { RecordType } from '../../src/ebpf/records/header.js';

const o = FLOW_RECORD.offsets;

export interface FlowRecordFields {
  connId: bigint;
  side: number;
  kind: number;
  lastState: number;
  flags: number;
  bytesSent: bigint;
  bytesReceived: bigint;
  segsSent: number;
  segsReceived: number;
  srttUs: number;
  connectUs: number;
  pid: number;
  recordSeq: number;
  retransmits: number;
  clientAddr: number[];
  serverAddr: number[];
  comm: number[];
  cgroupId: bigint;
}

/** A record's bytes; fields not given are those of a plain final IPv4 client record. */
export function flowRecordBytes(fields: Partial<FlowRecordFields>): DataView {
  const f: FlowRecordFields = {
    connId: 42n,
    side: FlowSide.client,
    kind: FlowKind.final,
    lastState: TcpState.FIN_WAIT1,
    flags: FlowFlag.established | FlowFlag.finSent,
    bytesSent: 1200n,
    bytesReceived: 56000n,
    segsSent: 12,
    segsReceived: 40,
    srttUs: 250,
    connectUs: 180,
    pid: 4242,
    recordSeq: 1,
    retransmits: 0,
    clientAddr: v4(10, 244, 1, 7),
    serverAddr: v4(10, 96, 0, 10),
    comm: [...Buffer.from('curl')],
    cgroupId: 5001n,
    ...fields,
  };
  const view = new DataView(new ArrayBuffer(FLOW_RECORD.size));
  const bytes = new Uint8Array(view.buffer);
  view.setUint16(0, RecordType.flow, true);
  view.setUint16(2, FLOW_RECORD.version, true);
  view.setUint32(4, FLOW_RECORD.size, true);
  view.setBigUint64(8, 9_000_000_000_000n + f.connId % 1000n, true);
  view.setBigUint64(o.conn_id, f.connId, true);
  view.setBigUint64(o.start_ns, 8_000_000_000_000n, true);
  view.setBigUint64(o.cgroup_id, f.cgroupId, true);
  view.setBigUint64(o.bytes_sent, f.bytesSent, true);
  view.setBigUint64(o.bytes_received, f.bytesReceived, true);
  view.setUint32(o.segs_sent, f.segsSent, true);
  view.setUint32(o.segs_received, f.segsReceived, true);
  view.setUint32(o.srtt_us, f.srttUs, true);
  view.setUint32(o.rttvar_us, f.srttUs === 0 ? 0 : 31, true);
  view.setUint32(o.retransmits, f.retransmits, true);
  view.setUint32(o.syn_retransmits, f.retransmits > 0 ? 1 : 0, true);
  view.setUint32(o.connect_us, f.connectUs, true);
  view.setUint32(o.netns_ino, 4026531992, true);
  view.setUint32(o.pid, f.pid, true);
  view.setUint32(o.tid, f.pid === 0 ? 0 : f.pid + 1, true);
  view.setUint32(o.record_seq, f.recordSeq, true);
  view.setUint16(o.family, f.serverAddr[10] === 0xff ? 2 : 10, true);
  view.setUint16(o.client_port, 50123, true);
  view.setUint16(o.server_port, 8080, true);
  view.setUint8(o.side, f.side);
  view.setUint8(o.kind, f.kind);
  view.setUint8(o.last_state, f.lastState);
  view.setUint8(o.flags, f.flags);
  bytes.set(f.clientAddr, o.client_addr);
  bytes.set(f.serverAddr, o.server_addr);
  bytes.set(f.comm.slice(0, 16), o.comm);
  return view;
}

export function v4(a: number, b: number, c: number, d: number): number[] {
  return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d];
}

/** Sixteen bytes of eight big-endian groups. */
export function v6(...groups: number[]): number[] {
  return groups.flatMap((group) => [group >> 8, group & 0xff]);
}

/** Every branch of the encoding, one record or more each. */
export function edgeFlowRecords(): DataView[] {
  const { server } = FlowSide;
  const { interim } = FlowKind;
  const { established, rstSent, rstReceived, error, finSent, finReceived, adopted } = FlowFlag;
  const cases: Array<Partial<FlowRecordFields>> = [
    {},
    { side: server, connectUs: 0, lastState: TcpState.LAST_ACK, flags: established | finSent | finReceived },
    { kind: interim, recordSeq: 0, lastState: TcpState.ESTABLISHED },
    { lastState: TcpState.SYN_SENT, flags: rstReceived, srttUs: 0, connectUs: 0, bytesSent: 0n, bytesReceived: 0n },
    { lastState: TcpState.SYN_SENT, flags: 0, srttUs: 0, retransmits: 6 },
    { flags: established | rstReceived },
    { flags: established | rstSent },
    { flags: established | error, retransmits: 15 },
    { flags: 0, connectUs: 180 },
    { pid: 0, comm: [] },
    { comm: [...Buffer.from('sixteen-chars-xx')] },
    { comm: [0x63, 0xe9, 0x74, 0xe9, 0xff, 0x80] },
    { bytesSent: 5_000_000_000n, bytesReceived: 2n ** 53n + 1n, segsSent: 3_000_000_001 },
    { bytesSent: 2n ** 63n - 1n, side: server },
    { connId: 2n ** 53n + 7n },
    { connId: 2n ** 64n - 1n, cgroupId: 2n ** 62n },
    { connId: 0n },
    { clientAddr: v4(0, 0, 0, 0), serverAddr: v4(255, 255, 255, 255) },
    { clientAddr: v6(0xfd00, 0, 0, 0, 0, 0, 0, 1), serverAddr: v6(0x2001, 0xdb8, 0, 0, 0x8a2e, 0x370, 0x7334, 0) },
    { clientAddr: v6(0, 0, 0, 0, 0, 0, 0, 1), serverAddr: v6(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1), side: server },
    { clientAddr: v6(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff), serverAddr: v6(0, 0, 0, 0, 0, 0, 0, 0) },
    { clientAddr: v4(10, 1, 2, 3), serverAddr: v6(0x64, 0xff9b, 0, 0, 0, 0, 0x0a01, 0x0203) },
    { srttUs: 0x7fffffff, recordSeq: 0x7fffffff, retransmits: 0x7fffffff },
    { side: server, connectUs: 0, flags: established | adopted },
  ];
  return cases.map((fields, i) => flowRecordBytes({ connId: BigInt(1000 + 7919 * i), ...fields }));
}

/** Records whose values the flows schema refuses: a long from 2^63, an int from 2^31. */
export function refusedFlowRecords(): Array<{ record: DataView; field: string }> {
  return [
    { record: flowRecordBytes({ bytesSent: 2n ** 63n }), field: 'bytes_client_to_server' },
    { record: flowRecordBytes({ cgroupId: 2n ** 64n - 1n }), field: 'cgroup_id' },
    { record: flowRecordBytes({ recordSeq: 2 ** 31 }), field: 'record_seq' },
    { record: flowRecordBytes({ srttUs: 2 ** 32 - 1 }), field: 'rtt_us' },
    { record: flowRecordBytes({ retransmits: 2 ** 31 }), field: 'retransmits' },
  ];
}
