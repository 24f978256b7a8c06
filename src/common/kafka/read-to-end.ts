/**
 * Reads a topic from its beginning up to the end offsets it had when the read began: how a writer of a compacted
 * topic learns what it published before (the latest message of every key). kafkajs consumes only in a group, so
 * the read joins a group of its own, commits nothing, and deletes the group when done.
 *
 * Each partition is done when its position (the offset after the last record delivered, or skipped by kafkajs as
 * a control or compacted-away record) reaches its end offset. Some partitions never get there by records: their
 * last records were removed after the end offsets were fetched, or are gone from a compacted tail, and kafkajs
 * reports nothing for an empty fetch. Such a partition is taken as read (and logged) after `quietRounds`
 * consecutive fetch rounds of its leader that delivered nothing for it. Rounds, not wall time: a round that
 * delivers nothing for a partition means the broker had no record at or after its position (every partition
 * fetched gets a share of each response, maxBytes below), whereas a slow broker, a slow consumer or a rebalance
 * only delays rounds, which counts nothing.
 */
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { SidecarlessError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';
import { fetchTopicOffsets } from './offsets.js';

export interface ReadMessage {
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Kafka message timestamp, ms since the epoch, as text. */
  timestamp: string;
}

export interface ReadToEndOptions {
  /** Names the temporary consumer group (`<groupPrefix>-<random>`). */
  groupPrefix: string;
  logger: Logger;
  /** Give up (a retriable error) when not done by then. Default 120 s. */
  timeoutMs?: number;
  /** See the module comment. Default 10 (an idle round takes about 100 ms). */
  quietRounds?: number;
  /** Called with the end offsets the read stops at, before consuming begins (tests change the topic there). */
  onEndOffsets?: (ends: ReadonlyMap<number, bigint>) => Promise<void>;
}

/** Bytes per partition in a fetch: above any record batch (the broker's message.max.bytes defaults to 1 MiB). */
const PARTITION_FETCH_BYTES = 4 << 20;

interface PartitionRead {
  end: bigint;
  /** The next offset to read. */
  position: bigint;
  /** Its leader's node id, as text: kafkajs's fetch events carry it so (the types say number). */
  leader: string;
  /** Whether its leader's current round delivered something for it; undefined before its first round. */
  delivered: boolean | undefined;
  quietRounds: number;
}

/**
 * Calls onMessage for every message up to the end offsets of the start, in offset order per partition (a promise
 * it returns is awaited before the next message); resolves to their number.
 */
export async function readToEnd(kafka: Kafka, topic: string, onMessage: (message: ReadMessage) => unknown, options: ReadToEndOptions): Promise<number> {
  const { logger, timeoutMs = 120_000, quietRounds = 10 } = options;
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `${options.groupPrefix}-${randomBytes(6).toString('hex')}`;
  try {
    const offsets = await fetchTopicOffsets(admin, topic);
    const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
    const leaders = new Map(metadata?.partitions.map((p) => [p.partitionId, String(p.leader)]));
    const reads = new Map<number, PartitionRead>(
      offsets.map((p) => [p.partition, { end: BigInt(p.high), position: BigInt(p.low), leader: leaders.get(p.partition) ?? 'none', delivered: undefined, quietRounds: 0 }]),
    );
    await options.onEndOffsets?.(new Map([...reads].map(([partition, read]) => [partition, read.end])));
    const reached = (read: PartitionRead) => read.position >= read.end;
    const pending = () => [...reads].filter(([, read]) => !reached(read) && read.quietRounds < quietRounds);
    if (pending().length === 0) return 0;
    let count = 0;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, maxBytesPerPartition: PARTITION_FETCH_BYTES, maxBytes: PARTITION_FETCH_BYTES * reads.size });
    const advance = (partition: number, lastOffset: string) => {
      const read = reads.get(partition)!;
      read.delivered = true;
      read.quietRounds = 0;
      const position = BigInt(lastOffset) + 1n;
      if (position > read.position) read.position = position;
    };
    // A fetcher starts its next round only once the batches of the last one were handled: the round is complete.
    consumer.on(consumer.events.FETCH_START, ({ payload }) => {
      for (const read of reads.values()) {
        if (read.leader !== String(payload.nodeId) || reached(read)) continue;
        if (read.delivered === false) read.quietRounds++;
        read.delivered = false;
      }
    });
    // Also batches that deliver no message (control records, records compacted away within a batch).
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => payload.topic === topic && advance(payload.partition, payload.lastOffset));
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const { end } = reads.get(batch.partition)!;
          for (const message of batch.messages) {
            if (BigInt(message.offset) >= end) break;
            const handled = onMessage({ partition: batch.partition, offset: message.offset, key: message.key, value: message.value, timestamp: message.timestamp });
            if (handled instanceof Promise) await handled;
            count++;
          }
          advance(batch.partition, batch.lastOffset());
        },
      });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = pending();
        if (left.length === 0) break;
        if (Date.now() > deadline) {
          throw new SidecarlessError(`reading ${topic} back: partitions ${left.map(([p]) => p).join(', ')} not read to their end within ${timeoutMs} ms`, { retriable: true, context: { topic } });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await consumer.disconnect();
    }
    const unreached = [...reads].filter(([, read]) => !reached(read));
    if (unreached.length > 0) {
      const at = unreached.map(([partition, read]) => `${partition} at offset ${read.position} (end ${read.end})`).join(', ');
      logger.warn(
        { topic, partitions: Object.fromEntries(unreached.map(([partition, read]) => [partition, { position: String(read.position), end: String(read.end) }])), quietRounds },
        `${topic}: ${quietRounds} consecutive fetch rounds delivered nothing for partition(s) ${at}: taken as read, as no record is left before the end offset`,
      );
    }
    return count;
  } finally {
    await admin.deleteGroups([groupId]).catch((error: unknown) => logger.debug({ groupId, err: describeError(error) }, 'temporary consumer group not deleted'));
    await admin.disconnect();
  }
}
