/**
 * Avro binary primitives written into a growing buffer, for encoders that write an event's fields as they read them
 * (src/collector/flows/encode.ts writes flow events straight from ring records): no event object, no walk of the
 * schema. Each primitive writes the bytes avsc writes for the same value and refuses what avsc's types (with the
 * bigint long of ./avro.ts) refuse: an int outside 32 bits, a long outside 64 bits or an unsafe number.
 */

const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;
const halves = new DataView(new ArrayBuffer(8));

/**
 * Writes a 64-bit long as Avro's zig-zag varint at `pos` and returns the position after it; the 64 bits go through
 * one DataView as two 32-bit halves, so no other bigint is made. Writes past the end are ignored by the buffer (the
 * returned position is then beyond it: ./avro.ts's avsc taps rely on that to report a buffer too small).
 */
export function writeBigLong(buf: Uint8Array, pos: number, value: bigint): number {
  halves.setBigInt64(0, value, true);
  const lo = halves.getUint32(0, true);
  const hi = halves.getUint32(4, true);
  // Zig-zag: (n << 1) ^ (n >> 63), on the two halves.
  const sign = hi >> 31; // 0 or -1
  let zlo = ((lo << 1) ^ sign) >>> 0;
  let zhi = (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0;
  while (zhi !== 0) {
    buf[pos++] = (zlo & 0x7f) | 0x80;
    zlo = ((zlo >>> 7) | (zhi << 25)) >>> 0;
    zhi >>>= 7;
  }
  while (zlo > 0x7f) {
    buf[pos++] = (zlo & 0x7f) | 0x80;
    zlo >>>= 7;
  }
  buf[pos++] = zlo;
  return pos;
}

/** Whether a value is an Avro long as ./avro.ts takes it: a bigint in 64 bits, or a safe-integer number. */
export function isLong(value: unknown): value is bigint | number {
  return typeof value === 'bigint' ? value >= LONG_MIN && value <= LONG_MAX : Number.isSafeInteger(value);
}

/** An Avro string's bytes (length, then UTF-8), written once and copied into every event that carries it. */
export function encodedString(text: string): Uint8Array {
  const writer = new AvroWriter(16 + 3 * text.length);
  writer.string(text);
  return writer.buf.subarray(0, writer.pos);
}

export class AvroWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialBytes = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Makes room for `bytes` more after `pos`; an encoder of bounded events calls it once per event. */
  reserve(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.pos + bytes));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  int(value: number): void {
    if (value !== (value | 0)) throw new Error(`invalid "int": ${String(value)}`);
    let zigzag = ((value << 1) ^ (value >> 31)) >>> 0;
    const buf = this.buf;
    let pos = this.pos;
    for (; zigzag > 0x7f; zigzag >>>= 7) buf[pos++] = (zigzag & 0x7f) | 0x80;
    buf[pos++] = zigzag;
    this.pos = pos;
  }

  long(value: bigint | number): void {
    if (typeof value === 'number') {
      // Most longs are counters below 2^30: their zig-zag fits 31 bits, which integer operations take.
      if (value >= 0 && value < 0x40000000 && value === (value | 0)) return this.int(value);
      if (!Number.isSafeInteger(value)) throw new Error(`invalid "long": ${String(value)}`);
      // A negative one's zig-zag (-2n - 1, odd) can exceed 2^53, where a double holds only even integers.
      if (value < 0) {
        this.pos = writeBigLong(this.buf, this.pos, BigInt(value));
        return;
      }
      // 2n of a safe integer is even and below 2^54, which a double holds exactly: 7 bits a byte by division.
      let zigzag = 2 * value;
      const buf = this.buf;
      let pos = this.pos;
      for (; zigzag > 0x7f; zigzag = Math.floor(zigzag / 128)) buf[pos++] = (zigzag % 128) | 0x80;
      buf[pos++] = zigzag;
      this.pos = pos;
      return;
    }
    if (!isLong(value)) throw new Error(`invalid "long": ${String(value)}`);
    this.pos = writeBigLong(this.buf, this.pos, value);
  }

  boolean(value: boolean): void {
    this.buf[this.pos++] = value ? 1 : 0;
  }

  /** A union's branch or an enum's symbol, by its index in the schema. */
  index(index: number): void {
    this.int(index);
  }

  string(text: string): void {
    // Most strings are short and ASCII (paths, routes): written by a loop, not Buffer's two calls into C++.
    const chars = text.length;
    if (chars < 64) {
      this.reserve(1 + chars);
      const buf = this.buf;
      let pos = this.pos + 1;
      let i = 0;
      for (; i < chars; i++) {
        const code = text.charCodeAt(i);
        if (code >= 0x80) break;
        buf[pos++] = code;
      }
      if (i === chars) {
        buf[this.pos] = chars << 1; // the zig-zag length, one byte below 64
        this.pos = pos;
        return;
      }
    }
    const length = Buffer.byteLength(text);
    this.long(length);
    this.reserve(length);
    this.pos += this.buf.write(text, this.pos, length, 'utf8');
  }

  /**
   * A string of at most 63 bytes (one length byte) whose bytes `write` puts at the position it is given, returning
   * the end: text read straight from a record (addresses, a comm) without making a JS string of it.
   */
  shortString<Source>(source: Source, write: (source: Source, target: Uint8Array, pos: number) => number): void {
    const start = this.pos + 1;
    const end = write(source, this.buf, start);
    const length = end - start;
    if (length > 63) throw new Error(`a short string of ${length} bytes (63 at most)`);
    this.buf[this.pos] = length << 1;
    this.pos = end;
  }

  /** Bytes already in Avro form (encodedString), or the first `length` of them. */
  raw(bytes: Uint8Array, length = bytes.length): void {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < length; i++) buf[pos++] = bytes[i]!;
    this.pos = pos;
  }
}

/** A ["null", "int"] union: the int when `present`, else null. */
export function optionalInt(out: AvroWriter, present: boolean, value: number): void {
  if (!present) return out.index(0);
  out.index(1);
  out.int(value);
}

/** A ["null", "long"] union. */
export function optionalLong(out: AvroWriter, value: bigint | number | null): void {
  if (value === null) return out.index(0);
  out.index(1);
  out.long(value);
}
