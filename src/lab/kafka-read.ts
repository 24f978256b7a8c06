/**
 * Reads a topic from its beginning, for benchmarks and tests that check what an agent exported: a consumer in a
 * group of its own calls onMessage for every value, live if it starts before the producer; drain() waits until it
 * has read up to the end offsets of that moment, then disconnects. Started live, it is ready once it joined its
 * group, so that what it measures (a delay) does not include its own start.
 */
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { fetchTopicOffsets } from '../common/kafka/offsets.js';

export interface TopicReader {
  /** Resolves to the number of messages read once the reader reached the topic's current end, and stops it. */
  drain(timeoutMs?: number): Promise<number>;
}

export async function readTopic(kafka: Kafka, topic: string, onMessage: (value: Buffer) => void): Promise<TopicReader> {
  const consumer = kafka.consumer({
    groupId: `sidecarless-lab-read-${randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 100,
    maxBytes: 32 << 20,
    maxBytesPerPartition: 8 << 20,
  });
  await consumer.connect();
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  /** Next offset to read, per partition. */
  const next = new Map<number, number>();
  let messages = 0;
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) onMessage(message.value!);
      messages += batch.messages.length;
      next.set(batch.partition, Number(batch.lastOffset()) + 1);
    },
  });
  await joined;
  return {
    async drain(timeoutMs = 60_000) {
      const admin = kafka.admin();
      await admin.connect();
      const ends = await fetchTopicOffsets(admin, topic).finally(() => admin.disconnect());
      const deadline = Date.now() + timeoutMs;
      const behind = () => ends.filter((end) => (next.get(end.partition) ?? 0) < Number(end.high));
      try {
        while (behind().length > 0) {
          if (Date.now() > deadline) throw new Error(`reading ${topic}: partitions ${behind().map((end) => end.partition).join(', ')} not read to their end within ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      } finally {
        await consumer.disconnect();
      }
      return messages;
    },
  };
}
