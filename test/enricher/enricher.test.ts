/**
 * The enricher against the real broker and the embedded ClickHouse engine: exact rows, dead letters for bad
 * input, and exactly-once storage when a batch is stored but its offset was never committed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { ClickHouseSink } from '../../src/enricher/clickhouse-sink.js';
import { Enricher, type KafkaBatch } from '../../src/enricher/enricher.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { migrate } from '../../src/common/clickhouse/migrations.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { FLOWS, type FlowBatch } from '../../src/events/flows.js';
import { BASE_TIME_NS, flowEvent, testConfig } from '../helpers/flows.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { requireStackService } from '../helpers/stack.js';

const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
const logger = createLogger({ level: 'warn' });
const { config } = testConfig();
const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), logger);
const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
let clickhouse: ClickHouseClient;

async function rowCount(): Promise<number> {
  const result = await clickhouse.query({ query: `SELECT count() AS n FROM ${config.clickhouse.database}.flows`, format: 'JSONEachRow' });
  return Number((await result.json<{ n: string }>())[0]!.n);
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
  await ensureTopics(admin, [topics.flows, topics.deadletter]);
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  await migrate(clickhouse, { database: config.clickhouse.database, ttlDays: 7 });
});

after(async () => {
  await admin.deleteTopics({ topics: [topics.flows.topic, topics.deadletter.topic] }).catch(() => {});
  await producer.disconnect();
  await admin.disconnect();
  await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouse.database}` });
  await clickhouse?.close();
});

describe('enricher', () => {
  it('stores every event of good messages exactly, and dead-letters a garbage message with the reason', async () => {
    const garbage = Buffer.from('this is not an Avro event');
    await producer.send({
      topic: topics.flows.topic,
      messages: [
        { key: 'k1', value: codec.encode({ events: [flowEvent(1), flowEvent(2)] }) },
        { key: 'k2', value: garbage },
        { key: 'k3', value: codec.encode({ events: [flowEvent(3), flowEvent(4), flowEvent(5, { observer_side: 'server', rtt_us: null, process_pid: null, thread_id: null, process_executable_name: null })] }) },
      ],
    });
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    const role = await startEnricher({ config, logger, telemetry });
    const deadLetters: Array<{ key: string; value: Buffer; headers: Record<string, string> }> = [];
    const consumer = kafka.consumer({ groupId: `${config.enricher.groupId}-dl-reader`, maxWaitTimeInMs: 100 });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: topics.deadletter.topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)]));
          deadLetters.push({ key: String(message.key), value: message.value!, headers });
        },
      });
      await waitFor(async () => (await rowCount()) === 5 && deadLetters.length === 1, { timeoutMs: 60_000, what: '5 rows and 1 dead letter' });
    } finally {
      await consumer.disconnect();
      await role.stop();
      await telemetry.shutdown();
    }
    assert.equal(deadLetters[0]!.key, 'k2');
    assert.deepEqual(deadLetters[0]!.value, garbage);
    assert.equal(deadLetters[0]!.headers['sidecarless-source-topic'], topics.flows.topic);
    assert.equal(deadLetters[0]!.headers['sidecarless-source-offset'], '1');
    assert.match(deadLetters[0]!.headers['sidecarless-error']!, /magic byte/);

    const result = await clickhouse.query({
      query: `SELECT connection_id, observer_side, toString(toUnixTimestamp64Nano(time)) AS time_ns, toString(client_address) AS client, server_port,
                     bytes_client_to_server, bytes_server_to_client, rtt_us, process_pid, process_executable_name, kafka_offset
              FROM ${config.clickhouse.database}.flows ORDER BY connection_id`,
      format: 'JSONEachRow',
    });
    const rows = await result.json<Record<string, unknown>>();
    assert.deepEqual(rows.map((r) => r.connection_id), [1, 2, 3, 4, 5].map((n) => `test-node/e1/${n}`));
    assert.deepEqual(rows[0], {
      connection_id: 'test-node/e1/1',
      observer_side: 'client',
      time_ns: (BASE_TIME_NS + 1_000_000n + 123_456_789n).toString(),
      client: '::ffff:10.0.0.1',
      server_port: 8080,
      bytes_client_to_server: '1001',
      bytes_server_to_client: '2001',
      rtt_us: 50,
      process_pid: 1234,
      process_executable_name: 'curl',
      kafka_offset: '0',
    });
    assert.deepEqual([rows[4]!.observer_side, rows[4]!.rtt_us, rows[4]!.process_pid, rows[4]!.process_executable_name, rows[4]!.kafka_offset], ['server', 0, 0, '', '2']);
  });

  it('stores a batch once when it was inserted but its offset never committed (crash, then replay)', async () => {
    const database = config.clickhouse.database;
    const table = `${database}.flows`;
    await clickhouse.command({ query: `TRUNCATE TABLE ${table}` });
    const batch: KafkaBatch = {
      topic: 'replayed-topic',
      partition: 0,
      messages: [10, 11, 12].map((offset) => ({ offset: String(offset), key: null, value: codec.encode({ events: [flowEvent(offset), flowEvent(offset + 100)] }) })),
    };
    const deps = () => ({
      decode: (value: Buffer) => codec.decodeFrom(value, codec).events,
      sink: new ClickHouseSink(clickhouse, table),
      deadLetters: { send: async () => assert.fail('no dead letters expected') },
      logger,
      meter: { createCounter: () => ({ add() {} }) } as never,
      isRunning: () => true,
    });
    // First life: stores the batch, then "dies" before committing (the returned offset is simply not committed).
    assert.equal(await new Enricher(deps()).handle(batch), '13');
    // Second life: Kafka hands the same batch again, plus one new message.
    const replay = { ...batch, messages: [...batch.messages, { offset: '13', key: null, value: codec.encode({ events: [flowEvent(13)] }) }] };
    assert.equal(await new Enricher(deps()).handle(replay), '14');
    const result = await clickhouse.query({ query: `SELECT count() AS rows, uniqExact(connection_id) AS connections FROM ${table}`, format: 'JSONEachRow' });
    assert.deepEqual(await result.json(), [{ rows: '7', connections: '7' }]);
  });

  it('keeps the consumer session alive while an insert is retried, and gives up uncommitted once it is stale', async () => {
    let heartbeats = 0;
    let inserts = 0;
    const enricher = new Enricher({
      decode: (value: Buffer) => codec.decodeFrom(value, codec).events,
      sink: { storedOffset: async () => -1n, insert: async () => (inserts++, { ok: false, error: 'ClickHouse down', retriable: true }) },
      deadLetters: { send: async () => assert.fail('no dead letters expected') },
      logger,
      meter: { createCounter: () => ({ add() {} }) } as never,
      isRunning: () => true,
    });
    const batch: KafkaBatch = { topic: 't', partition: 0, messages: [{ offset: '0', key: null, value: codec.encode({ events: [flowEvent(1)] }) }] };
    const next = await enricher.handle(batch, { heartbeat: async () => void heartbeats++, isStale: () => heartbeats >= 3 });
    assert.equal(next, undefined, 'nothing to commit');
    assert.equal(heartbeats, 3);
    assert.equal(inserts, 4);
  });

  it('ignores a retried insert with the same deduplication token', async () => {
    const table = `${config.clickhouse.database}.flows`;
    await clickhouse.command({ query: `TRUNCATE TABLE ${table}` });
    const sink = new ClickHouseSink(clickhouse, table);
    const { toFlowRow } = await import('../../src/enricher/flow-row.js');
    const rows = [flowEvent(7), flowEvent(8)].map((event) => toFlowRow(event, { topic: 't', partition: 0, offset: '5' }));
    assert.deepEqual(await sink.insert(rows, 't/0/5-5'), { ok: true });
    assert.deepEqual(await sink.insert(rows, 't/0/5-5'), { ok: true });
    assert.equal(await rowCount(), 2);
    assert.equal(await sink.storedOffset('t', 0), 5n);
    assert.equal(await sink.storedOffset('t', 1), -1n);
  });
});
