/**
 * The flows topic deleted and recreated under the enricher (real broker, embedded ClickHouse): the new topic's
 * offsets start again at 0, below those already stored from the old one. The enricher must store every message of
 * the new topic exactly once and say so once, as an error, both when it is restarted after the recreation and when
 * it runs through it. Each case has its own topic, consumer group and database, removed whatever the result.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import type { Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { FLOWS, type FlowBatch } from '../../src/events/flows.js';
import { flowEvent, testConfig } from '../helpers/flows.js';
import { queryRows } from '../helpers/clickhouse.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { requireStackService } from '../helpers/stack.js';

const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
const EVENTS_PER_MESSAGE = 2;
const { config: shared } = testConfig({ SIDECARLESS_KAFKA_PARTITIONS: '1' });
const kafka = createKafka(kafkaOptionsFromConfig(shared.kafka, 'test'), createLogger({ level: 'warn' }));
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
let clickhouse: ClickHouseClient;
const cleanups: Array<() => Promise<unknown>> = [];

/** A configuration of its own for one case: topics, consumer group and database (the embedded store is shared). */
function caseConfig(name: string): Config {
  const config: Config = {
    ...shared,
    kafka: { ...shared.kafka, topicPrefix: `${shared.kafka.topicPrefix}${name}.` },
    clickhouse: { ...shared.clickhouse, database: `${shared.clickhouse.database}_${name}` },
    enricher: { ...shared.enricher, groupId: `${shared.enricher.groupId}-${name}` },
  };
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  cleanups.push(
    () => admin.deleteTopics({ topics: [topics.flows.topic, topics.http.topic, topics.verdicts.topic, topics.metadata.topic, topics.deadletter.topic] }),
    () => admin.deleteGroups([config.enricher.groupId]),
    () => clickhouse.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouse.database}` }),
  );
  return config;
}

/** Messages 0..count-1 of the topic, each holding events first, first+1 (connection ids tell them apart). */
async function produce(topic: string, count: number, first: number): Promise<void> {
  const messages = Array.from({ length: count }, (_, m) => ({
    key: 'test-node',
    value: codec.encode({ events: Array.from({ length: EVENTS_PER_MESSAGE }, (_, e) => flowEvent(first + m * EVENTS_PER_MESSAGE + e)) }),
  }));
  await producer.send({ topic, messages });
}

/** Deletes the topic, waits until the broker has forgotten it, and creates it again (empty, offsets from 0). */
async function recreate(config: Config): Promise<void> {
  const { flows } = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  await admin.deleteTopics({ topics: [flows.topic] });
  await waitFor(async () => !(await admin.listTopics()).includes(flows.topic), { timeoutMs: 30_000, what: `${flows.topic} deleted` });
  await waitFor(async () => ensureTopics(admin, [flows]).then(() => true, () => false), { timeoutMs: 30_000, what: `${flows.topic} created again` });
}

async function committed(config: Config): Promise<number> {
  const { flows } = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  const [topic] = await admin.fetchOffsets({ groupId: config.enricher.groupId, topics: [flows.topic] });
  return Number(topic?.partitions[0]?.offset ?? -1);
}

type Row = [connectionId: string, offset: number];

const byConnection = (a: Row, b: Row) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]);

/** (connection id, Kafka offset) of every row: which events are stored, from which offsets, how often. */
async function stored(config: Config): Promise<Row[]> {
  const rows = await queryRows<{ connection_id: string; kafka_offset: string }>(clickhouse, `SELECT connection_id, kafka_offset FROM ${config.clickhouse.database}.flows`);
  return rows.map((row): Row => [row.connection_id, Number(row.kafka_offset)]).sort(byConnection);
}

/** The rows `count` messages produced from event number `first` leave, as `stored` lists them. */
function expectedRows(count: number, first: number): Row[] {
  return Array.from({ length: count * EVENTS_PER_MESSAGE }, (_, i): Row => [`test-node/e1/${first + i}`, Math.floor(i / EVENTS_PER_MESSAGE)]);
}

/** The enricher role, with the error lines its pipeline logs (not the Kafka client's, which reports the deletion). */
async function runEnricher(config: Config) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  const role = await startEnricher({ config, logger, telemetry });
  return {
    errors: () => lines.filter((line) => line.level === 50 && line.role === 'enricher'),
    async stop() {
      await role.stop();
      await telemetry.shutdown();
    },
  };
}

/** Waits until the group committed `offset` (every message handled), then compares the rows. */
async function assertStored(config: Config, offset: number, rows: Row[]): Promise<void> {
  await waitFor(async () => (await committed(config)) === offset, { timeoutMs: 60_000, what: `the enricher to commit offset ${offset}` });
  assert.deepEqual(await stored(config), [...rows].sort(byConnection));
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
  clickhouse = await createClickHouse({ embeddedPath: shared.clickhouse.embeddedPath });
});

after(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => {});
  await producer.disconnect();
  await admin.disconnect();
  await clickhouse?.close();
  rmSync(shared.clickhouse.embeddedPath, { recursive: true, force: true });
});

/** A case's configuration and its own flows topic, holding messages 0-2 (events 0-5). */
async function caseWithOldTopic(name: string): Promise<{ config: Config; topic: string }> {
  const config = caseConfig(name);
  const { flows } = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  await ensureTopics(admin, [flows]);
  await produce(flows.topic, 3, 0);
  return { config, topic: flows.topic };
}

/** One error line, naming the topic and the generation its new messages are stored as. */
function assertSaidOnce(errors: Array<Record<string, unknown>>, topic: string): void {
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.equal(errors[0]!.topic, topic);
  assert.match(String(errors[0]!.msg), /deleted and recreated.*generation 1/);
}

describe('enricher on a recreated flows topic', () => {
  it('restarted after the recreation: stores the new messages at the same offsets as the stored ones, and says so once', async () => {
    const { config, topic } = await caseWithOldTopic('restarted');
    const first = await runEnricher(config);
    try {
      await assertStored(config, 3, expectedRows(3, 0));
    } finally {
      await first.stop();
    }

    // As many messages as before: the same offsets 0-2, and a log that reaches just as far as the stored one.
    await recreate(config);
    await produce(topic, 3, 100);
    const second = await runEnricher(config);
    try {
      await assertStored(config, 3, [...expectedRows(3, 0), ...expectedRows(3, 100)]);
      assertSaidOnce(second.errors(), topic);
    } finally {
      await second.stop();
    }
  });

  it('running through the recreation: stores the new messages, and says so once', async () => {
    const { config, topic } = await caseWithOldTopic('running');
    const enricher = await runEnricher(config);
    try {
      await assertStored(config, 3, expectedRows(3, 0));
      // Fewer messages than before: the consumer's next fetch (offset 3) is out of range and it starts again at 0.
      // Had the new topic passed offset 3 before that fetch, the consumer would go on from 3 unawares (what a
      // recreated topic can still hide: src/enricher/enricher.ts).
      await recreate(config);
      await produce(topic, 2, 100);
      await assertStored(config, 2, [...expectedRows(3, 0), ...expectedRows(2, 100)]);
      assertSaidOnce(enricher.errors(), topic);
    } finally {
      await enricher.stop();
    }
  });
});
