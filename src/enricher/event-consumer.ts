/**
 * The enricher's consumer of the event topics (flows, http, verdicts): one consumer group subscribed to all of them,
 * whose fetches are enricher.batchBytes per partition (up to enricher.flushMs for them to fill), each fetched batch
 * handed to its topic's Enricher and committed only once stored. One group, not one per topic: kafkajs's assignors
 * give every member partitions of every topic the group reads, so members subscribed to different topics in one
 * group would be handed partitions they do not read. Used by the role (index.ts) and by bench/enrich-join, which
 * times this very loop.
 */
import type { Consumer, Kafka } from 'kafkajs';
import type { Enricher } from './enricher.js';

export interface EventConsumerOptions {
  groupId: string;
  /** enricher.batchBytes. */
  batchBytes: number;
  /** enricher.flushMs. */
  flushMs: number;
}

/** The consumer (not connected); it stops restarting itself after a crash once `running` says false. */
export function createEventConsumer(kafka: Kafka, options: EventConsumerOptions, running: () => boolean): Consumer {
  return kafka.consumer({
    groupId: options.groupId,
    minBytes: options.batchBytes,
    maxBytesPerPartition: options.batchBytes,
    // Room for two partitions' batches per fetch; bigger batches mean fewer, larger parts for ClickHouse to merge.
    maxBytes: options.batchBytes * 2,
    maxWaitTimeInMs: options.flushMs,
    // kafkajs restarts a crashed consumer after a delay even if it was disconnected meanwhile: not once we stop.
    retry: { restartOnFailure: async () => running() },
  });
}

/** What the consumer uses of a topic's Enricher, whatever its events. */
export type TopicEnricher = Pick<Enricher<never>, 'handle' | 'forgetPartitions'>;

/** The Enricher of each topic the consumer reads. */
export type TopicEnrichers = ReadonlyMap<string, TopicEnricher>;

/** Connects, subscribes to every topic of `enrichers` from the beginning and runs: every batch into its topic's enricher, committed once stored. */
export async function consumeEvents(consumer: Consumer, enrichers: TopicEnrichers): Promise<void> {
  consumer.on(consumer.events.GROUP_JOIN, () => {
    for (const enricher of enrichers.values()) enricher.forgetPartitions();
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [...enrichers.keys()], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
      if (!isRunning() || isStale()) return;
      const { partition, highWatermark, messages } = batch;
      const enricher = enrichers.get(batch.topic)!; // subscribed to these topics only
      const handled = await enricher.handle({ topic: batch.topic, partition, highWatermark, messages }, { heartbeat, isStale });
      if (handled === undefined) return;
      if (handled.commit !== undefined) await consumer.commitOffsets([{ topic: batch.topic, partition, offset: handled.commit }]);
      // The next fetch starts after the resolved offset, not the committed one: without this, every fetch would
      // read the partition again from where the group joined, and a backlog beyond one fetch would never be reached
      // (nor the rest of a batch that a replay holds uncommitted).
      resolveOffset(messages.at(-1)!.offset);
      await heartbeat();
    },
  });
}
