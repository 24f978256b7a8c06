/**
 * The rows of one insert, written as RowBinary as they are added (flow-row.ts, http-row.ts, verdict-row.ts build on
 * it), and what every event table's rows share: the Kafka position each row carries, the identity columns of both
 * ends (the event-time join, src/metadata/index/), and the encodings of addresses, the observer side and the network
 * type.
 *
 * RowBinary, column by column: fixed-width little-endian integers, DateTime64(9) as Int64 nanoseconds, IPv6 as its
 * 16 bytes, strings as a varint length and UTF-8 bytes, an Array as a varint count and its elements, a Map as a
 * varint count and its key/value pairs. No number becomes text and back, which is most of what a text format costs
 * on both sides (bench/enricher). A value the table cannot hold (an address that does not parse, an unknown enum
 * name) throws a RejectedValueError: retrying the same rows cannot help.
 */
import { RejectedValueError } from '../common/errors.js';
import type { ConnectionEnds, EndpointIdentity, FlowIdentities } from '../metadata/index/identity.js';

/** Where the event came from, kept on the row so a restart can tell what is already stored. */
export interface KafkaPosition {
  topic: string;
  partition: number;
  offset: string;
}

/** Where rows stood, to go back to when a message turns out to hold a row the table cannot take. */
export interface RowsCheckpoint {
  readonly length: number;
  readonly byteLength: number;
}

/** The address columns every event table has, as the events name them. */
export interface AddressColumns {
  readonly network_type: string;
  readonly client_address: string;
  readonly client_port: number;
  readonly server_address: string;
  readonly server_port: number;
}

/** Columns as [name, type], in RowBinary order, with the types their bytes are written as. */
export type Columns = ReadonlyArray<readonly [name: string, type: string]>;

/**
 * One event topic's table, as the enricher stores it (flow-row.ts FLOWS_TABLE, http-row.ts HTTP_TABLE, verdict-row.ts
 * VERDICTS_TABLE).
 */
export interface EventTable<Event> {
  /** The table's name in the database. */
  readonly name: string;
  /** The columns its rows are written with. */
  readonly columns: Columns;
  /** Empty rows with room for `capacityBytes`. */
  rows(capacityBytes: number): RowBinaryRows<Event>;
  /** When the event's two ends are named (the event-time join's time). */
  joinTimeNs(event: Event): bigint;
  /** What the join reads of the event: which end observed it, and both ends' addresses (a flow or HTTP event is its own). */
  ends(event: Event): ConnectionEnds;
}

/** The identity columns of one end (`flows` migration 4, `http_requests` migration 7), for the client end, then the server end. */
export const IDENTITY_COLUMNS: Columns = [
  ['k8s_namespace_name', 'String'],
  ['k8s_pod_name', 'String'],
  ['k8s_pod_uid', 'String'],
  ['k8s_workload_kind', 'String'],
  ['k8s_workload_name', 'String'],
  ['k8s_service_name', 'String'],
  ['k8s_node_name', 'String'],
  ['endpoint_kind', "Enum8('unknown' = 0, 'pod' = 1, 'service' = 2, 'node' = 3, 'external' = 4)"],
  ['labels', 'Map(String, String)'],
  ['enrichment', "Enum8('hit' = 1, 'miss' = 2, 'late' = 3)"],
];

/** Both ends' identity columns, the join's client end first (`<first>_k8s_namespace_name`, ...). */
export function endsIdentityColumns(first: string, second: string): Columns {
  return [first, second].flatMap((end) => IDENTITY_COLUMNS.map(([suffix, type]) => [`${end}_${suffix}`, type] as const));
}

/** Both ends' identity columns of a connection's tables (flows, http_requests), client first. */
export const ENDS_IDENTITY_COLUMNS: Columns = endsIdentityColumns('client', 'server');

/** The columns every row ends with (RowBinaryRows writes them). */
export const POSITION_COLUMNS: Columns = [
  ['kafka_topic', 'String'],
  ['kafka_partition', 'UInt32'],
  ['kafka_offset', 'UInt64'],
];

/**
 * Buffers of rows that were released (inserted, or given up), for the next rows to write into: a batch's rows take
 * tens of megabytes, and a fresh buffer of that size cost a page fault per 4 KiB written, a copy at each growth, and
 * the garbage collections V8 runs when that much external memory is allocated (bench/enrich-join: about 0.4 CPU-s
 * per 384,000 joined rows). A few are kept (the enricher's event topics each have a batch in flight at most), and a
 * spare is taken only by rows that need at least a quarter of it, so a burst's buffers go once batches are small.
 */
class SpareBuffers {
  private readonly buffers: Buffer[] = [];

  constructor(private readonly keep: number) {}

  /** A spare of at least `capacity` bytes and at most four times that, if there is one. */
  take(capacity: number): Buffer | undefined {
    const i = this.buffers.findIndex((buffer) => buffer.length >= capacity && buffer.length <= 4 * capacity);
    return i < 0 ? undefined : this.buffers.splice(i, 1)[0];
  }

  give(buffer: Buffer): void {
    if (buffer.length === 0) return;
    this.buffers.push(buffer);
    // The oldest go first: a small batch's rows stop reusing (and keeping) a burst's buffers.
    if (this.buffers.length > this.keep) this.buffers.shift();
  }
}

const spareBuffers = new SpareBuffers(3);
const EMPTY = Buffer.alloc(0);

/**
 * The rows of one insert, written as RowBinary as they are added, so the events they came from can be collected at
 * once instead of living (and being copied by the GC) until the insert. A row that throws leaves nothing behind.
 * A subclass writes its event's columns from `pos` and ends each row with `endRow`, which adds both ends' identity
 * columns and the Kafka position.
 */
export abstract class RowBinaryRows<Event> {
  /** Rows added. */
  length = 0;
  protected buf: Buffer;
  protected view: DataView;
  protected pos = 0;
  /** The Kafka position of the previous row and its bytes: rows of one message share them. */
  private lastPosition: KafkaPosition | undefined;
  protected positionBytes = Buffer.alloc(0);

  constructor(capacity = 256 * 1024) {
    this.buf = spareBuffers.take(capacity) ?? Buffer.allocUnsafe(Math.max(capacity, 1024));
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  }

  /** Adds the row of one event; throws RejectedValueError (leaving nothing behind) for a value the table cannot hold. */
  abstract add(event: Event, identities: FlowIdentities, position: KafkaPosition): void;

  /** Done with: their buffer goes to the spares, for the next rows (the rows must not be used after). */
  release(): void {
    spareBuffers.give(this.buf);
    this.buf = EMPTY;
    this.view = new DataView(EMPTY.buffer, EMPTY.byteOffset, 0);
    this.length = 0;
    this.pos = 0;
  }

  /** The RowBinary bytes of the rows so far (a view: valid until the next add). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  checkpoint(): RowsCheckpoint {
    return { length: this.length, byteLength: this.pos };
  }

  restore(checkpoint: RowsCheckpoint): void {
    this.length = checkpoint.length;
    this.pos = checkpoint.byteLength;
  }

  /** Makes `position` the one `endRow` writes (before `reserve`, which counts its bytes). */
  protected usePosition(position: KafkaPosition): void {
    if (position !== this.lastPosition) this.setPosition(position);
  }

  /** network_type, client_address, client_port, server_address, server_port: the 37 bytes from `p`. */
  protected addressColumns(p: number, ends: AddressColumns): void {
    this.endpointColumns(p, ends.network_type, ends.client_address, ends.client_port, ends.server_address, ends.server_port);
  }

  /** The network type (Enum8), then two (IPv6 address, UInt16 port) pairs: the 37 bytes from `p`. */
  protected endpointColumns(p: number, type: string, firstAddress: string, firstPort: number, secondAddress: string, secondPort: number): void {
    this.view.setInt8(p, networkType(type));
    writeAddress(this.buf, p + 1, firstAddress);
    this.view.setUint16(p + 17, firstPort, true);
    writeAddress(this.buf, p + 19, secondAddress);
    this.view.setUint16(p + 35, secondPort, true);
  }

  /**
   * Writes both ends' identity columns (`client`, `server`: identityBytes) and the Kafka position from `p`, and
   * counts the row: only a row written to the end counts (one that threw is overwritten by the next).
   */
  protected endRow(p: number, client: Uint8Array, server: Uint8Array): void {
    p = copy(this.buf, p, client);
    p = copy(this.buf, p, server);
    this.pos = copy(this.buf, p, this.positionBytes);
    this.length++;
  }

  /** kafka_topic, kafka_partition, kafka_offset: the same bytes for every row of a message. */
  private setPosition(position: KafkaPosition): void {
    const topic = Buffer.from(position.topic, 'utf8');
    const bytes = Buffer.alloc(varintLength(topic.length) + topic.length + 12);
    let p = writeVarint(bytes, 0, topic.length);
    p += topic.copy(bytes, p);
    bytes.writeUInt32LE(position.partition, p);
    bytes.writeBigUInt64LE(BigInt(position.offset), p + 4);
    this.positionBytes = bytes;
    this.lastPosition = position;
  }

  protected reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.length);
  }

  /** Array(String): the varint count, then each string. */
  protected strings(p: number, texts: readonly string[]): number {
    p = writeVarint(this.buf, p, texts.length);
    for (const text of texts) p = this.string(p, text);
    return p;
  }

  /** Varint length + UTF-8 bytes; ASCII strings (nearly all of them) are copied code unit by code unit. */
  protected string(p: number, text: string): number {
    const buf = this.buf;
    const length = text.length;
    if (length < 128) {
      let i = 0;
      for (; i < length; i++) {
        const code = text.charCodeAt(i);
        if (code >= 0x80) break;
        buf[p + 1 + i] = code;
      }
      if (i === length) {
        buf[p] = length;
        return p + 1 + length;
      }
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    p = writeVarint(buf, p, bytes);
    return p + buf.write(text, p, bytes, 'utf8');
  }
}

/**
 * One end's identity columns as RowBinary (IDENTITY_COLUMNS order), encoded once per identity object: the index
 * hands out shared identities that never change (one per object state, and constants for the misses), so a row
 * copies a few dozen bytes instead of encoding seven strings and the labels again, reading objects of many shapes.
 * Throws a RejectedValueError for an enum name the table does not have, before anything is written.
 */
const encodedIdentities = new WeakMap<EndpointIdentity, Uint8Array>();

export function identityBytes(identity: EndpointIdentity): Uint8Array {
  let bytes = encodedIdentities.get(identity);
  if (bytes === undefined) {
    bytes = encodeIdentity(identity);
    encodedIdentities.set(identity, bytes);
  }
  return bytes;
}

function encodeIdentity(identity: EndpointIdentity): Uint8Array {
  const parts: Uint8Array[] = [];
  const text = (value: string): void => {
    const bytes = Buffer.from(value, 'utf8');
    parts.push(varint(bytes.length), bytes);
  };
  text(identity.k8s_namespace_name);
  text(identity.k8s_pod_name);
  text(identity.k8s_pod_uid);
  text(identity.k8s_workload_kind);
  text(identity.k8s_workload_name);
  text(identity.k8s_service_name);
  text(identity.k8s_node_name);
  const labels = Object.entries(identity.labels);
  parts.push(Uint8Array.of(endpointKind(identity.kind)), varint(labels.length));
  for (const [key, value] of labels) {
    text(key);
    text(value);
  }
  parts.push(Uint8Array.of(enrichment(identity.status)));
  return Buffer.concat(parts);
}

/**
 * Copies `bytes` to `p`; returns where they end. A loop for the few bytes of a miss or a Kafka position (a native
 * call costs more than it saves there), set() for the names and labels of a hit: ~6% of writing a joined row.
 */
function copy(buf: Uint8Array, p: number, bytes: Uint8Array): number {
  if (bytes.length > 48) {
    buf.set(bytes, p);
    return p + bytes.length;
  }
  for (let i = 0; i < bytes.length; i++) buf[p + i] = bytes[i]!;
  return p + bytes.length;
}

function varint(value: number): Uint8Array {
  const bytes = new Uint8Array(varintLength(value));
  writeVarint(bytes, 0, value);
  return bytes;
}

/** Enum8 values of the tables (comparisons: a keyed lookup here was a megamorphic load on every row). */
export function observerSide(name: string): number {
  if (name === 'client') return 1;
  if (name === 'server') return 2;
  throw badEnum('observer_side', name, 'client, server');
}

function networkType(name: string): number {
  if (name === 'ipv4') return 4;
  if (name === 'ipv6') return 6;
  throw badEnum('network_type', name, 'ipv4, ipv6');
}

function endpointKind(name: EndpointIdentity['kind']): number {
  if (name === 'pod') return 1;
  if (name === 'service') return 2;
  if (name === 'node') return 3;
  if (name === 'external') return 4;
  if (name === 'unknown') return 0;
  throw badEnum('client_endpoint_kind or server_endpoint_kind', name, 'unknown, pod, service, node, external');
}

function enrichment(name: EndpointIdentity['status']): number {
  if (name === 'hit') return 1;
  if (name === 'miss') return 2;
  if (name === 'late') return 3;
  throw badEnum('client_enrichment or server_enrichment', name, 'hit, miss, late');
}

export function badEnum(column: string, name: string, names: string): RejectedValueError {
  return new RejectedValueError(`${column}: "${name}" is not one of ${names}`, { field: column });
}

function varintLength(value: number): number {
  let length = 1;
  while (value >= 0x80) {
    value >>>= 7;
    length++;
  }
  return length;
}

function writeVarint(buf: Uint8Array, p: number, value: number): number {
  while (value >= 0x80) {
    buf[p++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[p++] = value;
  return p;
}

/**
 * The 16 bytes of an IPv6 column from address text: dotted IPv4 becomes v4-mapped (::ffff:a.b.c.d), as ClickHouse
 * stores it; IPv6 text may compress zeros (::) and end in dotted IPv4.
 */
export function writeAddress(buf: Uint8Array, p: number, text: string): void {
  if (text.indexOf(':') < 0) {
    for (let i = 0; i < 10; i++) buf[p + i] = 0; // a loop: fill() is a native call, dearer for 10 bytes
    buf[p + 10] = 0xff;
    buf[p + 11] = 0xff;
    if (parseIPv4(buf, p + 12, text, 0) !== text.length) throw badAddress(text);
    return;
  }
  writeIPv6(buf, p, text);
}

/** Parses a.b.c.d starting at `start` into 4 bytes; returns where it stopped, or -1 when it is not an address. */
function parseIPv4(buf: Uint8Array, p: number, text: string, start: number): number {
  let i = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0) {
      if (text.charCodeAt(i) !== 0x2e) return -1;
      i++;
    }
    let value = 0;
    let digits = 0;
    for (;;) {
      const code = text.charCodeAt(i);
      if (!(code >= 0x30 && code <= 0x39) || digits === 3) break; // NaN past the end fails the test too
      value = value * 10 + code - 0x30;
      digits++;
      i++;
    }
    if (digits === 0 || value > 255) return -1;
    buf[p + octet] = value;
  }
  return i;
}

function writeIPv6(buf: Uint8Array, p: number, text: string): void {
  const groups: number[] = [];
  let gap = -1; // index in groups where '::' stands
  let i = 0;
  const end = text.length;
  if (text.startsWith('::')) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    // An embedded IPv4 tail (::ffff:10.0.0.1) takes the last two groups.
    if (text.indexOf('.', i) >= 0 && text.indexOf(':', i) < 0) {
      const v4 = new Uint8Array(4);
      if (parseIPv4(v4, 0, text, i) !== end) throw badAddress(text);
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      i = end;
      break;
    }
    let value = 0;
    let digits = 0;
    for (; i < end && digits < 5; i++, digits++) {
      const digit = hexDigit(text.charCodeAt(i));
      if (digit < 0) break;
      value = (value << 4) | digit;
    }
    if (digits === 0 || digits > 4) throw badAddress(text);
    groups.push(value);
    if (i === end) break;
    if (text.charCodeAt(i) !== 0x3a) throw badAddress(text);
    i++;
    if (text.charCodeAt(i) === 0x3a) {
      if (gap >= 0) throw badAddress(text);
      gap = groups.length;
      i++;
    } else if (i === end) throw badAddress(text);
  }
  if (gap < 0 ? groups.length !== 8 : groups.length > 7) throw badAddress(text);
  const zeros = 8 - groups.length;
  buf.fill(0, p, p + 16);
  for (let g = 0, out = 0; g < groups.length; g++, out++) {
    if (g === gap) out += zeros;
    buf[p + 2 * out] = groups[g]! >> 8;
    buf[p + 2 * out + 1] = groups[g]! & 0xff;
  }
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  return -1;
}

function badAddress(text: string): RejectedValueError {
  return new RejectedValueError(`"${text}" is not an IPv4 or IPv6 address`, { field: 'an address column (client or server, source or destination)' });
}
