/** The kafkajs produce-encoding speed-ups (src/common/kafka/record-batch.ts): same bytes, same checksums. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import '../../src/common/kafka/client.js';
import { crc32c } from '../../src/common/kafka/record-batch.js';

const require = createRequire(import.meta.url);
/** kafkajs' own byte-at-a-time CRC-32C, which the module cache no longer hands out under its index. */
const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (bytes: Buffer) => number;
const Encoder = require('kafkajs/src/protocol/encoder.js') as new (initialSize?: number) => {
  writeInt32(value: number): unknown;
  writeBytes(value: Buffer): unknown;
  writeString(value: string): unknown;
  buffer: Buffer;
};
type RecordBatchFn = (options: Record<string, unknown> & { records: unknown[] }) => Promise<{ buffer: Buffer; size(): number }>;
type RecordFn = (message: object) => unknown;
const Long = require('kafkajs/src/utils/long.js') as { fromValue(value: number | string): unknown };

/** A module of kafkajs as kafkajs wrote it: loaded afresh past the module cache, where the speed-ups replaced it. */
function kafkajsOwn<T>(path: string): T {
  const resolved = require.resolve(path);
  const patched = require.cache[resolved];
  delete require.cache[resolved];
  try {
    return require(resolved) as T;
  } finally {
    require.cache[resolved] = patched;
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
    const records = [0, 1, 2].map((i) => Record({ offsetDelta: i, key: Buffer.from('node-a'), value: randomBytes(9_000 + i), headers: { 'sidecarless-events': String(64 + i) } }));
    const batch = (await RecordBatch({ records, firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000 })).buffer;
    // FirstOffset (8), the batch's length (4), PartitionLeaderEpoch (4), Magic (1), CRC (4), then the body it covers.
    assert.equal(batch.readUInt32BE(17), kafkajsCrc(batch.subarray(21)));
    assert.equal(batch.readInt32BE(8), batch.length - 12);
  });

  it('writes uncompressed batches in place into the very bytes of kafkajs\' own Record and RecordBatch, and compressed ones by kafkajs', async () => {
    const ownRecord = kafkajsOwn<RecordFn>('kafkajs/src/protocol/recordBatch/record/v0/index.js');
    const ownBatch = kafkajsOwn<{ RecordBatch: RecordBatchFn }>('kafkajs/src/protocol/recordBatch/v0/index.js').RecordBatch;
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as { RecordBatch: RecordBatchFn };
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as RecordFn;
    assert.notEqual(RecordBatch, ownBatch, 'the speed-up is in place');
    const messages = [0, 1, 63, 64, 127, 128, 9_000, 70_000].map((size, i) => ({
      offsetDelta: i,
      timestampDelta: i * 1000,
      key: i === 2 ? null : Buffer.from(`node-${i}`),
      value: i === 3 ? 'a string value é' : randomBytes(size),
      headers: i % 2 === 0 ? { 'sidecarless-events': String(64 + i) } : { a: ['1', 'two'], b: Buffer.from('b\u00e9') },
    }));
    const options = [
      { firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_007_000, lastOffsetDelta: messages.length - 1 },
      { firstTimestamp: 1_700_000_000_000, maxTimestamp: 1_700_000_000_000, producerId: Long.fromValue('9007199254740993'), producerEpoch: 3, firstSequence: 12_345, transactional: true, partitionLeaderEpoch: 2 },
    ];
    for (const option of options) {
      for (const batchOf of [messages, messages.slice(0, 1), messages.slice(6)]) {
        const ours = await RecordBatch({ ...option, records: batchOf.map(Record) });
        const theirs = await ownBatch({ ...option, records: batchOf.map(ownRecord) });
        assert.deepEqual(ours.buffer, theirs.buffer, `${batchOf.length} records, options ${Object.keys(option).join(',')}`);
        assert.equal(ours.size(), theirs.size());
      }
    }
    const gzip = { ...options[0], compression: 1 };
    assert.deepEqual((await RecordBatch({ ...gzip, records: messages.map(Record) })).buffer, (await ownBatch({ ...gzip, records: messages.map(ownRecord) })).buffer);
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
