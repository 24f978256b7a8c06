/**
 * struct sl_flow_record (bpf/include/records.h), written by bpf/flows.bpf.c: one TCP connection seen from one side.
 * FLOW_RECORD and the enum mirrors below are registered in ./layouts.ts, whose test compares them with the compiled
 * BTF; test/ebpf/records-golden.test.ts pins FlowRecordView (through decodeFlowRecord) to compiler-made bytes
 * (fixtures/sl_flow_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { formatAddress, isV4Mapped, writeAddress } from './address.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';
import { decodeComm, writeComm } from './comm.js';
import { readU64, type U64 } from './u64.js';

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
  values: { rstSent: 0x01, rstReceived: 0x02, established: 0x04, finSent: 0x08, finReceived: 0x10, error: 0x20, adopted: 0x40 },
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
const EMPTY = new DataView(new ArrayBuffer(FLOW_RECORD.size));

/**
 * One sl_flow_record read in place, field by field, when asked: the one reader of the layout. An encoder that writes
 * fields as it reads them (src/collector/flows/encode.ts) allocates nothing for the fields it copies; decodeFlowRecord
 * copies every field into a FlowRecord. A view reads one record at a time (point), and only while the record is
 * there: a ring record, until the handler it was given to returns.
 */
export class FlowRecordView {
  private view: DataView = EMPTY;
  private at = 0;

  /** Reads the record at `offset` from now on; throws a DecodeError (field `header`) on another type, version or size. */
  point(view: DataView, offset: number, size: number): this {
    if (size < FLOW_RECORD.size || recordType(view, offset) !== RecordType.flow || recordVersion(view, offset) !== FLOW_RECORD.version) {
      throw new DecodeError(`flow record: expected type ${RecordType.flow} v${FLOW_RECORD.version} of ${FLOW_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`, { field: 'header' });
    }
    this.view = view;
    this.at = offset;
    return this;
  }

  /** When the counters were read, kernel monotonic ns. */
  get monotonicNs(): bigint {
    return recordMonotonicNs(this.view, this.at);
  }
  get connId(): U64 {
    return this.u64(o.conn_id);
  }
  get startMonotonicNs(): bigint {
    return this.view.getBigUint64(this.at + o.start_ns, true);
  }
  get cgroupId(): bigint {
    return this.view.getBigUint64(this.at + o.cgroup_id, true);
  }
  get bytesSent(): U64 {
    return this.u64(o.bytes_sent);
  }
  get bytesReceived(): U64 {
    return this.u64(o.bytes_received);
  }
  get segsSent(): number {
    return this.u32(o.segs_sent);
  }
  get segsReceived(): number {
    return this.u32(o.segs_received);
  }
  get srttUs(): number {
    return this.u32(o.srtt_us);
  }
  get rttvarUs(): number {
    return this.u32(o.rttvar_us);
  }
  get retransmits(): number {
    return this.u32(o.retransmits);
  }
  get synRetransmits(): number {
    return this.u32(o.syn_retransmits);
  }
  get connectUs(): number {
    return this.u32(o.connect_us);
  }
  get netnsIno(): number {
    return this.u32(o.netns_ino);
  }
  get pid(): number {
    return this.u32(o.pid);
  }
  get tid(): number {
    return this.u32(o.tid);
  }
  get recordSeq(): number {
    return this.u32(o.record_seq);
  }
  get family(): number {
    return this.view.getUint16(this.at + o.family, true);
  }
  get clientPort(): number {
    return this.view.getUint16(this.at + o.client_port, true);
  }
  get serverPort(): number {
    return this.view.getUint16(this.at + o.server_port, true);
  }
  get side(): number {
    return this.view.getUint8(this.at + o.side);
  }
  get kind(): number {
    return this.view.getUint8(this.at + o.kind);
  }
  get lastState(): number {
    return this.view.getUint8(this.at + o.last_state);
  }
  get flags(): number {
    return this.view.getUint8(this.at + o.flags);
  }
  get clientAddress(): string {
    return formatAddress(this.view, this.at + o.client_addr);
  }
  get serverAddress(): string {
    return formatAddress(this.view, this.at + o.server_addr);
  }
  get comm(): string {
    return decodeComm(this.view, this.at + o.comm);
  }

  /** Whether the server address is IPv4 (stored v4-mapped), as its text then shows. */
  get serverIsIPv4(): boolean {
    return isV4Mapped(this.view, this.at + o.server_addr);
  }
  /** clientAddress's text written at `pos` (at most MAX_ADDRESS_TEXT bytes); returns the position after it. */
  writeClientAddress(target: Uint8Array, pos: number): number {
    return writeAddress(this.view, this.at + o.client_addr, target, pos);
  }
  writeServerAddress(target: Uint8Array, pos: number): number {
    return writeAddress(this.view, this.at + o.server_addr, target, pos);
  }
  /** The UTF-8 of comm written at `pos` (at most 2 × COMM_BYTES bytes); returns the position after it. */
  writeComm(target: Uint8Array, pos: number): number {
    return writeComm(this.view, this.at + o.comm, target, pos);
  }

  private u32(field: number): number {
    return this.view.getUint32(this.at + field, true);
  }

  private u64(field: number): U64 {
    return readU64(this.view, this.at + field);
  }
}

const reader = new FlowRecordView();

/** Every field of the record at `offset`, copied. */
export function decodeFlowRecord(view: DataView, offset: number, size: number): FlowRecord {
  const r = reader.point(view, offset, size);
  return {
    monotonicNs: r.monotonicNs,
    connId: BigInt(r.connId),
    startMonotonicNs: r.startMonotonicNs,
    cgroupId: r.cgroupId,
    bytesSent: BigInt(r.bytesSent),
    bytesReceived: BigInt(r.bytesReceived),
    segsSent: r.segsSent,
    segsReceived: r.segsReceived,
    srttUs: r.srttUs,
    rttvarUs: r.rttvarUs,
    retransmits: r.retransmits,
    synRetransmits: r.synRetransmits,
    connectUs: r.connectUs,
    netnsIno: r.netnsIno,
    pid: r.pid,
    tid: r.tid,
    recordSeq: r.recordSeq,
    family: r.family,
    clientPort: r.clientPort,
    serverPort: r.serverPort,
    side: r.side,
    kind: r.kind,
    lastState: r.lastState,
    flags: r.flags,
    clientAddress: r.clientAddress,
    serverAddress: r.serverAddress,
    comm: r.comm,
  };
}
