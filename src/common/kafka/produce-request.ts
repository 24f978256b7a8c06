/**
 * kafkajs 2.2.4's produce request (the version ./request-queue.ts names), uncompressed, written into one encoder with
 * kafkajs' own write functions, applied once when the Kafka client module loads. kafkajs makes an encoder per record
 * and per header (512 zeroed bytes each, with a Long and an array per varint), then nests the record in the batch,
 * the batch in its partition, the partition in its topic and the topic in the request, each layer an encoder of its
 * own (./encoder.ts has those layers reference the bytes inside them, then joins them: three copies of each value).
 * Here each value is copied once into the request, each record batch's CRC-32C (./record-batch.ts) is computed in
 * place, and the request's framing (kafkajs' protocol/request.js) references it, joined once for the socket. Same
 * bytes (test/common/kafka-record-batch.test.ts compares whole requests with kafkajs' own); a compressed request is
 * kafkajs' own. Measured with the collector at 5,000 HTTP requests/s (bench http-live's pods, runs alternated):
 * process cores 0.133-0.136 with ./encoder.ts alone, 0.105-0.125 with this too.
 */
import { createRequire } from 'node:module';
import { crc32c } from './record-batch.js';
import { PATCHED_KAFKAJS_VERSION } from './request-queue.js';

/** The kafkajs Encoder methods a request is written with. */
interface Encoder {
  buf: Buffer;
  offset: number;
  writeInt8(value: number): this;
  writeInt16(value: number): this;
  writeInt32(value: number): this;
  writeUInt32(value: number): this;
  writeInt64(value: unknown): this;
  writeString(value: string | null): this;
  writeVarInt(value: number): this;
  writeVarLong(value: unknown): this;
  writeVarIntString(value: string | null): this;
  writeVarIntBytes(value: unknown): this;
  ensureAvailable(length: number): void;
}

interface EncoderClass {
  new (initialSize?: number): Encoder;
  sizeOfVarInt(value: number): number;
  sizeOfVarLong(value: unknown): number;
  sizeOfVarIntBytes(value: unknown): number;
}

/** What kafkajs' Record (recordBatch/record/v0) takes of a message. */
interface RecordMessage {
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: Record<string, string | Buffer | Array<string | Buffer>>;
}

/** The header fields of one record batch, as kafkajs' partitionsEncoder gives them to its RecordBatch (v0). */
interface BatchHeader {
  firstTimestamp: number;
  maxTimestamp: number;
  lastOffsetDelta: number;
  transactional: boolean;
  producerId: unknown;
  producerEpoch: number;
  firstSequence: number;
}

/** What kafkajs' produce request v3 (and v4-v7, which are it with another version number) takes. */
interface ProduceOptions {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: Array<{
    topic: string;
    partitions: Array<{ partition: number; firstSequence?: number; messages: Array<RecordMessage & { timestamp?: number | null }> }>;
  }>;
}

interface ProduceRequest {
  encode(): Promise<Encoder>;
}

const NO_COMPRESSION = 0;
const MAGIC_BYTE = 2;
const TRANSACTIONAL_MASK = 16;

function headerList(headers: NonNullable<RecordMessage['headers']>): Array<{ key: string; value: string | Buffer }> {
  return Object.keys(headers).flatMap((key) => {
    const value = headers[key]!;
    return Array.isArray(value) ? value.map((item) => ({ key, value: item })) : [{ key, value }];
  });
}

class ProduceWriter {
  constructor(
    private readonly Encoder: EncoderClass,
    /** kafkajs' Long 0 and -1, its defaults for a batch's first offset and producer id. */
    private readonly zero: unknown,
    private readonly minusOne: unknown,
  ) {}

  /** kafkajs' produce request v3's body (before the request header), uncompressed. */
  request({ acks, timeout, transactionalId = null, producerId = this.minusOne, producerEpoch = 0, topicData }: ProduceOptions): Encoder {
    let estimate = 64;
    for (const { topic, partitions } of topicData) {
      estimate += 16 + 3 * topic.length;
      for (const { messages } of partitions) estimate += 128 + messages.reduce((sum, message) => sum + estimatedBytes(message), 0);
    }
    const out = new this.Encoder(estimate);
    out.writeString(transactionalId).writeInt16(acks).writeInt32(timeout).writeInt32(topicData.length);
    for (const { topic, partitions } of topicData) {
      out.writeString(topic).writeInt32(partitions.length);
      for (const { partition, messages, firstSequence } of partitions) {
        // As kafkajs' partitionsEncoder: timestamps sorted as it sorts them (as strings), deltas from the first.
        const dateNow = Date.now();
        const messageTimestamps = messages
          .map((message) => message.timestamp)
          .filter((timestamp) => timestamp != null)
          .sort();
        const timestamps = messageTimestamps.length === 0 ? [dateNow] : messageTimestamps;
        const firstTimestamp = timestamps[0]!;
        out.writeInt32(partition);
        const sizeAt = out.offset;
        out.writeInt32(0);
        const header = { firstTimestamp, maxTimestamp: timestamps[timestamps.length - 1]!, producerId, producerEpoch, transactional: !!transactionalId, lastOffsetDelta: messages.length - 1, firstSequence: firstSequence ?? 0 };
        this.batch(out, header, messages, (message) => (message.timestamp || dateNow) - firstTimestamp);
        out.buf.writeInt32BE(out.offset - sizeAt - 4, sizeAt);
      }
    }
    return out;
  }

  /** kafkajs' RecordBatch of uncompressed records (first offset 0, leader epoch 0), written at the encoder's offset. */
  private batch<Message extends RecordMessage>(out: Encoder, header: BatchHeader, messages: readonly Message[], timestampDelta: (message: Message) => number): void {
    out.writeInt64(this.zero);
    const lengthAt = out.offset;
    out.writeInt32(0);
    out.writeInt32(0).writeInt8(MAGIC_BYTE);
    const crcAt = out.offset;
    out.writeUInt32(0);
    const bodyStart = out.offset;
    out.writeInt16(header.transactional ? TRANSACTIONAL_MASK : 0).writeInt32(header.lastOffsetDelta).writeInt64(header.firstTimestamp).writeInt64(header.maxTimestamp);
    out.writeInt64(header.producerId).writeInt16(header.producerEpoch).writeInt32(header.firstSequence);
    out.writeInt32(messages.length);
    messages.forEach((message, offsetDelta) => this.record(out, message, offsetDelta, timestampDelta(message)));
    out.buf.writeUInt32BE(crc32c(out.buf.subarray(bodyStart, out.offset)), crcAt);
    out.buf.writeInt32BE(out.offset - lengthAt - 4, lengthAt);
  }

  /** One record as kafkajs' Record encodes it (its length first), written at the encoder's offset. */
  private record(out: Encoder, { key, value, headers = {} }: RecordMessage, offsetDelta: number, timestampDelta: number): void {
    const { Encoder } = this;
    const list = headerList(headers);
    let headersSize = Encoder.sizeOfVarInt(list.length);
    for (const header of list) {
      const keySize = Buffer.byteLength(header.key);
      const valueSize = Buffer.byteLength(header.value);
      headersSize += Encoder.sizeOfVarInt(keySize) + keySize + Encoder.sizeOfVarInt(valueSize) + valueSize;
    }
    const bodySize = 1 + Encoder.sizeOfVarLong(timestampDelta) + Encoder.sizeOfVarInt(offsetDelta) + Encoder.sizeOfVarIntBytes(key) + Encoder.sizeOfVarIntBytes(value) + headersSize;
    out.writeVarInt(bodySize).writeInt8(0).writeVarLong(timestampDelta).writeVarInt(offsetDelta);
    copyBytes(out, key);
    copyBytes(out, value);
    out.writeVarInt(list.length);
    for (const header of list) {
      out.writeVarIntString(header.key);
      copyBytes(out, header.value);
    }
  }
}

/**
 * kafkajs' writeVarIntBytes, a buffer always copied into the encoder's own bytes: ./encoder.ts has the encoder take
 * long runs by reference, and this writer reads and patches its request in `buf` (sizes, CRCs) as it goes.
 */
function copyBytes(out: Encoder, bytes: Buffer | string | null | undefined): void {
  if (!Buffer.isBuffer(bytes)) {
    out.writeVarIntBytes(bytes);
    return;
  }
  out.writeVarInt(bytes.length);
  out.ensureAvailable(bytes.length);
  bytes.copy(out.buf, out.offset);
  out.offset += bytes.length;
}

/** About the bytes a message takes in a batch (the encoder grows if it takes more). */
function estimatedBytes(message: RecordMessage): number {
  return 32 + (message.value?.length ?? 0) + (message.key?.length ?? 0) + 64 * Object.keys(message.headers ?? {}).length;
}

const require = createRequire(import.meta.url);
const { version } = require('kafkajs/package.json') as { version: string };
const requestModule = require.resolve('kafkajs/src/protocol/requests/produce/v3/request.js');

// Only before kafkajs loaded its produce request (on the first produce): v4-v7 take v3's as they load.
if (version === PATCHED_KAFKAJS_VERSION && !require.cache[requestModule]) {
  const Long = require('kafkajs/src/utils/long.js') as { fromInt(value: number): unknown };
  const writer = new ProduceWriter(require('kafkajs/src/protocol/encoder.js') as EncoderClass, Long.fromInt(0), Long.fromInt(-1));
  const kafkajsRequest = require(requestModule) as (options: ProduceOptions) => ProduceRequest;
  require.cache[requestModule]!.exports = (options: ProduceOptions): ProduceRequest => {
    const request = kafkajsRequest(options);
    if ((options.compression ?? NO_COMPRESSION) !== NO_COMPRESSION) return request;
    return { ...request, encode: async () => writer.request(options) };
  };
}
