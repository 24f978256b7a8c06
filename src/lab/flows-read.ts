/**
 * Reads our flows topic back, for benchmarks: counts events and measures freshness, the time from a connection's
 * close (a final event's time_ns, taken by the kernel) to the event being read here. Freshness means something
 * only for a reader started before the load, reading while events arrive.
 */
import type { Kafka } from 'kafkajs';
import { loadRegistry } from '../common/avro.js';
import type { FlowBatch } from '../events/flows.js';
import { readTopic } from './kafka-read.js';
import { round } from './usage.js';

export interface FlowsRead {
  events: number;
  finalEvents: number;
  /** Close → read, in milliseconds; undefined without final events. */
  freshnessMs?: { p50: number; p99: number };
}

function percentile(sorted: Float64Array, p: number): number {
  return round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!, 1);
}

/** p50 and p99 of some milliseconds (at least one). */
export function percentiles(values: readonly number[]): { p50: number; p99: number } {
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) };
}

export async function readFlowEvents(kafka: Kafka, topic: string): Promise<{ drain(): Promise<FlowsRead> }> {
  const registry = loadRegistry();
  const lags: number[] = [];
  let events = 0;
  const reader = await readTopic(kafka, topic, (value) => {
    const now = Date.now();
    for (const event of registry.decode<FlowBatch>(value).value.events) {
      events++;
      if (event.record_kind === 'final') lags.push(now - Number(event.time_ns / 1_000_000n));
    }
  });
  return {
    async drain() {
      await reader.drain();
      const freshnessMs = lags.length > 0 ? percentiles(lags) : undefined;
      return { events, finalEvents: lags.length, freshnessMs };
    },
  };
}
