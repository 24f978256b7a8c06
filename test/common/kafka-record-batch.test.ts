/**
 * The kafkajs produce-encoding speed-ups (src/common/kafka/record-batch.ts, encoder.ts, produce-request.ts): same
 * bytes, same checksums, whether runs are copied or referenced, and whole produce requests as kafkajs writes them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import '../../src/common/kafka/client.js';
import { REFERENCE_BYTES } from '../../src/common/kafka/encoder.js';
import { crc32c } from '../../src/common/kafka/record-batch.js';

const require = createRequire(import.meta.url);
/** kafkajs' own byte-at-a-time CRC-32C, which the module cache no longer hands out under its index. */
const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (bytes: Buffer) => number;
interface KafkaEncoder {
  writeInt32(value: number): KafkaEncoder;
  writeBytes(value: Buffer): KafkaEncoder;
  writeString(value: string): KafkaEncoder;
  writeVarInt(value: number): KafkaEncoder;
  writeVarIntBytes(value: Buffer): KafkaEncoder;
  writeEncoder(value: KafkaEncoder): KafkaEncoder;
  writeEncoderArray(values: KafkaEncoder[]): KafkaEncoder;
  size(): number;
  buffer: Buffer;
}
const Encoder = require('kafkajs/src/protocol/encoder.js') as new (initialSize?: number) => KafkaEncoder;
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (buffer: Buffer) => object;
const decodeRecordBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (decoder: object) => Promise<{ records: Array<{ key: Buffer; value: Buffer; headers: Record<string, Buffer> }> }>;

/** Zig-zag LEB128, as Kafka's varints: the bytes a test expects around a referenced run. */
function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = ((value << 1) ^ (value >> 31)) >>> 0;
  for (; rest > 0x7f; rest >>>= 7) bytes.push((rest & 0x7f) | 0x80);
  bytes.push(rest);
  return Buffer.from(bytes);
}
const int32 = (value: number) => Buffer.from([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
type RecordBatchFn = (options: { records: unknown[]; firstTimestamp: number; maxTimestamp: number }) => Promise<{ buffer: Buffer }>;

type ProduceRequestFn = (options: object) => { apiKey: number; apiVersion: number; encode(): Promise<{ buffer: Buffer }> };
const Long = require('kafkajs/src/utils/long.js') as { fromValue(value: number | string): unknown };
const PRODUCE_V3 = 'kafkajs/src/protocol/requests/produce/v3/request.js';

/**
 * kafkajs' produce request v3 as kafkajs wrote it: loaded afresh past the module cache (where
 * src/common/kafka/produce-request.ts replaced it), with fresh copies of the record and record batch code it takes.
 */
function kafkajsOwnProduceRequest(): ProduceRequestFn {
  const paths = [PRODUCE_V3, 'kafkajs/src/protocol/recordBatch/v0/index.js', 'kafkajs/src/protocol/recordBatch/record/v0/index.js'].map((path) => require.resolve(path));
  const patched = paths.map((path) => require.cache[path]);
  for (const path of paths) delete require.cache[path];
  try {
    return require(paths[0]!) as ProduceRequestFn;
  } finally {
    paths.forEach((path, i) => (require.cache[path] = patched[i]));
  }
}

describe('kafkajs record batch encoding', () => {
  it('computes CRC-32C: the standard check value, and kafkajs\' own result at every length and alignment', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    const bytes = randomBytes(70_000);
    for (const length of [1, 2, 7, 8, 9, 15, 16, 17, 63, 64, 65, 4097, 65_536, 70_000]) {
      for (const start of [0, 1, 3]) {
        const slice = bytes.subarray(start, Math.min(bytes.length, start + length));
        assert.equal(crc32c(slice), kafkajsCrc(slice), `length ${slice.length} at offset ${start}`);
      }
    }
  });

  it('is the CRC kafkajs record batches use, and their checksum is the one kafkajs computes over the body', async () => {
    assert.equal(require('kafkajs/src/protocol/recordBatch/crc32C/index.js'), crc32c);
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: RecordBatchFn };
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (message: object) => unknown;
    // Values above and below the length the encoder references rather than copies.
    const values = [9_000, 10, REFERENCE_BYTES, REFERENCE_BYTES - 1, 300_000].map((length) => randomBytes(length));
    const records = values.map((value, i) => Record({ offsetDelta: i, key: Buffer.from('node-a'), value, headers: { 'sidecarless-events': String(64 + i) } }));
    const batch = (await RecordBatch({ records, firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000 })).buffer;
    // FirstOffset (8), the batch's length (4), PartitionLeaderEpoch (4), Magic (1), CRC (4), then the body it covers.
    assert.equal(batch.readUInt32BE(17), kafkajsCrc(batch.subarray(21)));
    assert.equal(batch.readInt32BE(8), batch.length - 12);
    // kafkajs' own decoder reads every record back.
    const decoded = await decodeRecordBatch(new Decoder(batch));
    assert.deepEqual(
      decoded.records.map((record) => ({ key: record.key.toString(), value: record.value, events: record.headers['sidecarless-events']!.toString() })),
      values.map((value, i) => ({ key: 'node-a', value, events: String(64 + i) })),
    );
  });

  it('nests encoders as kafkajs builds a request: the bytes of plain concatenation, sizes right at every step, and writes after a read', () => {
    const big = randomBytes(REFERENCE_BYTES + 5);
    const small = randomBytes(REFERENCE_BYTES - 1);
    const records = [big, small, big].map((value, i) => new Encoder().writeVarInt(i).writeVarIntBytes(value));
    const recordBytes = [big, small, big].map((value, i) => Buffer.concat([varint(i), varint(value.length), value]));
    const body = new Encoder().writeInt32(3).writeEncoderArray(records);
    assert.equal(body.size(), 4 + recordBytes.reduce((sum, bytes) => sum + bytes.length, 0));
    const request = new Encoder().writeString('t').writeEncoder(body).writeInt32(-1).writeEncoder(new Encoder().writeInt32(7)).writeBytes(big);
    const expected = Buffer.concat([Buffer.from([0, 1]), Buffer.from('t'), int32(3), ...recordBytes, int32(-1), int32(7), int32(big.length), big]);
    assert.equal(request.size(), expected.length);
    const framed = new Encoder().writeInt32(request.size()).writeEncoder(request);
    assert.deepEqual(framed.buffer, Buffer.concat([int32(expected.length), expected]));
    assert.deepEqual(framed.buffer, Buffer.concat([int32(expected.length), expected]), 'read twice');
    assert.deepEqual(request.buffer, expected, 'an encoder written into another is unchanged');
    framed.writeInt32(9).writeBytes(small);
    assert.deepEqual(framed.buffer, Buffer.concat([int32(expected.length), expected, int32(9), int32(small.length), small]));
    assert.equal(framed.size(), framed.buffer.length);
  });

  it('writes varints as kafkajs did, up to 32 bits', () => {
    for (const value of [0, 1, -1, 63, -64, 64, 8191, -8192, 2 ** 20, 2 ** 31 - 1, -(2 ** 31)]) {
      assert.deepEqual(new Encoder().writeVarInt(value).buffer, varint(value), String(value));
    }
  });

  it('writes uncompressed produce requests into the very bytes of kafkajs\' own, and compressed ones by kafkajs', async (t) => {
    const own = kafkajsOwnProduceRequest();
    const ours = require(PRODUCE_V3) as ProduceRequestFn;
    assert.notEqual(ours, own, 'the speed-up is in place');
    const messages = [0, 1, 63, 64, 127, 128, 9_000, 70_000].map((size, i) => ({
      key: i === 2 ? null : Buffer.from(`node-${i}`),
      value: i === 3 ? 'a string value \u00e9' : randomBytes(size),
      headers: i % 2 === 0 ? { 'sidecarless-events': String(64 + i) } : { a: ['1', 'two'], b: Buffer.from('b\u00e9') },
      // Timestamps on some, out of order, one of more digits than the rest (kafkajs sorts them as strings).
      ...(i % 3 === 0 && { timestamp: [1_700_000_000_500, 999_999_999_999, 1_700_000_000_100][i / 3]! }),
    }));
    const topicData = [
      { topic: 'sidecarless.http.v1', partitions: [{ partition: 0, firstSequence: 7, messages }, { partition: 5, messages: messages.slice(6) }] },
      { topic: 't\u00e9', partitions: [{ partition: 2, firstSequence: 0, messages: messages.slice(0, 1) }] },
    ];
    const requests = [
      { acks: -1, timeout: 30_000, topicData, producerId: Long.fromValue('9007199254740993'), producerEpoch: 3 },
      { acks: 1, timeout: 5_000, topicData: topicData.slice(1), transactionalId: 'tx-1' },
      { acks: 0, timeout: 1, topicData },
    ];
    // A message without a timestamp takes Date.now(): one clock for both.
    t.mock.method(Date, 'now', () => 1_700_000_000_999);
    for (const options of requests) {
      const [a, b] = await Promise.all([ours(options).encode(), own(options).encode()]);
      assert.deepEqual(a.buffer, b.buffer, `request of ${options.topicData.length} topics, acks ${options.acks}`);
    }
    const gzip = { ...requests[0], compression: 1 };
    const [a, b] = await Promise.all([ours(gzip).encode(), own(gzip).encode()]);
    assert.deepEqual(a.buffer, b.buffer, 'a compressed request is kafkajs\' own');
    assert.deepEqual([ours(gzip).apiKey, ours(gzip).apiVersion], [own(gzip).apiKey, own(gzip).apiVersion]);
  });

  it('grows an encoder without losing or changing a byte', () => {
    const encoder = new Encoder(16);
    const payload = randomBytes(100_000);
    encoder.writeInt32(-2);
    encoder.writeString('sidecarless');
    encoder.writeBytes(payload);
    const expected = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xfe, 0, 11]), Buffer.from('sidecarless'), Buffer.from([0, 1, 0x86, 0xa0]), payload]);
    assert.deepEqual(encoder.buffer, expected);
  });
});
