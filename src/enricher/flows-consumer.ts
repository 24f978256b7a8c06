/**
 * The enricher's consumer of the flows topic: a consumer group whose fetches are enricher.batchBytes per partition
 * (up to enricher.flushMs for them to fill), each fetched batch handed to the Enricher and committed only once
 * stored. Used by the role (index.ts) and by bench/enrich-join, which times this very loop.
 */
import type { Consumer, Kafka } from 'kafkajs';
import type { Enricher } from './enricher.js';

export interface FlowsConsumerOptions {
  groupId: string;
  /** enricher.batchBytes. */
  batchBytes: number;
  /** enricher.flushMs. */
  flushMs: number;
}

/** The consumer (not connected); it stops restarting itself after a crash once `running` says false. */
export function createFlowsConsumer(kafka: Kafka, options: FlowsConsumerOptions, running: () => boolean): Consumer {
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

/** Connects, subscribes to `topic` from the beginning and runs: every batch into `enricher`, committed once stored. */
export async function consumeFlows(consumer: Consumer, topic: string, enricher: Enricher): Promise<void> {
  consumer.on(consumer.events.GROUP_JOIN, () => enricher.forgetPartitions());
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
      if (!isRunning() || isStale()) return;
      const { partition, highWatermark, messages } = batch;
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
