/**
 * Reads a topic from its beginning up to the end offsets it had when the read began: how a writer of a compacted
 * topic learns what it published before (the latest message of every key). kafkajs consumes only in a group, so
 * the read joins a group of its own, commits nothing, and deletes the group when done.
 *
 * One case never ends by offsets: a partition whose last records were all removed by compaction (old tombstones
 * in a closed segment) has an end offset that no record reaches, and kafkajs reports nothing for an empty fetch.
 * A partition that delivers nothing for `quietMs` after the group was joined is taken as read (and logged).
 */
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { SidecarlessError, describeError } from '../errors.js';
import type { Logger } from '../logger.js';

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
  /** See the module comment. Default 5 s. */
  quietMs?: number;
}

/** Calls onMessage for every message up to the end offsets of the start, in offset order per partition; resolves to their number. */
export async function readToEnd(kafka: Kafka, topic: string, onMessage: (message: ReadMessage) => void, options: ReadToEndOptions): Promise<number> {
  const { logger, timeoutMs = 120_000, quietMs = 5000 } = options;
  const admin = kafka.admin();
  await admin.connect();
  const groupId = `${options.groupPrefix}-${randomBytes(6).toString('hex')}`;
  try {
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, { low: BigInt(p.low), high: BigInt(p.high) }]));
    /** Next offset to read per partition; a partition is done when it reaches its end. */
    const next = new Map([...ends].map(([partition, { low }]) => [partition, low]));
    const pending = () => [...ends].filter(([partition, { high }]) => next.get(partition)! < high).map(([partition]) => partition);
    if (pending().length === 0) return 0;
    let count = 0;
    /** Since the group was joined: the time of the last batch; undefined before. */
    let lastProgress: number | undefined;
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100, maxBytesPerPartition: 8 << 20 });
    consumer.on(consumer.events.GROUP_JOIN, () => (lastProgress ??= Date.now()));
    await consumer.connect();
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = ends.get(batch.partition)!.high;
          for (const message of batch.messages) {
            if (BigInt(message.offset) >= end) break;
            onMessage({ partition: batch.partition, offset: message.offset, key: message.key, value: message.value, timestamp: message.timestamp });
            count++;
          }
          next.set(batch.partition, BigInt(batch.lastOffset()) + 1n);
          lastProgress = Date.now();
        },
      });
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const left = pending();
        if (left.length === 0) break;
        if (lastProgress !== undefined && Date.now() - lastProgress > quietMs) {
          logger.warn({ topic, partitions: left }, `partitions ${left.join(', ')} of ${topic} delivered nothing for ${quietMs} ms before their end offsets: taken as read (their last records were compacted away)`);
          break;
        }
        if (Date.now() > deadline) {
          throw new SidecarlessError(`reading ${topic} back: partitions ${left.join(', ')} not read to their end within ${timeoutMs} ms`, { retriable: true, context: { topic } });
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      await consumer.disconnect();
    }
    return count;
  } finally {
    await admin.deleteGroups([groupId]).catch((error: unknown) => logger.debug({ groupId, err: describeError(error) }, 'temporary consumer group not deleted'));
    await admin.disconnect();
  }
}
