/**
 * kafkajs 2.2.4's request encoder (the version ./request-queue.ts names) patched to take large byte runs by
 * reference instead of copying them, applied once when the Kafka client module loads.
 *
 * kafkajs builds a produce request from the inside out, each layer a new Encoder that copies the one inside it: a
 * message value into its record, the records into the batch body, the body behind the batch header, the batch into
 * its partition, the partition into the topic, the topic into the request, the request behind its size. Seven
 * copies of every value (and each encoder's growth copies it again), in buffers V8 frees only at its next
 * collection: at the collector's highest rate they were ~37 % of its main thread with their encoding, and up to
 * 17 MB of garbage buffers at a time.
 *
 * Patched, an encoder is a list of byte runs (`parts`) ahead of its own buffer (`buf`, written up to `offset`):
 * writing a buffer or another encoder of at least REFERENCE_BYTES appends it (or its runs) to the list, and only
 * reading `buffer` joins the runs into one buffer, which then replaces them. kafkajs reads `buffer` three times
 * on a produce request: the batch body for its CRC, the batch for its length-prefixed bytes, and the whole request
 * for the socket (twice there: the second read gets the joined buffer). Three copies instead of seven, and growth
 * copies only what an encoder wrote itself. Small writes are copied as before: a run list of tiny pieces would
 * cost more than it saves.
 *
 * What it relies on: kafkajs reads an encoder's bytes only through `buffer` and `size()`, never through `buf`
 * and `offset` from outside encoder.js (checked against 2.2.4's sources), and a buffer handed to it is not
 * changed until the request is sent: the callers' message values are fresh buffers kept until Kafka acknowledged
 * them (src/collector/outbox.ts, the sinks in ./sink.ts).
 */
import { createRequire } from 'node:module';
import { PATCHED_KAFKAJS_VERSION } from './request-queue.js';

/** Runs at least this long are referenced, shorter ones copied. */
export const REFERENCE_BYTES = 1024;

interface PatchedEncoder {
  buf: Buffer;
  offset: number;
  /** Byte runs before `buf`'s, in order, and their length; both unset until the first run. */
  parts: Buffer[] | undefined;
  partsBytes: number | undefined;
  readonly buffer: Buffer;
  size(): number;
}

interface EncoderModule {
  nextPowerOfTwo(n: number): number;
  prototype: object;
}

const require = createRequire(import.meta.url);
const { version } = require('kafkajs/package.json') as { version: string };

if (version === PATCHED_KAFKAJS_VERSION) {
  const EncoderClass = require('kafkajs/src/protocol/encoder.js') as EncoderModule;

  /** Ends `buf`'s run where it is written up to, and writes on in the rest of its space. */
  const seal = (encoder: PatchedEncoder): Buffer[] => {
    const parts = (encoder.parts ??= []);
    encoder.partsBytes ??= 0;
    if (encoder.offset > 0) {
      parts.push(encoder.buf.subarray(0, encoder.offset));
      encoder.partsBytes += encoder.offset;
      encoder.buf = encoder.buf.subarray(encoder.offset);
      encoder.offset = 0;
    }
    return parts;
  };

  const reference = (encoder: PatchedEncoder, bytes: Buffer): void => {
    seal(encoder).push(bytes);
    encoder.partsBytes! += bytes.length;
  };

  Object.defineProperties(EncoderClass.prototype, {
    buffer: {
      get(this: PatchedEncoder): Buffer {
        if (this.parts === undefined) return this.buf.subarray(0, this.offset);
        const joined = Buffer.concat([...this.parts, this.buf.subarray(0, this.offset)], this.size());
        this.parts = undefined;
        this.partsBytes = 0;
        this.buf = joined;
        this.offset = joined.length;
        return joined;
      },
    },
    size: {
      value(this: PatchedEncoder): number {
        return (this.partsBytes ?? 0) + this.offset;
      },
    },
    /** Growth into a buffer that is not zero-filled: only the bytes written are ever read (`buffer`). */
    ensureAvailable: {
      value(this: PatchedEncoder, length: number): void {
        if (this.offset + length <= this.buf.length) return;
        const grown = Buffer.allocUnsafe(EncoderClass.nextPowerOfTwo(this.offset + length));
        this.buf.copy(grown, 0, 0, this.offset);
        this.buf = grown;
      },
    },
    writeBufferInternal: {
      value(this: PatchedEncoder & { ensureAvailable(length: number): void }, bytes: Buffer): void {
        if (bytes.length >= REFERENCE_BYTES) return reference(this, bytes);
        this.ensureAvailable(bytes.length);
        bytes.copy(this.buf, this.offset);
        this.offset += bytes.length;
      },
    },
    writeEncoder: {
      value(this: PatchedEncoder & { writeBufferInternal(bytes: Buffer): void }, value: PatchedEncoder): PatchedEncoder {
        if (value == null || !Buffer.isBuffer(value.buf)) throw new Error('value should be an instance of Encoder');
        if (value.size() < REFERENCE_BYTES) {
          this.writeBufferInternal(value.buf.subarray(0, value.offset));
          return this;
        }
        const parts = seal(this);
        for (const part of value.parts ?? []) parts.push(part);
        if (value.offset > 0) parts.push(value.buf.subarray(0, value.offset));
        this.partsBytes! += value.size();
        return this;
      },
    },
    writeEncoderArray: {
      value(this: PatchedEncoder & { writeEncoder(value: PatchedEncoder): void }, values: PatchedEncoder[]): PatchedEncoder {
        if (!Array.isArray(values) || values.some((v) => v == null || !Buffer.isBuffer(v.buf))) throw new Error('all values should be an instance of Encoder[]');
        for (const value of values) this.writeEncoder(value);
        return this;
      },
    },
    /** Unsigned LEB128 straight into the buffer: kafkajs made an array and a Buffer for every varint of a record. */
    writeUVarInt: {
      value(this: PatchedEncoder & { ensureAvailable(length: number): void }, value: number): PatchedEncoder {
        this.ensureAvailable(5);
        let rest = value >>> 0;
        while (rest > 0x7f) {
          this.buf[this.offset++] = (rest & 0x7f) | 0x80;
          rest >>>= 7;
        }
        this.buf[this.offset++] = rest;
        return this;
      },
    },
  });
}
