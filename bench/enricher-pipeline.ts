/**
 * What bench/enricher and bench/enrich-join share to run the enricher's pipeline and time it: CPU clocks, FlowBatch
 * messages packed per partition as the collector packs them and produced to a topic, in-memory Kafka batches of
 * them, the Enricher's dependencies with an in-process engine, and the ClickHouse reads that wait for merges, count
 * rows and compare tables.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Attributes } from '@opentelemetry/api';
import type { Kafka } from 'kafkajs';
import { loadRegistry } from '../src/common/avro.js';
import { partitionOf } from '../src/common/kafka/partitioner.js';
import { createLogger } from '../src/common/logger.js';
import type { Telemetry } from '../src/common/telemetry.js';
import type { Ledger } from '../src/enricher/batch-ledger.js';
import { Enricher, type EnricherDeps, type KafkaBatch, type KafkaMessage } from '../src/enricher/enricher.js';
import { FLOWS_TABLE } from '../src/enricher/flow-row.js';
import { COMPLETE_METADATA, MetadataGate } from '../src/enricher/metadata-gate.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../src/events/flows.js';
import { MetadataIndex } from '../src/metadata/index/metadata-index.js';

export function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}

export interface Measured {
  rows: number;
  cpu_s: number;
  wall_s: number;
  rows_per_cpu_s: number;
  rows_per_wall_s: number;
}

export async function measure(rows: number, work: () => Promise<void>): Promise<Measured> {
  const wall = performance.now();
  const cpu = cpuSeconds();
  await work();
  const cpuS = cpuSeconds() - cpu;
  const wallS = (performance.now() - wall) / 1000;
  return { rows, cpu_s: round(cpuS, 3), wall_s: round(wallS, 3), rows_per_cpu_s: Math.round(rows / cpuS), rows_per_wall_s: Math.round(rows / wallS) };
}

export interface Ingested extends Measured {
  /** CPU after the last insert until the engine ran no merge for a second: merges the inserts caused. */
  merge_tail_cpu_s: number;
  rows_per_cpu_s_with_merge_tail: number;
}

/** Measures an ingest, then the engine's merges that follow it (merges during the ingest are in its CPU anyway). */
export async function measureIngest(rows: number, client: ClickHouseClient, work: () => Promise<void>): Promise<Ingested> {
  const measured = await measure(rows, work);
  const tail = await measure(rows, () => mergesDone(client));
  const total = measured.cpu_s + tail.cpu_s;
  return { ...measured, merge_tail_cpu_s: tail.cpu_s, rows_per_cpu_s_with_merge_tail: Math.round(rows / total) };
}

/**
 * Events packed `perMessage` to a FlowBatch message per partition (by connection id), the way the collector's Packer
 * does; each partition's messages in offset order. The events are consumed as they come: none outlives its message.
 */
export function packMessages(events: Iterable<FlowEvent>, partitions: number, perMessage: number, encode: (events: FlowEvent[]) => Buffer): Buffer[][] {
  const packed: Buffer[][] = Array.from({ length: partitions }, () => []);
  const pending: FlowEvent[][] = Array.from({ length: partitions }, () => []);
  for (const event of events) {
    const partition = partitionOf(event.connection_id, partitions);
    const held = pending[partition]!;
    held.push(event);
    if (held.length === perMessage) {
      packed[partition]!.push(encode(held));
      pending[partition] = [];
    }
  }
  pending.forEach((held, partition) => held.length > 0 && packed[partition]!.push(encode(held)));
  return packed;
}

/** Produces each partition's messages to it, in order (acks=all, idempotent), into an existing topic. */
export async function produceMessages(kafka: Kafka, topic: string, partitions: Buffer[][]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let partition = 0; partition < partitions.length; partition++) {
      const list = partitions[partition]!;
      for (let i = 0; i < list.length; i += 64) {
        await producer.send({ topic, acks: -1, messages: list.slice(i, i + 64).map((value) => ({ value, partition })) });
      }
    }
  } finally {
    await producer.disconnect();
  }
}

/** In-memory Kafka batches: up to `batchBytes` of one partition's messages each, partitions taking turns. */
export function kafkaBatches(topic: string, partitions: Buffer[][], maxEvents: number, batchBytes: number): { batches: KafkaBatch[]; events: number; messages: number } {
  const batches: KafkaBatch[] = [];
  const next = partitions.map(() => 0);
  let events = 0;
  let messages = 0;
  for (let more = true; more; ) {
    more = false;
    for (let partition = 0; partition < partitions.length; partition++) {
      const list = partitions[partition]!;
      const start = next[partition]!;
      if (start >= list.length) continue;
      more = true;
      const batch: KafkaMessage[] = [];
      let bytes = 0;
      for (let offset = start; offset < list.length && bytes + list[offset]!.length <= batchBytes && events < maxEvents; offset++) {
        bytes += list[offset]!.length;
        batch.push({ offset: String(offset), timestamp: '0', key: null, value: list[offset]! });
        events += eventCount(list[offset]!);
        messages++;
      }
      next[partition] = start + batch.length;
      if (batch.length > 0) batches.push({ topic, partition, highWatermark: String(list.length), messages: batch });
      if (events >= maxEvents) return { batches, events, messages };
    }
  }
  return { batches, events, messages };
}

/** Events in a FlowBatch frame: the Avro array's first block count (zig-zag varint after the 5-byte frame). */
export function eventCount(frame: Buffer): number {
  let value = 0;
  let shift = 0;
  for (let i = 5; ; i++) {
    const byte = frame[i]!;
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(byte & 0x80)) break;
  }
  return value / 2; // positive counts only: (n << 1)
}

/**
 * An empty index, as the role's is without a metadata source, so every end is a miss named by its address alone:
 * what bench/enricher's paths join with.
 */
export const noMetadata = new MetadataIndex({ labels: [], historyNs: 1n });

/**
 * The Enricher's dependencies as the role wires them, decoding with the flows contract's codec, no dead letter
 * expected (one fails the run); joined with `noMetadata` at a gate that never waits unless `overrides` say otherwise.
 */
export function enricherDeps(
  sink: EnricherDeps<FlowEvent>['sink'],
  ledger: Ledger,
  telemetry: Telemetry,
  name: string,
  overrides: Partial<EnricherDeps<FlowEvent>> = {},
): EnricherDeps<FlowEvent> {
  const registry = loadRegistry();
  const meter = telemetry.meter(`bench.enricher.${name}`);
  const logger = createLogger({ level: 'warn', destination: 2 });
  return {
    decode: (value) => registry.resolve<FlowBatch>(FLOWS.subject, value).value.events,
    table: FLOWS_TABLE,
    sink,
    ledger,
    gate: new MetadataGate({ progress: COMPLETE_METADATA, index: noMetadata, holdMs: 0, logger, meter }),
    deadLetters: {
      send: async (letters) => {
        throw new Error(`bench: unexpected dead letters (${letters[0]?.reason})`);
      },
    },
    logger,
    meter,
    isRunning: () => true,
    ...overrides,
  };
}

export async function handleAll(enricher: Enricher<FlowEvent>, batches: KafkaBatch[]): Promise<void> {
  for (const batch of batches) {
    const handled = await enricher.handle(batch);
    if (handled?.commit === undefined) throw new Error('bench: a batch was not stored');
  }
}

/**
 * Waits until the embedded engine has run no merge for a second (at most 20 s): a run ends with the merges its
 * inserts caused, including those the engine schedules a moment after the last insert.
 */
export async function mergesDone(client: ClickHouseClient): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (let quiet = 0; quiet < 10 && Date.now() < deadline; ) {
    const running = Number((await queryRows<{ n: string }>(client, 'SELECT count() AS n FROM system.merges'))[0]!.n);
    quiet = running === 0 ? quiet + 1 : 0;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The telemetry, with every `sidecarless.enricher.rows_inserted` counter also reporting its additions to `onRows`,
 * synchronously, as the role counts each stored batch.
 */
export function watchRowsInserted(telemetry: Telemetry, onRows: (rows: number) => void): Telemetry {
  const watched = Object.create(telemetry) as Telemetry;
  watched.meter = (name: string) => {
    const meter = telemetry.meter(name);
    return new Proxy(meter, {
      get(target, property) {
        if (property !== 'createCounter') return Reflect.get(target, property, target);
        return (...args: Parameters<typeof meter.createCounter>) => {
          const counter = target.createCounter(...args);
          if (args[0] !== 'sidecarless.enricher.rows_inserted') return counter;
          return new Proxy(counter, {
            get: (c, p) => (p === 'add' ? (value: number, attributes?: Attributes) => (c.add(value, attributes), onRows(value)) : Reflect.get(c, p, c)),
          });
        };
      },
    });
  };
  return watched;
}

export async function queryRows<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

export async function count(client: ClickHouseClient, table: string): Promise<number> {
  return Number((await queryRows<{ n: string }>(client, `SELECT count() AS n FROM ${table}`))[0]!.n);
}
