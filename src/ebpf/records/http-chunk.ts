/**
 * struct sl_http_chunk_record (bpf/include/records.h), written by bpf/http.bpf.c: one send or receive of a traced TCP
 * connection with its first bytes. HTTP_CHUNK_RECORD and the enum mirrors below are registered in ./layouts.ts,
 * whose test compares them with the compiled BTF; test/ebpf/records-golden.test.ts pins decodeHttpChunkRecord to
 * compiler-made bytes (fixtures/sl_http_chunk_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { formatAddress } from './address.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';
import { readU64, type U64 } from './u64.js';

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

export const HTTP_CHUNK_FLAG = { enum: 'sl_http_chunk_flag', prefix: 'SL_HTTP_CHUNK_', values: { truncated: 0x01, adopted: 0x02 } } as const;
export const HttpChunkFlag = HTTP_CHUNK_FLAG.values;

export const HTTP_CAPTURE = { enum: 'sl_http_capture', prefix: 'SL_HTTP_', values: { captureMax: 16384, maxIovecs: 8 } } as const;
/** Most bytes the kernel program can copy of one call (the bound of http.captureBytes and http.headBytes). */
export const HTTP_CAPTURE_MAX = HTTP_CAPTURE.values.captureMax;

export interface HttpChunkRecord {
  /** When the call returned, kernel monotonic ns. */
  monotonicNs: bigint;
  connId: bigint;
  /** cgroup v2 id of the socket (its flow records carry the same). */
  cgroupId: bigint;
  /** A send: when it began (its return when that was not seen); a receive: its return, as monotonicNs. */
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
const EMPTY = new DataView(new ArrayBuffer(HTTP_CHUNK_RECORD.size));

/** What a reader of chunk records takes: a decoded record, or a view reading one in place (conn id as a U64). */
export type HttpChunk = Omit<HttpChunkRecord, 'connId'> & { readonly connId: U64 };

/**
 * One sl_http_chunk_record read in place, field by field, when asked: the one reader of the layout. The capture
 * reads a record's fields once each, and most of them not at all (the cgroup and the ends: once per connection),
 * so a record costs no object and only the bigint of the one time it feeds; decodeHttpChunkRecord copies every
 * field. A view reads one record at a time (point), and only while the record is there: a ring record, until the
 * handler it was given to returns.
 */
export class HttpChunkView implements HttpChunk {
  private view: DataView = EMPTY;
  private at = 0;
  private copied = 0;
  /** The bytes of the memory `view` reads (a ring's: one view for all its records), made once per view. */
  private viewBytes: Buffer = Buffer.alloc(0);
  private bytesOf: DataView | undefined;

  /** Reads the record at `offset` from now on; throws a DecodeError (field `header` or `copied`) on one it cannot read. */
  point(view: DataView, offset: number, size: number): this {
    if (size < HTTP_CHUNK_RECORD.size || recordType(view, offset) !== RecordType.httpChunk || recordVersion(view, offset) !== HTTP_CHUNK_RECORD.version) {
      throw new DecodeError(
        `http chunk record: expected type ${RecordType.httpChunk} v${HTTP_CHUNK_RECORD.version} of at least ${HTTP_CHUNK_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`,
        { field: 'header' },
      );
    }
    const copied = view.getUint32(offset + o.copied, true);
    const length = readU64(view, offset + o.length);
    if (HTTP_CHUNK_RECORD.size + copied > size || copied > length) {
      throw new DecodeError(`http chunk record: ${copied} bytes copied of a ${length}-byte call do not fit a ${size}-byte record`, { field: 'copied' });
    }
    this.view = view;
    this.at = offset;
    this.copied = copied;
    return this;
  }

  /** When the call returned, kernel monotonic ns. */
  get monotonicNs(): bigint {
    return recordMonotonicNs(this.view, this.at);
  }
  get connId(): U64 {
    return readU64(this.view, this.at + o.conn_id);
  }
  /** cgroup v2 id of the socket (its flow records carry the same). */
  get cgroupId(): bigint {
    return this.view.getBigUint64(this.at + o.cgroup_id, true);
  }
  /** When the call entered. */
  get callStartNs(): bigint {
    return this.view.getBigUint64(this.at + o.call_start_ns, true);
  }
  /** The call's return value (a number: one call moves far less than 2^53 bytes). */
  get length(): number {
    return Number(readU64(this.view, this.at + o.length));
  }
  get pid(): number {
    return this.view.getUint32(this.at + o.pid, true);
  }
  get tid(): number {
    return this.view.getUint32(this.at + o.tid, true);
  }
  get direction(): number {
    return this.view.getUint8(this.at + o.direction);
  }
  get flags(): number {
    return this.view.getUint8(this.at + o.flags);
  }
  /** The copied bytes, a view of the record's memory (no copy): valid only until the ring handler returns. */
  get data(): Buffer {
    return Buffer.from(this.view.buffer, this.view.byteOffset + this.at + o.data, this.copied);
  }
  /**
   * The memory the record is in, of which its copied bytes are [dataStart, dataEnd): the same Buffer for every record
   * of a ring, so that reading a record's bytes makes no Buffer (data makes one).
   */
  get bytes(): Buffer {
    if (this.bytesOf !== this.view) {
      this.viewBytes = Buffer.from(this.view.buffer, this.view.byteOffset, this.view.byteLength);
      this.bytesOf = this.view;
    }
    return this.viewBytes;
  }
  get dataStart(): number {
    return this.at + o.data;
  }
  get dataEnd(): number {
    return this.at + o.data + this.copied;
  }
  /** The connection's ends (every record of a connection carries the same). */
  ends(): HttpChunkEnds {
    return decodeHttpChunkEnds(this.view, this.at);
  }
}

const reader = new HttpChunkView();

/** Every field of the record at `offset`, copied (the data still a view of the record's memory). */
export function decodeHttpChunkRecord(view: DataView, offset: number, size: number): HttpChunkRecord {
  const r = reader.point(view, offset, size);
  return {
    monotonicNs: r.monotonicNs,
    connId: BigInt(r.connId),
    cgroupId: r.cgroupId,
    callStartNs: r.callStartNs,
    length: r.length,
    pid: r.pid,
    tid: r.tid,
    direction: r.direction,
    flags: r.flags,
    data: r.data,
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
