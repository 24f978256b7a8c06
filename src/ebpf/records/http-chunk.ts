/**
 * struct sl_http_chunk_record (bpf/include/records.h), written by bpf/http.bpf.c: one read or write of a traced TCP
 * connection with its first bytes. HTTP_CHUNK_RECORD and the enum mirrors below are registered in ./layouts.ts,
 * whose test compares them with the compiled BTF; test/ebpf/records-golden.test.ts pins decodeHttpChunkRecord to
 * compiler-made bytes (fixtures/sl_http_chunk_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { formatAddress } from './address.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';

/** The fixed part; `data` (the copied bytes) follows it, so a record is size + copied bytes long. */
export const HTTP_CHUNK_RECORD = {
  struct: 'sl_http_chunk_record',
  size: 104,
  version: 1,
  offsets: {
    header: 0,
    conn_id: 16,
    cgroup_id: 24,
    call_start_ns: 32,
    length: 40,
    pid: 48,
    tid: 52,
    copied: 56,
    direction: 60,
    flags: 61,
    family: 62,
    client_port: 64,
    server_port: 66,
    side: 68,
    _pad0: 69,
    client_addr: 72,
    server_addr: 88,
    data: 104,
  },
} as const;

export const HTTP_DIRECTION = { enum: 'sl_http_direction', prefix: 'SL_HTTP_', values: { sent: 1, received: 2 } } as const;
export const HttpDirection = HTTP_DIRECTION.values;

export const HTTP_CHUNK_FLAG = { enum: 'sl_http_chunk_flag', prefix: 'SL_HTTP_CHUNK_', values: { truncated: 0x01 } } as const;
export const HttpChunkFlag = HTTP_CHUNK_FLAG.values;

export const HTTP_CAPTURE = { enum: 'sl_http_capture', prefix: 'SL_HTTP_', values: { captureMax: 1024, maxIovecs: 8 } } as const;
/** Most bytes the kernel program can copy of one call (the bound of http.captureBytes). */
export const HTTP_CAPTURE_MAX = HTTP_CAPTURE.values.captureMax;

export interface HttpChunkRecord {
  /** When the call returned, kernel monotonic ns. */
  monotonicNs: bigint;
  connId: bigint;
  /** cgroup v2 id of the socket (its flow records carry the same). */
  cgroupId: bigint;
  /** When the call entered. */
  callStartNs: bigint;
  /** The call's return value: the bytes it wrote or read (a number: one call moves far less than 2^53 bytes). */
  length: number;
  pid: number;
  tid: number;
  direction: number;
  flags: number;
  /**
   * The copied bytes, a view of the record's memory (no copy): valid only until the ring handler returns, which is
   * all the parser needs (it copies what it keeps of a split line).
   */
  data: Buffer;
}

const o = HTTP_CHUNK_RECORD.offsets;

export function decodeHttpChunkRecord(view: DataView, offset: number, size: number): HttpChunkRecord {
  if (size < HTTP_CHUNK_RECORD.size || recordType(view, offset) !== RecordType.httpChunk || recordVersion(view, offset) !== HTTP_CHUNK_RECORD.version) {
    throw new DecodeError(
      `http chunk record: expected type ${RecordType.httpChunk} v${HTTP_CHUNK_RECORD.version} of at least ${HTTP_CHUNK_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`,
      { field: 'header' },
    );
  }
  const copied = view.getUint32(offset + o.copied, true);
  const length = view.getBigUint64(offset + o.length, true);
  if (HTTP_CHUNK_RECORD.size + copied > size || BigInt(copied) > length) {
    throw new DecodeError(`http chunk record: ${copied} bytes copied of a ${length}-byte call do not fit a ${size}-byte record`, { field: 'copied' });
  }
  return {
    monotonicNs: recordMonotonicNs(view, offset),
    connId: view.getBigUint64(offset + o.conn_id, true),
    cgroupId: view.getBigUint64(offset + o.cgroup_id, true),
    callStartNs: view.getBigUint64(offset + o.call_start_ns, true),
    length: Number(length),
    pid: view.getUint32(offset + o.pid, true),
    tid: view.getUint32(offset + o.tid, true),
    direction: view.getUint8(offset + o.direction),
    flags: view.getUint8(offset + o.flags),
    data: Buffer.from(view.buffer, view.byteOffset + offset + o.data, copied),
  };
}

/** The connection's ends, as its flow records name them (client and server, by the socket's side). */
export interface HttpChunkEnds {
  /** enum sl_flow_side of the observing socket (FLOW_SIDE). */
  side: number;
  clientAddress: string;
  clientPort: number;
  serverAddress: string;
  serverPort: number;
}

/**
 * The ends a chunk record carries. Apart from decodeHttpChunkRecord because every record of a connection carries the
 * same ends: the capture reads them once, for a connection's first record, instead of formatting two addresses per
 * call. `view`/`offset` as decodeHttpChunkRecord took them (the record is checked there).
 */
export function decodeHttpChunkEnds(view: DataView, offset: number): HttpChunkEnds {
  return {
    side: view.getUint8(offset + o.side),
    clientAddress: formatAddress(view, offset + o.client_addr),
    clientPort: view.getUint16(offset + o.client_port, true),
    serverAddress: formatAddress(view, offset + o.server_addr),
    serverPort: view.getUint16(offset + o.server_port, true),
  };
}
