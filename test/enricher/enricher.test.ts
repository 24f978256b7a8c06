/**
 * The enricher against the real broker and the embedded ClickHouse engine: exact rows, dead letters for bad
 * input, and exactly-once storage when a batch is stored but its offset was never committed, when a crash cut its
 * insert between two day partitions, and when the partition's log turns out to be another one (a recreated topic).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { BatchLedger } from '../../src/enricher/batch-ledger.js';
import { ClickHouseSink } from '../../src/enricher/clickhouse-sink.js';
import { Enricher, type EnricherDeps, type KafkaBatch, type KafkaMessage } from '../../src/enricher/enricher.js';
import { FLOWS_TABLE, toFlowRow, type FlowRow, type FlowRows } from '../../src/enricher/flow-row.js';
import { COMPLETE_METADATA, MetadataGate, type MetadataProgress } from '../../src/enricher/metadata-gate.js';
import { MetadataIndex } from '../../src/metadata/index/metadata-index.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { migrate } from '../../src/common/clickhouse/migrations.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { bindDeadLetterCodec } from '../../src/events/deadletter.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../src/events/flows.js';
import { BASE_TIME_NS, flowEvent, testConfig } from '../helpers/flows.js';
import { podIdentity } from '../helpers/metadata.js';
import { queryRows } from '../helpers/clickhouse.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
const logger = createLogger({ level: 'warn' });
const { config } = testConfig();
const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), logger);
const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
let clickhouse: ClickHouseClient;
const table = `${config.clickhouse.database}.flows`;

/** No metadata: every end a miss named by its address (these tests are about storing, not joining). */
const noMetadata = new MetadataIndex({ labels: [], historyNs: 1n });
const noMeter = { createCounter: () => ({ add() {} }), createUpDownCounter: () => ({ add() {} }), createHistogram: () => ({ record() {} }) } as never;

/** The Enricher on the embedded engine's flows table and batch ledger, expecting no dead letters. */
function pipeline(overrides: Partial<EnricherDeps<FlowEvent>> = {}): EnricherDeps<FlowEvent> {
  return {
    decode: (value: Buffer) => codec.decodeFrom(value, codec).events,
    table: FLOWS_TABLE,
    sink: new ClickHouseSink(clickhouse, table),
    ledger: new BatchLedger(clickhouse, `${config.clickhouse.database}.kafka_batches`),
    gate: new MetadataGate({ progress: COMPLETE_METADATA, index: noMetadata, holdMs: 0, logger, meter: noMeter }),
    deadLetters: { send: async () => assert.fail('no dead letters expected') },
    logger,
    meter: noMeter,
    isRunning: () => true,
    ...overrides,
  };
}

/** A message as Kafka hands it over; the timestamp is a function of the offset unless given (it is in the fingerprint). */
function message(offset: number, events: FlowEvent[], timestamp = 1_700_000_000_000 + offset): KafkaMessage {
  return { offset: String(offset), timestamp: String(timestamp), key: null, value: codec.encode({ events }) };
}

/** A batch of one partition whose log ends right after it unless told otherwise. */
function batchOf(topic: string, messages: KafkaMessage[], highWatermark = Number(messages.at(-1)!.offset) + 1): KafkaBatch {
  return { topic, partition: 0, highWatermark: String(highWatermark), messages };
}

/** (connection id, Kafka offset, day) of the topic's rows: which events are stored, from where, how often. */
async function rowsOf(topic: string): Promise<StoredRow[]> {
  const rows = await queryRows<{ connection_id: string; kafka_offset: string; day: string }>(
    clickhouse,
    `SELECT connection_id, kafka_offset, toString(toDate(time)) AS day FROM ${table} WHERE kafka_topic = {topic:String} ORDER BY kafka_offset, time`,
    { topic },
  );
  return rows.map((row): StoredRow => [row.connection_id, Number(row.kafka_offset), row.day]);
}

type StoredRow = [connectionId: string, offset: number, day: string];

/**
 * Events on both sides of the engine's last midnight (the table's partitions are days in its time zone): per
 * message n, event n before midnight first (so the first part an insert of such messages commits is that day's),
 * then event n + 100 after it; and the rows that messages at `offsets` leave on the first day, or on both.
 */
async function aroundMidnight(): Promise<{
  events(n: number): FlowEvent[];
  firstDay(offsets: number[]): StoredRow[];
  bothDays(offsets: number[]): StoredRow[];
  before: string;
  after: string;
}> {
  const [day] = await queryRows<{ midnight: string; before: string; after: string }>(
    clickhouse,
    'SELECT toString(toUnixTimestamp(toStartOfDay(now()))) AS midnight, toString(yesterday()) AS before, toString(today()) AS after',
  );
  const midnight = BigInt(day!.midnight) * 1_000_000_000n;
  const { before, after } = day!;
  return {
    events: (n) => [flowEvent(n, { time_ns: midnight - 1_000_000_000n + BigInt(n) }), flowEvent(n + 100, { time_ns: midnight + 1_000_000_000n + BigInt(n) })],
    firstDay: (offsets) => offsets.map((offset): StoredRow => [`test-node/e1/${offset}`, offset, before]),
    bothDays: (offsets) => offsets.flatMap((offset): StoredRow[] => [[`test-node/e1/${offset}`, offset, before], [`test-node/e1/${offset + 100}`, offset, after]]),
    before,
    after,
  };
}

/**
 * A sink whose insert dies after ClickHouse committed the first part (the day before midnight) and before the
 * second. That part is written as the server writes it: the server names a part by its table partition and the
 * insert's deduplication token (ClickHouse 26.x deduplication log: `<partition>_<hash of token>`, the same for
 * every part of one insert), so that day's rows inserted alone under the same token leave the very part, with the
 * very name, that the cut insert left.
 */
class DiesBetweenParts extends ClickHouseSink {
  constructor(private readonly firstPart: FlowRow[]) {
    super(clickhouse, table);
  }

  override async insert(_rows: FlowRows, token: string): Promise<never> {
    assert.deepEqual(await super.insert(this.firstPart, token), { ok: true });
    throw new Error('killed between the two parts of the insert');
  }
}

/** The first life of a batch of messages made by `events`: its insert cut after the first day; nothing committed. */
async function crashBetweenParts(batch: KafkaBatch, events: (n: number) => FlowEvent[]): Promise<void> {
  const { topic, partition } = batch;
  const firstDay = batch.messages.map(({ offset }) => {
    const event = events(Number(offset))[0]!;
    return toFlowRow(event, noMetadata.joinFlow(event), { topic, partition, offset });
  });
  await assert.rejects(new Enricher(pipeline({ sink: new DiesBetweenParts(firstDay) })).handle(batch), /killed between the two parts/);
}

/** The edge rollup per day: what the view added, whatever its parts. */
async function rollupByDay(): Promise<Array<{ day: string; connections: string; bytes: string }>> {
  return queryRows(
    clickhouse,
    `SELECT toString(toDate(minute)) AS day, toString(sum(connections)) AS connections, toString(sum(bytes_client_to_server)) AS bytes
     FROM ${config.clickhouse.database}.flow_edges_1m GROUP BY day ORDER BY day`,
  );
}

/** bytes_client_to_server of flowEvent(n) for each n, summed (1000 + n each). */
const bytesOf = (ns: number[]) => String(ns.reduce((sum, n) => sum + 1000 + n, 0));

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
  await admin.deleteTopics({ topics: [topics.flows.topic, topics.http.topic, topics.verdicts.topic, topics.metadata.topic, topics.deadletter.topic] }).catch(() => {});
  await producer.disconnect();
  await admin.disconnect();
  await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouse.database}` });
  await clickhouse?.close();
  rmSync(config.clickhouse.embeddedPath, { recursive: true, force: true });
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
    const envelope = bindDeadLetterCodec(loadRegistry()).decode(deadLetters[0]!.value);
    assert.deepEqual(envelope.source_value, garbage);
    assert.deepEqual(envelope.source_key, Buffer.from('k2'));
    assert.equal(envelope.writer, 'enricher');
    assert.equal(envelope.source_topic, topics.flows.topic);
    assert.equal(envelope.source_offset, 1n);
    assert.equal(envelope.reason, deadLetters[0]!.headers['sidecarless-error']);
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

  it('stores a batch once when it was inserted but its offset never committed (crash, then replay), in the rollup too', async () => {
    await clickhouse.command({ query: `TRUNCATE TABLE ${table}` });
    await clickhouse.command({ query: `TRUNCATE TABLE ${config.clickhouse.database}.flow_edges_1m` });
    const batch = batchOf('replayed-topic', [10, 11, 12].map((offset) => message(offset, [flowEvent(offset), flowEvent(offset + 100)])));
    // First life: stores the batch, then "dies" before committing (the returned offset is simply not committed).
    assert.deepEqual(await new Enricher(pipeline()).handle(batch), { commit: '13' });
    // Second life: Kafka hands the same batch again, plus one new message.
    assert.deepEqual(await new Enricher(pipeline()).handle(batchOf(batch.topic, [...batch.messages, message(13, [flowEvent(13)])])), { commit: '14' });
    const result = await clickhouse.query({ query: `SELECT count() AS rows, uniqExact(connection_id) AS connections FROM ${table}`, format: 'JSONEachRow' });
    assert.deepEqual(await result.json(), [{ rows: '7', connections: '7' }]);
    const [today] = await queryRows<{ day: string }>(clickhouse, `SELECT toString(toDate(time)) AS day FROM ${table} LIMIT 1`);
    assert.deepEqual(await rollupByDay(), [{ day: today!.day, connections: '7', bytes: bytesOf([10, 110, 11, 111, 12, 112, 13]) }]);
  });

  it('replays a batch whose insert a crash cut between its two day partitions: every row stored once, in the rollup too', async () => {
    await clickhouse.command({ query: `TRUNCATE TABLE ${config.clickhouse.database}.flow_edges_1m` });
    const topic = uniqueName('two_days_');
    const { events, firstDay, bothDays, before, after } = await aroundMidnight();
    const batch = batchOf(topic, [20, 21, 22].map((offset) => message(offset, events(offset))));
    await crashBetweenParts(batch, events);
    assert.deepEqual(await rowsOf(topic), firstDay([20, 21, 22]));
    assert.deepEqual(await rollupByDay(), [{ day: before, connections: '3', bytes: bytesOf([20, 21, 22]) }]);

    // Restarted: nothing was committed, so Kafka hands the same batch again.
    const handled = await new Enricher(pipeline()).handle(batch);
    assert.deepEqual(await rowsOf(topic), bothDays([20, 21, 22]));
    assert.deepEqual(handled, { commit: '23' });
    // The rollup is partitioned by day like `flows`: the replay's first-day part is the cut insert's, and is skipped.
    assert.deepEqual(await rollupByDay(), [
      { day: before, connections: '3', bytes: bytesOf([20, 21, 22]) },
      { day: after, connections: '3', bytes: bytesOf([120, 121, 122]) },
    ]);
  });

  it('holds the replay of a cut batch until a refetch has delivered all of it, committing nothing meanwhile', async () => {
    const topic = uniqueName('in_pieces_');
    const { events, firstDay, bothDays, after } = await aroundMidnight();
    const messages = [30, 31, 32].map((offset) => message(offset, events(offset)));
    await crashBetweenParts(batchOf(topic, messages), events);

    // Restarted: the refetch comes in two pieces, the second with a new message after the recorded batch.
    const enricher = new Enricher(pipeline());
    const firstPiece = await enricher.handle(batchOf(topic, messages.slice(0, 1), 34));
    const whileHeld = await rowsOf(topic);
    const secondPiece = await enricher.handle(batchOf(topic, [...messages.slice(1), message(33, events(33).slice(1))], 34));
    assert.deepEqual(await rowsOf(topic), [...bothDays([30, 31, 32]), ['test-node/e1/133', 33, after]]);
    assert.deepEqual(whileHeld, firstDay([30, 31, 32]), 'nothing inserted from a piece of the batch');
    assert.deepEqual([firstPiece, secondPiece], [{ commit: undefined }, { commit: '34' }]);
  });

  it('stores a partition whose log now ends below the stored offset (a recreated topic) as its next generation, saying so once', async () => {
    const topic = uniqueName('recreated_');
    const lines: Array<Record<string, unknown>> = [];
    const capturing = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const running = new Enricher(pipeline({ logger: capturing }));
    // The old log: the enricher first met it at offset 5 (retention had removed 0-4), and stored 5-9.
    const old = batchOf(topic, [5, 6, 7, 8, 9].map((offset) => message(offset, [flowEvent(offset)])));
    const oldHandled = await running.handle(old);
    // Recreated: offsets from 0 again, other messages, and no recorded batch begins or ends among 0-2. The same
    // enricher meets them (a consumer whose offset is out of range starts again at the earliest).
    const recreated = [0, 1, 2].map((offset) => message(offset, [flowEvent(200 + offset)], 1_800_000_000_000 + offset));
    const runningHandled = await running.handle(batchOf(topic, recreated));
    // Restarted before the commit: Kafka hands 0-2 again, and one more.
    const restartedHandled = await new Enricher(pipeline({ logger: capturing })).handle(
      batchOf(topic, [...recreated, message(3, [flowEvent(203)], 1_800_000_000_003)]),
    );
    assert.deepEqual(
      (await rowsOf(topic)).map(([connection, offset]) => [connection, offset]),
      [[`test-node/e1/200`, 0], [`test-node/e1/201`, 1], [`test-node/e1/202`, 2], [`test-node/e1/203`, 3], ...[5, 6, 7, 8, 9].map((offset) => [`test-node/e1/${offset}`, offset])],
    );
    const errors = lines.filter((line) => line.level === 50);
    assert.equal(errors.length, 1, JSON.stringify(lines));
    assert.deepEqual([errors[0]!.topic, errors[0]!.generation, errors[0]!.storedThrough], [topic, 1, '9']);
    assert.deepEqual([oldHandled, runningHandled, restartedHandled], [{ commit: '10' }, { commit: '3' }, { commit: '4' }]);
  });

  it('waits again, and decodes the batch again, when its events start after the message timestamps the gate waited for', async () => {
    const topic = uniqueName('late_stamps_');
    // Messages stamped an hour before their events (a producer with another clock): the watermark passes the
    // stamps first, then, a wait later, the events.
    const stampMs = Number((BASE_TIME_NS - 3_600_000_000_000n) / 1_000_000n);
    const batch = batchOf(topic, [message(0, [flowEvent(1), flowEvent(7)], stampMs), message(1, [flowEvent(3)], stampMs)]);
    const stampBound = (BigInt(stampMs) + 1n) * 1_000_000n - 1n;
    const latestStart = flowEvent(7).start_time_ns;
    let through = stampBound;
    const progress: MetadataProgress = {
      syncedAt: () => Infinity,
      confirmedThrough: () => through,
      requestSync: () => {},
      nextSync: async () => void (through = latestStart),
    };
    const gate = new MetadataGate({ progress, index: noMetadata, holdMs: 60_000, logger, meter: noMeter });
    const bounds: bigint[] = [];
    const open: MetadataGate['open'] = (arrivedAtMs, boundNs, keepAlive) => (bounds.push(boundNs), gate.open(arrivedAtMs, boundNs, keepAlive));
    assert.deepEqual(await new Enricher(pipeline({ gate: { open } })).handle(batch), { commit: '2' });
    assert.deepEqual(bounds, [stampBound, latestStart]);
    assert.deepEqual(
      (await rowsOf(topic)).map(([connection, offset]) => [connection, offset]),
      [['test-node/e1/1', 0], ['test-node/e1/7', 0], ['test-node/e1/3', 1]],
    );
    assert.deepEqual(
      await queryRows(clickhouse, `SELECT DISTINCT toString(client_enrichment) AS client, toString(server_enrichment) AS server FROM ${table} WHERE kafka_topic = {topic:String}`, { topic }),
      [{ client: 'miss', server: 'miss' }],
    );
  });

  it('keeps the consumer session alive while an insert is retried, and gives up uncommitted once it is stale', async () => {
    let heartbeats = 0;
    let inserts = 0;
    const enricher = new Enricher(
      pipeline({
        sink: { insert: async () => (inserts++, { ok: false, error: 'ClickHouse down', retriable: true }) },
        ledger: { latest: async () => undefined, boundaryWithin: async () => undefined, record: async () => ({ ok: true }) },
      }),
    );
    const batch = batchOf('t', [message(0, [flowEvent(1)])]);
    const next = await enricher.handle(batch, { heartbeat: async () => void heartbeats++, isStale: () => heartbeats >= 3 });
    assert.equal(next, undefined, 'nothing to commit');
    assert.equal(heartbeats, 3);
    assert.equal(inserts, 4);
  });

  it('rolls final rows up per minute and workload edge, exactly, and a replayed insert adds nothing', async () => {
    await clickhouse.command({ query: `TRUNCATE TABLE ${config.clickhouse.database}.flow_edges_1m` });
    const edge = { client: podIdentity('shop', 'checkout'), server: podIdentity('pay', 'payments', 'payments') };
    // A whole minute an hour ago, so that both minutes below are inside the TTL and in the past.
    const minute = (BigInt(Date.now() - 3_600_000) / 60_000n) * 60_000_000_000n;
    const at = (seconds: number) => ({ start_time_ns: minute + BigInt(seconds) * 1_000_000_000n - 500_000_000n, time_ns: minute + BigInt(seconds) * 1_000_000_000n });
    const connection = (n: number, seconds: number, fields: Partial<FlowEvent>) =>
      flowEvent(n, { ...at(seconds), bytes_client_to_server: 0n, bytes_server_to_client: 0n, retransmits: 0, rtt_us: null, ...fields });
    const events = [
      connection(1, 10, { bytes_client_to_server: 100n, bytes_server_to_client: 1000n, rtt_us: 100, retransmits: 1 }),
      connection(2, 20, { bytes_client_to_server: 200n, bytes_server_to_client: 2000n, rtt_us: 300 }),
      connection(3, 30, { handshake_completed: false, close_reason: 'refused', syn_retransmits: 2 }),
      connection(4, 40, { record_kind: 'interim', bytes_client_to_server: 50n, rtt_us: 200, retransmits: 5 }), // not final: not counted
      connection(5, 50, { handshake_completed: false, close_reason: 'connect_timeout' }),
      connection(6, 55, { handshake_completed: false, close_reason: 'aborted' }),
      connection(7, 70, { bytes_client_to_server: 10n, bytes_server_to_client: 20n, rtt_us: 200, retransmits: 2 }), // the next minute
      connection(8, 15, { observer_side: 'server', bytes_client_to_server: 1n, bytes_server_to_client: 2n, rtt_us: 50 }),
      connection(9, 25, { server_port: 9090, bytes_client_to_server: 7n, bytes_server_to_client: 8n, rtt_us: 0 }),
    ];
    const rows = events.map((event, i) => toFlowRow(event, edge, { topic: 'rollup', partition: 0, offset: String(i) }));
    const sink = new ClickHouseSink(clickhouse, table);
    assert.deepEqual(await sink.insert(rows, 'rollup/0/0/0-8'), { ok: true });
    const rollup = () =>
      queryRows(
        clickhouse,
        `SELECT toString(toUnixTimestamp(minute) - {minute:Int64}) AS second, observer_side, client_k8s_namespace_name, client_k8s_workload_kind,
                client_k8s_workload_name, server_k8s_namespace_name, server_k8s_workload_name, server_k8s_service_name, server_port,
                toString(sum(connections)) AS connections, toString(sum(failed_connections)) AS failed, toString(sum(bytes_client_to_server)) AS sent,
                toString(sum(bytes_server_to_client)) AS received, toString(sum(retransmits)) AS retransmits,
                arrayMap(code -> toString(round(exp(code / 56))), quantilesTimingMerge(0, 0.5, 0.99)(rtt_code)) AS rtt
         FROM ${config.clickhouse.database}.flow_edges_1m
         GROUP BY minute, observer_side, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name,
                  server_k8s_namespace_name, server_k8s_workload_name, server_k8s_service_name, server_port
         ORDER BY minute, observer_side, server_port`,
        { minute: (minute / 1_000_000_000n).toString() },
      );
    const names = { client_k8s_namespace_name: 'shop', client_k8s_workload_kind: 'Deployment', client_k8s_workload_name: 'checkout', server_k8s_namespace_name: 'pay', server_k8s_workload_name: 'payments', server_k8s_service_name: 'payments' };
    const expected = [
      { second: '0', observer_side: 'client', ...names, server_port: 8080, connections: '5', failed: '3', sent: '300', received: '3000', retransmits: '1', rtt: ['100', '298', '298'] },
      { second: '0', observer_side: 'client', ...names, server_port: 9090, connections: '1', failed: '0', sent: '7', received: '8', retransmits: '0', rtt: ['nan', 'nan', 'nan'] },
      { second: '0', observer_side: 'server', ...names, server_port: 8080, connections: '1', failed: '0', sent: '1', received: '2', retransmits: '0', rtt: ['50', '50', '50'] },
      { second: '60', observer_side: 'client', ...names, server_port: 8080, connections: '1', failed: '0', sent: '10', received: '20', retransmits: '2', rtt: ['201', '201', '201'] },
    ];
    assert.deepEqual(await rollup(), expected);
    // The same insert again (a crash before the commit, then the replay): nothing added, in the table or the rollup.
    assert.deepEqual(await sink.insert(rows, 'rollup/0/0/0-8'), { ok: true });
    assert.deepEqual(await rollup(), expected);
    await clickhouse.command({ query: `OPTIMIZE TABLE ${config.clickhouse.database}.flow_edges_1m FINAL` });
    assert.deepEqual(await rollup(), expected);
  });

  it('ignores a retried insert with the same deduplication token', async () => {
    await clickhouse.command({ query: `TRUNCATE TABLE ${table}` });
    const sink = new ClickHouseSink(clickhouse, table);
    const rows = [flowEvent(7), flowEvent(8)].map((event) => toFlowRow(event, noMetadata.joinFlow(event), { topic: 't', partition: 0, offset: '5' }));
    assert.deepEqual(await sink.insert(rows, 't/0/5-5'), { ok: true });
    assert.deepEqual(await sink.insert(rows, 't/0/5-5'), { ok: true });
    assert.equal(await rowCount(), 2);
  });
});
