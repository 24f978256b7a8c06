/**
 * struct sl_flow_record (bpf/include/records.h), written by bpf/flows.bpf.c: one TCP connection seen from one side.
 * FLOW_RECORD and the enum mirrors below are registered in ./layouts.ts, whose test compares them with the compiled
 * BTF; test/ebpf/records-golden.test.ts pins decodeFlowRecord to compiler-made bytes (fixtures/sl_flow_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { formatAddress } from './address.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';
import { decodeComm } from './comm.js';

export const FLOW_RECORD = {
  struct: 'sl_flow_record',
  size: 160,
  version: 1,
  offsets: {
    header: 0,
    conn_id: 16,
    start_ns: 24,
    cgroup_id: 32,
    bytes_sent: 40,
    bytes_received: 48,
    segs_sent: 56,
    segs_received: 60,
    srtt_us: 64,
    rttvar_us: 68,
    retransmits: 72,
    syn_retransmits: 76,
    connect_us: 80,
    netns_ino: 84,
    pid: 88,
    tid: 92,
    record_seq: 96,
    family: 100,
    client_port: 102,
    server_port: 104,
    side: 106,
    kind: 107,
    last_state: 108,
    flags: 109,
    _pad0: 110,
    client_addr: 112,
    server_addr: 128,
    comm: 144,
  },
} as const;

export const FLOW_SIDE = { enum: 'sl_flow_side', prefix: 'SL_SIDE_', values: { client: 1, server: 2 } } as const;
export const FlowSide = FLOW_SIDE.values;

export const FLOW_KIND = { enum: 'sl_flow_kind', prefix: 'SL_FLOW_', values: { interim: 1, final: 2 } } as const;
export const FlowKind = FLOW_KIND.values;

/** Bits of FlowRecord.flags. */
export const FLOW_FLAG = {
  enum: 'sl_flow_flag',
  prefix: 'SL_FLOW_FLAG_',
  values: { rstSent: 0x01, rstReceived: 0x02, established: 0x04, finSent: 0x08, finReceived: 0x10, error: 0x20 },
} as const;
export const FlowFlag = FLOW_FLAG.values;

/** TCP states (include/net/tcp_states.h), for last_state. */
export const TcpState = {
  ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT1: 4, FIN_WAIT2: 5, TIME_WAIT: 6, CLOSE: 7, CLOSE_WAIT: 8,
  LAST_ACK: 9, LISTEN: 10, CLOSING: 11,
} as const;

export interface FlowRecord {
  /** When the counters were read, kernel monotonic ns. */
  monotonicNs: bigint;
  connId: bigint;
  startMonotonicNs: bigint;
  cgroupId: bigint;
  bytesSent: bigint;
  bytesReceived: bigint;
  segsSent: number;
  segsReceived: number;
  srttUs: number;
  rttvarUs: number;
  retransmits: number;
  synRetransmits: number;
  connectUs: number;
  netnsIno: number;
  pid: number;
  tid: number;
  recordSeq: number;
  family: number;
  clientPort: number;
  serverPort: number;
  side: number;
  kind: number;
  lastState: number;
  flags: number;
  clientAddress: string;
  serverAddress: string;
  comm: string;
}

const o = FLOW_RECORD.offsets;

export function decodeFlowRecord(view: DataView, offset: number, size: number): FlowRecord {
  if (size < FLOW_RECORD.size || recordType(view, offset) !== RecordType.flow || recordVersion(view, offset) !== FLOW_RECORD.version) {
    throw new DecodeError(`flow record: expected type ${RecordType.flow} v${FLOW_RECORD.version} of ${FLOW_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`, { field: 'header' });
  }
  return {
    monotonicNs: recordMonotonicNs(view, offset),
    connId: view.getBigUint64(offset + o.conn_id, true),
    startMonotonicNs: view.getBigUint64(offset + o.start_ns, true),
    cgroupId: view.getBigUint64(offset + o.cgroup_id, true),
    bytesSent: view.getBigUint64(offset + o.bytes_sent, true),
    bytesReceived: view.getBigUint64(offset + o.bytes_received, true),
    segsSent: view.getUint32(offset + o.segs_sent, true),
    segsReceived: view.getUint32(offset + o.segs_received, true),
    srttUs: view.getUint32(offset + o.srtt_us, true),
    rttvarUs: view.getUint32(offset + o.rttvar_us, true),
    retransmits: view.getUint32(offset + o.retransmits, true),
    synRetransmits: view.getUint32(offset + o.syn_retransmits, true),
    connectUs: view.getUint32(offset + o.connect_us, true),
    netnsIno: view.getUint32(offset + o.netns_ino, true),
    pid: view.getUint32(offset + o.pid, true),
    tid: view.getUint32(offset + o.tid, true),
    recordSeq: view.getUint32(offset + o.record_seq, true),
    family: view.getUint16(offset + o.family, true),
    clientPort: view.getUint16(offset + o.client_port, true),
    serverPort: view.getUint16(offset + o.server_port, true),
    side: view.getUint8(offset + o.side),
    kind: view.getUint8(offset + o.kind),
    lastState: view.getUint8(offset + o.last_state),
    flags: view.getUint8(offset + o.flags),
    clientAddress: formatAddress(view, offset + o.client_addr),
    serverAddress: formatAddress(view, offset + o.server_addr),
    comm: decodeComm(view, offset + o.comm),
  };
}
