/**
 * Three speed-ups of kafkajs 2.2.4's produce encoding (the version ./request-queue.ts names), applied once when the
 * Kafka client module loads. Measured on a 256 KB produce request of 30 messages (the collector's largest send):
 * 1.2 ms of CPU each, of which the record batch's CRC took ~0.6 ms; with the first two: 0.7-0.8 ms (three
 * alternated runs).
 *
 * 1. CRC-32C, which every record batch carries over its body, is computed a byte at a time by kafkajs (0.4 GB/s);
 *    slicing-by-8 reads 8 bytes per step through 8 tables: 1.7 GB/s, same checksums (test/common/
 *    kafka-record-batch.test.ts compares them with kafkajs' own). kafkajs loads its record batch code on the first
 *    produce and binds the CRC function then, so this one is put in its place in the module cache before that.
 * 2. kafkajs grows each encoder into a zero-filled buffer and then overwrites it; it only ever reads the bytes it
 *    wrote (`buffer` is the slice up to `offset`), so the growth skips the zero-fill: ~7 % of a request's encoding.
 * 3. An uncompressed record batch is written into one encoder, its records in place, with kafkajs' own write
 *    functions: kafkajs makes an encoder per record and per header (512 zeroed bytes each), copies each record into
 *    the batch's body as it grows by doubling, the body into the batch and the batch into its framing: each value
 *    was copied about five times before the request's own framing copied it again. Same bytes (test/common/
 *    kafka-record-batch.test.ts compares them with kafkajs' own batches); a compressed batch is kafkajs' own.
 *    Measured with bench http-live at 5,000 requests/s: kafkajs' copies and buffers were ~15 % of the collector's
 *    CPU.
 */
import Module, { createRequire } from 'node:module';
import { PATCHED_KAFKAJS_VERSION } from './request-queue.js';

const CASTAGNOLI = 0x82f63b78;

/** 8 tables of 256: table k maps a byte to its CRC contribution k bytes further on. */
const TABLES = (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CASTAGNOLI : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `bytes`, as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  const t = TABLES;
  let crc = -1;
  let i = 0;
  const whole = bytes.length - (bytes.length & 7);
  for (; i < whole; i += 8) {
    const low = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      t[1792 + (low & 0xff)]! ^
      t[1536 + ((low >>> 8) & 0xff)]! ^
      t[1280 + ((low >>> 16) & 0xff)]! ^
      t[1024 + (low >>> 24)]! ^
      t[768 + bytes[i + 4]!]! ^
      t[512 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!;
  }
  for (; i < bytes.length; i++) crc = t[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

interface Encoder {
  buf: Buffer;
  offset: number;
}

/** The kafkajs Encoder methods a record batch is written with. */
interface BatchEncoder extends Encoder {
  writeInt8(value: number): this;
  writeInt16(value: number): this;
  writeInt32(value: number): this;
  writeUInt32(value: number): this;
  writeInt64(value: unknown): this;
  writeVarInt(value: number): this;
  writeVarLong(value: unknown): this;
  writeVarIntString(value: string | null): this;
  writeVarIntBytes(value: unknown): this;
}

interface EncoderStatics {
  new (initialSize?: number): BatchEncoder;
  nextPowerOfTwo(n: number): number;
  sizeOfVarInt(value: number): number;
  sizeOfVarLong(value: unknown): number;
  sizeOfVarIntBytes(value: unknown): number;
  prototype: { ensureAvailable(length: number): void };
}

/** What kafkajs' Record (recordBatch/record/v0) takes: one message of a batch. */
interface RecordMessage {
  offsetDelta?: number;
  timestampDelta?: unknown;
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: Record<string, string | Buffer | Array<string | Buffer>>;
}

/** What kafkajs' RecordBatch (recordBatch/v0) takes. */
interface RecordBatchOptions {
  compression?: number;
  firstOffset?: unknown;
  firstTimestamp?: number;
  maxTimestamp?: number;
  partitionLeaderEpoch?: number;
  lastOffsetDelta?: number;
  transactional?: boolean;
  producerId?: unknown;
  producerEpoch?: number;
  firstSequence?: number;
  records?: unknown[];
}

/** A record not encoded yet: the batch writes it in place (speed-up 3). */
class PendingRecord {
  constructor(readonly message: RecordMessage) {}
}

const MAGIC_BYTE = 2;
const TRANSACTIONAL_MASK = 16;

function headerList(headers: NonNullable<RecordMessage['headers']>): Array<{ key: string; value: string | Buffer }> {
  return Object.keys(headers).flatMap((key) => {
    const value = headers[key]!;
    return Array.isArray(value) ? value.map((item) => ({ key, value: item })) : [{ key, value }];
  });
}

/** One record as kafkajs' Record encodes it (its length first), written at the encoder's offset. */
function writeRecord(Encoder: EncoderStatics, out: BatchEncoder, { offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordMessage): void {
  const list = headerList(headers);
  let headersSize = Encoder.sizeOfVarInt(list.length);
  for (const header of list) {
    const keySize = Buffer.byteLength(header.key);
    const valueSize = Buffer.byteLength(header.value);
    headersSize += Encoder.sizeOfVarInt(keySize) + keySize + Encoder.sizeOfVarInt(valueSize) + valueSize;
  }
  const bodySize = 1 + Encoder.sizeOfVarLong(timestampDelta) + Encoder.sizeOfVarInt(offsetDelta) + Encoder.sizeOfVarIntBytes(key) + Encoder.sizeOfVarIntBytes(value) + headersSize;
  out.writeVarInt(bodySize).writeInt8(0).writeVarLong(timestampDelta).writeVarInt(offsetDelta).writeVarIntBytes(key).writeVarIntBytes(value).writeVarInt(list.length);
  for (const header of list) out.writeVarIntString(header.key).writeVarIntBytes(header.value);
}

/** kafkajs' RecordBatch of uncompressed pending records, written into one encoder. */
function writeRecordBatch(Encoder: EncoderStatics, options: RecordBatchOptions, records: PendingRecord[], zero: unknown, minusOne: unknown): BatchEncoder {
  const { firstOffset = zero, firstTimestamp = Date.now(), maxTimestamp = Date.now(), partitionLeaderEpoch = 0, lastOffsetDelta = 0, transactional = false } = options;
  const { producerId = minusOne, producerEpoch = 0, firstSequence = 0 } = options;
  let estimate = 128;
  for (const { message } of records) estimate += 64 + (message.value?.length ?? 0) + (message.key?.length ?? 0) + 64 * Object.keys(message.headers ?? {}).length;
  const out = new Encoder(estimate);
  out.writeInt64(firstOffset);
  const lengthAt = out.offset;
  out.writeInt32(0);
  const batchStart = out.offset;
  out.writeInt32(partitionLeaderEpoch).writeInt8(MAGIC_BYTE);
  const crcAt = out.offset;
  out.writeUInt32(0);
  const bodyStart = out.offset;
  out.writeInt16(transactional ? TRANSACTIONAL_MASK : 0).writeInt32(lastOffsetDelta).writeInt64(firstTimestamp).writeInt64(maxTimestamp).writeInt64(producerId).writeInt16(producerEpoch).writeInt32(firstSequence);
  out.writeInt32(records.length);
  for (const record of records) writeRecord(Encoder, out, record.message);
  out.buf.writeUInt32BE(crc32c(out.buf.subarray(bodyStart, out.offset)), crcAt);
  out.buf.writeInt32BE(out.offset - batchStart, lengthAt);
  return out;
}

const require = createRequire(import.meta.url);
const { version } = require('kafkajs/package.json') as { version: string };

if (version === PATCHED_KAFKAJS_VERSION) {
  const crcModule = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js');
  // Only before kafkajs loaded its own: a record batch module already loaded keeps the function it bound.
  if (!require.cache[crcModule]) {
    const replacement = new Module(crcModule);
    replacement.filename = crcModule;
    replacement.exports = crc32c;
    replacement.loaded = true;
    require.cache[crcModule] = replacement;
  }

  const EncoderClass = require('kafkajs/src/protocol/encoder.js') as EncoderStatics;
  EncoderClass.prototype.ensureAvailable = function (this: Encoder, length: number) {
    if (this.offset + length <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(EncoderClass.nextPowerOfTwo(this.offset + length));
    this.buf.copy(grown, 0, 0, this.offset);
    this.buf = grown;
  };

  // Only before kafkajs loaded its produce request, which binds Record and RecordBatch as it loads.
  if (!require.cache[require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js')]) {
    const Long = require('kafkajs/src/utils/long.js') as { fromInt(value: number): unknown; fromValue(value: number): unknown };
    const recordModule = require.resolve('kafkajs/src/protocol/recordBatch/record/v0/index.js');
    const kafkajsRecord = require(recordModule) as (message: RecordMessage) => unknown;
    const batchModule = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: (options: RecordBatchOptions) => Promise<unknown> };
    const kafkajsRecordBatch = batchModule.RecordBatch;
    require.cache[recordModule]!.exports = (message: RecordMessage) => new PendingRecord(message);
    batchModule.RecordBatch = async (options) => {
      const records = options.records ?? [];
      if ((options.compression ?? 0) === 0 && records.every((record) => record instanceof PendingRecord)) {
        return writeRecordBatch(EncoderClass, options, records as PendingRecord[], Long.fromInt(0), Long.fromValue(-1));
      }
      return kafkajsRecordBatch({ ...options, records: records.map((record) => (record instanceof PendingRecord ? kafkajsRecord(record.message) : record)) });
    };
  }
}
