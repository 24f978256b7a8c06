/**
 * Avro codecs for every event on a topic, with Confluent framing: byte 0 = magic 0, bytes 1-4 = schema id (uint32
 * big-endian), then the Avro binary body. Ids come from `schemas/catalog.json` (id → subject + .avsc file), kept in
 * the repo because no schema registry runs next to us; an id, once published, never changes meaning, so an id no
 * longer used goes to `schemas/retired.json` and the catalog cannot take it again.
 *
 * Every Avro `long` is a BigInt (nanosecond timestamps exceed 2^53, which avsc's default long rejects). Encoders
 * accept a bigint or a safe-integer number; decoders always return bigint.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { AvroWriter, isLong, writeBigLong } from './avro-writer.js';
import { ConfigError, DecodeError, SidecarlessError, describeError } from './errors.js';

type Type = avsc.Type;
type Resolver = ReturnType<Type['createResolver']>;

/** Bytes before the Avro body: magic byte and schema id. */
export const FRAME_HEADER_BYTES = 5;
const MAGIC = 0;

/** avsc hands the long to Avro's zig-zag packing as 8 little-endian bytes; one buffer serves every write. */
const longBytes = Buffer.alloc(8);

const genericLong = avsc.types.LongType.__with({
  fromBuffer: (bytes: Buffer) => bytes.readBigInt64LE(0),
  toBuffer: (value: bigint | number) => {
    longBytes.writeBigInt64LE(BigInt(value));
    return longBytes;
  },
  fromJSON: (json: bigint | number | string) => BigInt(json),
  // JSON has no bigint: a long that a number cannot hold exactly becomes a string.
  toJSON: (value: bigint) => (value >= -Number.MAX_SAFE_INTEGER && value <= Number.MAX_SAFE_INTEGER ? Number(value) : value.toString()),
  isValid: isLong,
  compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
});

/**
 * The hot path of that long, replacing avsc's generic one (bigint -> 8-byte buffer -> zig-zag repacking, and a
 * fresh 8-byte buffer per long read): the 64 bits go through one DataView as two 32-bit halves, zig-zag and
 * varint work on those halves, and a read allocates only the resulting bigint. Same bytes, same values
 * (test/common/avro.test.ts pins the extremes and the errors).
 */
interface Tap {
  buf: Buffer;
  pos: number;
  writeLong(n: number): void;
}
const halves = new DataView(new ArrayBuffer(8));

function writeLong(tap: Tap, value: bigint | number): void {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`invalid "long": ${String(value)}`);
    // avsc's varint of a number is exact in 31 bits only (beyond, it rounds doubles); larger ones take the bigint way.
    if (value >= -0x40000000 && value < 0x40000000) {
      tap.writeLong(value);
      return;
    }
    value = BigInt(value);
  } else if (!isLong(value)) {
    throw new Error(`invalid "long": ${String(value)}`);
  }
  tap.pos = writeBigLong(tap.buf, tap.pos, value);
}

function readLong(tap: Tap): bigint {
  const buf = tap.buf;
  let pos = tap.pos;
  let lo = 0;
  let hi = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = buf[pos++]!; // undefined past the end: the loop stops and avsc sees pos beyond the buffer
    const bits = byte & 0x7f;
    if (shift < 28) lo |= bits << shift;
    else if (shift === 28) {
      lo |= bits << 28;
      hi |= bits >>> 4;
    } else hi |= bits << (shift - 32);
    shift += 7;
  } while (byte & 0x80 && shift < 70);
  tap.pos = pos;
  // Undo zig-zag: (z >>> 1) ^ -(z & 1).
  const sign = -(lo & 1);
  halves.setUint32(0, ((lo >>> 1) | (hi << 31)) ^ sign, true);
  halves.setUint32(4, (hi >>> 1) ^ sign, true);
  return halves.getBigInt64(0, true);
}

/** avsc freezes the type __with returns; a frozen child of it carries the fast paths. */
const bigintLong: Type = Object.freeze(Object.assign(Object.create(genericLong) as Type, { _write: writeLong, _read: readLong }));

/** Every `long`, named or written `{"type": "long"}`, becomes the BigInt long. */
function parseSchema(schema: avsc.Schema): Type {
  return avsc.Type.forSchema(schema, {
    typeHook: (s) => (s === 'long' || (typeof s === 'object' && (s as { type?: unknown }).type === 'long') ? bigintLong : undefined),
  });
}

export interface DecodedEvent<T = unknown> {
  /** Schema id and subject of the writer (from the frame). */
  schemaId: number;
  subject: string;
  value: T;
}

/**
 * Encoding output is first written to one growing scratch buffer, then copied to an exact-size buffer: one
 * allocation per event. Encoding is synchronous, so sharing it is safe.
 */
let scratch = Buffer.allocUnsafe(64 * 1024);

/** One schema of the catalog; fetch it once (`registry.codec`) and reuse it on hot paths. */
export class Codec<T = unknown> {
  /** Resolvers from writer schema id to this (reader) schema, built on first use. */
  private readonly resolvers = new Map<number, Resolver>();

  constructor(
    readonly id: number,
    readonly subject: string,
    readonly type: Type,
  ) {}

  /** A framed event in a buffer of its own. */
  encode(value: T): Buffer {
    let end = this.encodeInto(value, scratch);
    while (end < 0) {
      scratch = Buffer.allocUnsafe(Math.max(2 * scratch.length, scratch.length - end));
      end = this.encodeInto(value, scratch);
    }
    const out = Buffer.allocUnsafe(end);
    scratch.copy(out, 0, 0, end);
    return out;
  }

  /**
   * Writes a framed event at `offset`, for packing many events into one buffer without allocating. Returns the
   * offset after the event, or a negative number when `target` is too small (then the bytes after `offset` are
   * unspecified and at least that many more bytes are needed).
   */
  encodeInto(value: T, target: Buffer, offset = 0): number {
    if (target.length - offset < FRAME_HEADER_BYTES) return target.length - offset - FRAME_HEADER_BYTES;
    target[offset] = MAGIC;
    target.writeUInt32BE(this.id, offset + 1);
    try {
      return this.type.encode(value, target, offset + FRAME_HEADER_BYTES);
    } catch (error) {
      throw encodeError(this.subject, this.type, value, error);
    }
  }

  /**
   * For a batch schema (a record whose only field is an array): a builder that encodes the array's items as they
   * are added and frames them as the record when sealed, so nobody holds the items in between. Items are encoded by
   * the schema, or by `writeItem`, which writes an item's Avro bytes itself (the same bytes: it is the hot path's
   * shortcut, not another format).
   */
  batchBuilder<Item>(writeItem?: ItemWriter<Item>): BatchBuilder<Item> {
    const fields = this.type instanceof avsc.types.RecordType ? this.type.fields : [];
    const items = fields.length === 1 && fields[0]!.type instanceof avsc.types.ArrayType ? fields[0]!.type.itemsType : undefined;
    if (items === undefined) throw new SidecarlessError(`${this.subject} is not a record of one array field`, { context: { component: 'avro', subject: this.subject } });
    return new BatchBuilder<Item>(this, writeItem ?? schemaWriter(this.subject, items));
  }

  /** Decodes the body of `frame`, written with `writer` (this codec or an older version of it). */
  decodeFrom(frame: Buffer, writer: Codec): T {
    const resolver = writer === this ? undefined : this.resolverFor(writer);
    const context = { component: 'avro', schemaId: writer.id, subject: writer.subject };
    let result: { value: T; offset: number };
    try {
      result = this.type.decode(frame, FRAME_HEADER_BYTES, resolver);
    } catch (error) {
      throw new DecodeError(`cannot decode ${writer.subject} (schema id ${writer.id}): ${describeError(error)}`, context);
    }
    if (result.offset < 0) {
      throw new DecodeError(`truncated ${writer.subject} event (schema id ${writer.id}): ${frame.length} bytes`, context);
    }
    if (result.offset !== frame.length) {
      const extra = frame.length - result.offset;
      throw new DecodeError(`${extra} trailing bytes after a ${writer.subject} event (schema id ${writer.id})`, context);
    }
    return result.value;
  }

  private resolverFor(writer: Codec): Resolver {
    let resolver = this.resolvers.get(writer.id);
    if (resolver === undefined) {
      try {
        resolver = this.type.createResolver(writer.type);
      } catch (error) {
        throw new DecodeError(`${writer.subject} (schema id ${writer.id}) cannot be read as ${this.subject}: ${describeError(error)}`, {
          component: 'avro',
          schemaId: writer.id,
        });
      }
      this.resolvers.set(writer.id, resolver);
    }
    return resolver;
  }

}

/** avsc says only that a value is invalid; re-check it (slow path) to name each bad field. */
function encodeError(subject: string, type: Type, value: unknown, cause: unknown): SidecarlessError {
  const problems: string[] = [];
  type.isValid(value, {
    errorHook: (path, bad, badType) => {
      const expected = typeof badType.schema() === 'string' ? String(badType.schema()) : badType.typeName;
      problems.push(`${path.join('.') || '(event)'}: expected ${expected}, got ${typeof bad} ${String(bad)}`);
    },
  });
  const detail = problems.length > 0 ? problems.join('; ') : describeError(cause);
  return new SidecarlessError(`cannot encode ${subject}: ${detail}`, { context: { component: 'avro', subject }, cause });
}

/** Writes one item's Avro bytes at the writer's position (and moves it); throws on an item it cannot encode. */
export type ItemWriter<Item> = (item: Item, out: AvroWriter) => void;

/** Items encoded by their schema; an item it refuses is named field by field. */
function schemaWriter<Item>(subject: string, items: Type): ItemWriter<Item> {
  return (item, out) => {
    try {
      let end = items.encode(item, out.buf, out.pos);
      while (end < 0) {
        out.reserve(out.buf.length - out.pos - end);
        end = items.encode(item, out.buf, out.pos);
      }
      out.pos = end;
    } catch (error) {
      throw encodeError(subject, items, item, error);
    }
  };
}

/**
 * One framed message of a batch schema, built an item at a time: each item is encoded into a growing body as it
 * comes, and seal() writes the frame, the item count, the body and the end of the array into a buffer of its own:
 * the bytes Codec.encode writes for the record holding those items (one array block). Items are never held, so
 * they die young: a collector packing 64 events a message keeps no event alive between its ticks.
 */
export class BatchBuilder<Item> {
  private readonly body = new AvroWriter(16 * 1024);
  private count = 0;

  constructor(
    private readonly codec: Codec,
    private readonly writeItem: ItemWriter<Item>,
  ) {}

  /** Items added since the last seal. */
  get size(): number {
    return this.count;
  }

  /** Bytes of the items added since the last seal (the message's framing not counted). */
  get bytes(): number {
    return this.body.pos;
  }

  /** Encodes one item; throws (naming what is wrong) on one that cannot be encoded, which is then not added. */
  add(item: Item): void {
    const start = this.body.pos;
    try {
      this.writeItem(item, this.body);
    } catch (error) {
      this.body.pos = start;
      if (error instanceof SidecarlessError) throw error;
      throw new SidecarlessError(`cannot encode ${this.codec.subject}: ${describeError(error)}`, { context: { component: 'avro', subject: this.codec.subject }, cause: error });
    }
    this.count++;
  }

  /** The framed message of the items added since the last seal (at least one), in a buffer of its own. */
  seal(): Buffer {
    // Avro array: a block of `count` items (count as a zig-zag varint), then a block of 0 items.
    const bodyBytes = this.body.pos;
    const countBytes = varintBytes(2 * this.count);
    const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + countBytes + bodyBytes + 1);
    out[0] = MAGIC;
    out.writeUInt32BE(this.codec.id, 1);
    let pos = FRAME_HEADER_BYTES;
    let zigzag = 2 * this.count;
    for (; zigzag > 0x7f; zigzag >>>= 7) out[pos++] = (zigzag & 0x7f) | 0x80;
    out[pos++] = zigzag;
    this.body.buf.copy(out, pos, 0, bodyBytes);
    out[pos + bodyBytes] = 0;
    this.body.pos = 0;
    this.count = 0;
    return out;
  }
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (; value > 0x7f; value >>>= 7) bytes++;
  return bytes;
}

export interface Registry {
  /** The codec of a subject ("sidecarless.flows.v1") or schema id; throws if the catalog has neither. */
  codec<T = unknown>(subjectOrId: string | number): Codec<T>;
  encode(subjectOrId: string | number, value: unknown): Buffer;
  /** Decodes with the writer's own schema. */
  decode<T = unknown>(frame: Buffer): DecodedEvent<T>;
  /** Decodes into the reader's schema (Avro schema resolution): a v2 reader reads v1 events. */
  resolve<T = unknown>(readerSubject: string, frame: Buffer): DecodedEvent<T>;
}

interface CatalogEntry {
  subject: string;
  file: string;
}

/** Schemas shipped with the code, found from this module so the command works from any directory. */
const SHIPPED_SCHEMAS = fileURLToPath(new URL('../../../schemas', import.meta.url));

/**
 * Reads the catalog and every schema in it, and `retired.json` (optional: retired id → what it meant) beside it;
 * any problem is fatal at startup, so it is a ConfigError.
 */
export function loadRegistry(dir: string = SHIPPED_SCHEMAS): Registry {
  const catalogPath = join(dir, 'catalog.json');
  const catalog = readObject(catalogPath, 'schema id to { "subject", "file" }') as Record<string, Partial<CatalogEntry> | null>;
  const retiredPath = join(dir, 'retired.json');
  const retired = existsSync(retiredPath) ? readObject(retiredPath, 'retired schema id to what it meant') : {};
  const byId = new Map<number, Codec>();
  const bySubject = new Map<string, Codec>();
  for (const [key, entry] of Object.entries(catalog)) {
    const where = `${catalogPath} id ${key}`;
    const id = Number(key);
    if (!/^[1-9]\d*$/.test(key) || id > 0xffffffff) throw new ConfigError(where, 'expected an id in 1..4294967295');
    if (Object.hasOwn(retired, key)) {
      throw new ConfigError(where, `retired in ${retiredPath} (${String(retired[key])}): an id never changes meaning; take the next free id`);
    }
    if (typeof entry?.subject !== 'string' || typeof entry.file !== 'string') {
      throw new ConfigError(where, 'expected { "subject": string, "file": string }');
    }
    if (bySubject.has(entry.subject)) throw new ConfigError(where, `subject ${entry.subject} is already id ${bySubject.get(entry.subject)!.id}`);
    let type: Type;
    try {
      type = parseSchema(readJson(join(dir, entry.file), where) as avsc.Schema);
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(where, `${entry.file} is not a valid Avro schema: ${describeError(error)}`);
    }
    const codec = new Codec(id, entry.subject, type);
    byId.set(id, codec);
    bySubject.set(entry.subject, codec);
  }

  function codec<T>(subjectOrId: string | number): Codec<T> {
    const found = typeof subjectOrId === 'number' ? byId.get(subjectOrId) : bySubject.get(subjectOrId);
    if (found === undefined) throw new SidecarlessError(`no schema ${subjectOrId} in ${catalogPath}`, { context: { component: 'avro' } });
    return found as Codec<T>;
  }

  /** The writer's codec, from the frame header. */
  function writerOf(frame: Buffer): Codec {
    if (frame.length < FRAME_HEADER_BYTES) {
      throw new DecodeError(`truncated event: ${frame.length} bytes, a framed event has at least ${FRAME_HEADER_BYTES}`, { component: 'avro' });
    }
    if (frame[0] !== MAGIC) {
      throw new DecodeError(`bad magic byte ${frame[0]}: expected ${MAGIC} (Confluent framing)`, { component: 'avro' });
    }
    const id = frame.readUInt32BE(1);
    const writer = byId.get(id);
    if (writer === undefined) {
      throw new DecodeError(`unknown schema id ${id}: not in ${catalogPath} (a producer newer than this reader?)`, { component: 'avro', schemaId: id });
    }
    return writer;
  }

  return {
    codec,
    encode: (subjectOrId, value) => codec(subjectOrId).encode(value),
    decode<T>(frame: Buffer): DecodedEvent<T> {
      const writer = writerOf(frame) as Codec<T>;
      return { schemaId: writer.id, subject: writer.subject, value: writer.decodeFrom(frame, writer) };
    },
    resolve<T>(readerSubject: string, frame: Buffer): DecodedEvent<T> {
      const reader = codec<T>(readerSubject);
      const writer = writerOf(frame);
      return { schemaId: writer.id, subject: writer.subject, value: reader.decodeFrom(frame, writer) };
    },
  };
}

function readObject(path: string, mapping: string): Record<string, unknown> {
  const value = readJson(path, path);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(path, `expected an object mapping ${mapping}`);
  return value as Record<string, unknown>;
}

function readJson(path: string, key: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(key, `cannot load ${path}: ${describeError(error)}`);
  }
}
