/**
 * The scenario of the hold-crash tests, for any event topic the enricher stores (flows, http): the enricher process
 * killed with SIGKILL while a batch is held at the metadata gate, then restarted: the held batch is neither lost nor
 * stored twice, and the topic's rollup counts every event once. Each topic's test is a file (a process) of its own,
 * because the embedded engine allows one store per process, and each opens it only after the enricher processes
 * are gone.
 *
 * The metadata source is alive (a watermark every 200 ms) and confirmed through W0. Batch A is older than W0 (its
 * message timestamps are set before it): it is stored at once. Batch B is newer: it waits for the source, up to a
 * hold of a minute. The first enricher is killed while B waits; the second holds B again, until the source's
 * watermark passes it.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import type { ClickHouseClient } from '@clickhouse/client';
import { waitFor } from '../../src/lab/stack/processes.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { queryRows } from './clickhouse.js';
import { committed, EnricherProcesses, exited } from './enricher-process.js';
import { dropTestData, testConfig } from './flows.js';
import { sec } from './metadata.js';
import { deploymentPod, nowNs, publishMetadata, watermarkChange } from './metadata-topic.js';
import { requireStackService } from './stack.js';
import { freePort } from './telemetry.js';

/** What the scenario needs of one topic. */
export interface HeldTopic<Event> {
  topic: 'flows' | 'http';
  /** One message value of the events. */
  encode(events: Event[]): Buffer;
  /**
   * Event n, from the pod (10.5.0.5, cgroup 55 on node n1) to 192.0.2.1:443 at `atNs` (its join time), on connection
   * n1/crash/n, carrying 1000 + n bytes from the client.
   */
  event(n: number, atNs: bigint): Event;
  /** The table its events are stored in, and the column holding the client's bytes. */
  table: string;
  bytesColumn: string;
  /** Its rollup, the column counting events and the one summing the client's bytes. */
  rollup: { table: string; count: string; bytes: string };
}

const EVENTS_PER_MESSAGE = 10;
const MESSAGES_PER_BATCH = 3;

/** Registers the scenario's suite for the topic (at a module's top level). */
export async function holdCrashSuite<Event>(held: HeldTopic<Event>): Promise<void> {
  const metricsPort = await freePort();
  const { config, env } = testConfig({
    SIDECARLESS_KAFKA_PARTITIONS: '1',
    SIDECARLESS_ENRICHER_METADATA_HOLD_MS: '60000',
    SIDECARLESS_TELEMETRY_METRICS_PORT: String(metricsPort),
  });
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' }));
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  const topic = topics[held.topic].topic;
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  const processes = new EnricherProcesses();

  /** A value of the running enricher's /metrics (its Prometheus name), or undefined while it does not serve one. */
  async function metric(name: string): Promise<number | undefined> {
    try {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Waits for the enricher's metric to reach `value`, with its log in the failure. */
  async function metricReaches(child: ChildProcess, name: string, value: number): Promise<void> {
    try {
      await waitFor(async () => (await metric(name)) === value, { timeoutMs: 60_000, intervalMs: 100, what: `${name} = ${value}` });
    } catch (error) {
      throw new Error(`${(error as Error).message}; the enricher's log ends:\n${processes.log(child)}`);
    }
  }

  before(async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    await admin.connect();
    await producer.connect();
    await ensureTopics(admin, [topics.flows, topics.http, topics.metadata, topics.deadletter]);
  });

  after(async () => {
    processes.killAll();
    await producer.disconnect();
    await admin.disconnect();
    await dropTestData(config, undefined);
  });

  describe(`enricher crash while a batch of ${held.topic} is held`, () => {
    it('SIGKILL while held, restart: the held batch stored once, the rollup counting each event once', async () => {
      const start = nowNs();
      const pod = deploymentPod({ namespace: 'shop', deployment: 'crash', suffix: 'k', ip: '10.5.0.5', node: 'n1', cgroupId: 55n, at: start - sec(600) });
      const w0 = start - sec(2);
      await publishMetadata(producer, topics.metadata.topic, [...pod.changes, watermarkChange(w0)]);
      let ticking = true;
      const ticker = (async () => {
        while (ticking) {
          await publishMetadata(producer, topics.metadata.topic, [watermarkChange(w0)]);
          await sleep(200);
        }
      })();
      // Events of one batch are a millisecond apart.
      const batch = (first: number, startNs: bigint) =>
        Array.from({ length: MESSAGES_PER_BATCH }, (_, m) =>
          Array.from({ length: EVENTS_PER_MESSAGE }, (_, e) => held.event(first + m * EVENTS_PER_MESSAGE + e, startNs + BigInt(m * EVENTS_PER_MESSAGE + e) * 1_000_000n)),
        );
      const perBatch = MESSAGES_PER_BATCH * EVENTS_PER_MESSAGE;
      try {
        // A: before W0, in events and message timestamps.
        await producer.send({
          topic,
          messages: batch(0, start - sec(120)).map((events) => ({ key: 'n1', value: held.encode(events), timestamp: String((w0 - sec(1)) / 1_000_000n) })),
        });
        const first = processes.start(env);
        await metricReaches(first, 'sidecarless_enricher_rows_inserted_total', perBatch);
        // B: after W0. It is recorded in the ledger, then held.
        await producer.send({ topic, messages: batch(perBatch, start - sec(1)).map((events) => ({ key: 'n1', value: held.encode(events) })) });
        await metricReaches(first, 'sidecarless_enricher_held_batches', 1);
        first.kill('SIGKILL');
        await exited(first);
        assert.equal(await committed(admin, config.enricher.groupId, topic), MESSAGES_PER_BATCH, 'A committed, B not');

        const second = processes.start(env);
        await metricReaches(second, 'sidecarless_enricher_held_batches', 1);
        assert.equal(await metric('sidecarless_enricher_rows_inserted_total'), undefined, 'B is held again, nothing stored yet');
        ticking = false;
        await ticker;
        await publishMetadata(producer, topics.metadata.topic, [watermarkChange(nowNs())]);
        await waitFor(async () => (await committed(admin, config.enricher.groupId, topic)) === 2 * MESSAGES_PER_BATCH, {
          timeoutMs: 60_000,
          what: 'the restarted enricher to commit B',
        });
        assert.equal(await metric('sidecarless_enricher_rows_inserted_total'), perBatch);
        second.kill('SIGTERM');
        await exited(second);
      } finally {
        ticking = false;
        await ticker;
      }

      const clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
      try {
        const total = 2 * perBatch;
        const bytes = String(Array.from({ length: total }, (_, n) => 1000 + n).reduce((a, b) => a + b, 0));
        await verify(clickhouse, config.clickhouse.database, held, total, bytes);
      } finally {
        await dropTestData(config, clickhouse);
      }
    });
  });
}

/** The stored events: `total` rows, one per connection, `bytes` in all, the client named `crash` (hit); the rollup counting each once. */
async function verify(clickhouse: ClickHouseClient, database: string, held: HeldTopic<unknown>, total: number, bytes: string): Promise<void> {
  assert.deepEqual(
    await queryRows(
      clickhouse,
      `SELECT count() AS rows, uniqExact(connection_id) AS connections, toString(sum(${held.bytesColumn})) AS bytes,
              groupUniqArray(concat(client_k8s_workload_name, ':', toString(client_enrichment))) AS clients
       FROM ${database}.${held.table}`,
    ),
    [{ rows: String(total), connections: String(total), bytes, clients: ['crash:hit'] }],
  );
  const { rollup } = held;
  assert.deepEqual(
    await queryRows(clickhouse, `SELECT toString(sum(${rollup.count})) AS counted, toString(sum(${rollup.bytes})) AS bytes FROM ${database}.${rollup.table}`),
    [{ counted: String(total), bytes }],
  );
}
