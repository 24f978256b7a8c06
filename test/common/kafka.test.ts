/**
 * src/common/kafka.ts against the real broker of the local stack: consumer-group offsets, the topic catalog's
 * configs, and compaction removing a key after its tombstone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { createKafka } from '../../src/common/kafka/client.js';
import { ensureTopics, type TopicSpec } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, createLogger({ level: 'warn' }));
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
const topics: string[] = [];
const groups: string[] = [];

interface Received {
  partition: number;
  offset: string;
  key: string | null;
  value: string | null;
}

/** Creates topics through ensureTopics and remembers them for deletion. */
async function createTopics(specs: TopicSpec[]): Promise<void> {
  topics.push(...specs.map((spec) => spec.topic));
  assert.deepEqual(await ensureTopics(admin, specs), specs.map((spec) => spec.topic));
}

/**
 * Runs a consumer of the group until done(received) holds, committing each message's offset (+1, the next one to
 * read) after it is handled, as the enricher does after its ClickHouse insert. Disconnecting leaves the group.
 */
async function consume(topic: string, groupId: string, done: (received: Received[]) => boolean): Promise<Received[]> {
  if (!groups.includes(groupId)) groups.push(groupId);
  // A short fetch wait keeps disconnect quick: it waits for the fetch in flight.
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 });
  const received: Received[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        received.push({ partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value?.toString() ?? null });
        await consumer.commitOffsets([{ topic, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
      },
    });
    await waitFor(async () => done(received), { timeoutMs: 30_000, what: `group ${groupId} to consume ${topic}` });
  } finally {
    await consumer.disconnect();
  }
  return received;
}

/** Sorted by partition, then offset: the order Kafka guarantees within a partition, comparable across runs. */
function byPosition(records: Received[]): Received[] {
  return [...records].sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

async function committedOffsets(groupId: string, topic: string): Promise<Record<number, string>> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return Object.fromEntries((entry?.partitions ?? []).map(({ partition, offset }) => [partition, offset]));
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
});

after(async () => {
  await producer.disconnect();
  try {
    // Topics first: they hold the data; a group left behind is only a name.
    if (topics.length > 0) await admin.deleteTopics({ topics });
    if (groups.length > 0) await admin.deleteGroups(groups);
  } finally {
    await admin.disconnect();
  }
});

describe('consumer group', () => {
  it('commits offsets, and a restarted member resumes after them without re-reading', async () => {
    const topic = uniqueName('test.kafka.group_');
    const groupId = uniqueName('test-group-');
    // No replicationFactor: exercises ensureTopics reading the broker's default.
    await createTopics([{ topic, partitions: 3, configs: { 'cleanup.policy': 'delete' } }]);

    // Explicit partitions so that every partition receives records in both rounds: within a partition Kafka
    // delivers in offset order, so an old record could not arrive after the new ones it precedes.
    const record = (i: number) => ({ partition: i % 3, key: `k${i}`, value: `v${i}` });
    const first = Array.from({ length: 12 }, (_, i) => record(i));
    await producer.send({ topic, acks: -1, messages: first });

    const firstRound = await consume(topic, groupId, (received) => received.length >= first.length);
    // Record i went to partition i % 3 at offset floor(i / 3).
    const expected = [0, 1, 2].flatMap((p) => [0, 1, 2, 3].map((o) => ({ partition: p, offset: String(o), key: `k${p + 3 * o}`, value: `v${p + 3 * o}` })));
    assert.deepEqual(byPosition(firstRound), expected);
    assert.deepEqual(await committedOffsets(groupId, topic), { 0: '4', 1: '4', 2: '4' });

    const second = Array.from({ length: 6 }, (_, i) => record(12 + i));
    await producer.send({ topic, acks: -1, messages: second });

    const secondRound = await consume(topic, groupId, (received) => received.length >= second.length);
    assert.deepEqual(byPosition(secondRound), [
      { partition: 0, offset: '4', key: 'k12', value: 'v12' },
      { partition: 0, offset: '5', key: 'k15', value: 'v15' },
      { partition: 1, offset: '4', key: 'k13', value: 'v13' },
      { partition: 1, offset: '5', key: 'k16', value: 'v16' },
      { partition: 2, offset: '4', key: 'k14', value: 'v14' },
      { partition: 2, offset: '5', key: 'k17', value: 'v17' },
    ]);
    assert.deepEqual(await committedOffsets(groupId, topic), { 0: '6', 1: '6', 2: '6' });
  });
});

describe('ensureTopics', () => {
  it('creates the catalog once, compacted where replay needs it, and rejects a mismatched existing topic', async () => {
    const prefix = `${uniqueName('test.catalog_')}.`;
    const catalog = topicSpecs(prefix, { partitions: 2, replicationFactor: 1, retentionMs: 3_600_000 });
    const specs = Object.values(catalog);
    await createTopics(specs);
    assert.deepEqual(await ensureTopics(admin, specs), [], 'a second run creates nothing');

    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: specs.map((spec) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name: spec.topic, configNames: ['cleanup.policy', 'retention.ms', 'min.compaction.lag.ms', 'delete.retention.ms'] })),
    });
    const configs = Object.fromEntries(
      resources.map((r) => [r.resourceName.slice(prefix.length), Object.fromEntries(r.configEntries.map((e) => [e.configName, e.configValue]))]),
    );
    const week = String(7 * 24 * 3_600_000);
    // The broker's defaults: no compaction lag, tombstones kept a day.
    const defaults = { 'min.compaction.lag.ms': '0', 'delete.retention.ms': String(24 * 3_600_000) };
    assert.deepEqual(configs, {
      'flows.v1': { 'cleanup.policy': 'delete', 'retention.ms': '3600000', ...defaults },
      'http.v1': { 'cleanup.policy': 'delete', 'retention.ms': '3600000', ...defaults },
      'verdicts.v1': { 'cleanup.policy': 'delete', 'retention.ms': '3600000', ...defaults },
      // Superseded states and tombstones outlive the events that may be joined with them (replay).
      'metadata.v1': { 'cleanup.policy': 'compact', 'retention.ms': week, 'min.compaction.lag.ms': '3600000', 'delete.retention.ms': '3600000' },
      'policies.v1': { 'cleanup.policy': 'compact', 'retention.ms': week, ...defaults },
      'deadletter.v1': { 'cleanup.policy': 'delete', 'retention.ms': String(30 * 24 * 3_600_000), ...defaults },
    });

    const metadata = await admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.topic) });
    assert.deepEqual(metadata.topics.map((t) => t.partitions.length), [2, 2, 2, 2, 2, 2]);

    await assert.rejects(ensureTopics(admin, [{ ...catalog.metadata, configs: { 'cleanup.policy': 'delete' } }]), {
      message: new RegExp(`topic ${catalog.metadata.topic.replaceAll('.', '\\.')} exists with cleanup.policy=compact but needs delete`),
    });
  });

  it('warns, naming the command, when an existing metadata topic keeps less history than the events\' retention', async () => {
    const prefix = `${uniqueName('test.catalog_')}.`;
    const twoDays = 2 * 24 * 3_600_000;
    const { metadata } = topicSpecs(prefix, { partitions: 1, replicationFactor: 1, retentionMs: twoDays });
    // Created before the minimums existed: a compacted topic with the broker's defaults.
    await createTopics([{ ...metadata, configs: { 'cleanup.policy': 'compact' } }]);
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    assert.deepEqual(await ensureTopics(admin, [metadata], logger), []);
    assert.deepEqual(
      lines.map((line) => [line.config, line.actual, line.minimum]),
      [
        ['min.compaction.lag.ms', '0', twoDays],
        ['delete.retention.ms', String(24 * 3_600_000), twoDays],
      ],
    );
    assert.match(String(lines[0]!.msg), new RegExp(`--entity-name ${metadata.topic.replaceAll('.', '\\.')} --add-config min\\.compaction\\.lag\\.ms=${twoDays}\\)$`));
    // Raised as the warning says: no warning any more.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: metadata.topic, configEntries: Object.entries(metadata.configs).map(([name, value]) => ({ name, value })) }],
    });
    lines.length = 0;
    await ensureTopics(admin, [metadata], logger);
    assert.deepEqual(lines, []);
  });
});

describe('compaction', () => {
  it('removes a key whose latest record is a tombstone', async () => {
    const topic = uniqueName('test.kafka.compact_');
    // Roll segments after 100 ms and clean as soon as anything is dirty; drop tombstones 100 ms after cleaning.
    await createTopics([
      {
        topic,
        partitions: 1,
        replicationFactor: 1,
        configs: { 'cleanup.policy': 'compact', 'segment.ms': '100', 'min.cleanable.dirty.ratio': '0.01', 'delete.retention.ms': '100' },
      },
    ]);
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'k1', value: 'v1' },
        { key: 'k2', value: 'v2' },
        { key: 'k1', value: null },
      ],
    });

    let snapshot: Received[] = [];
    let round = 0;
    await waitFor(
      async () => {
        // The cleaner never touches the active segment, and a segment rolls only when a record is appended
        // after segment.ms: this filler record closes the segment holding the records above.
        await producer.send({ topic, acks: -1, messages: [{ key: 'filler', value: String(round) }] });
        const [{ high } = { high: '0' }] = await admin.fetchTopicOffsets(topic);
        const last = BigInt(high) - 1n;
        // A fresh group per round reads the whole partition from the beginning, as a replaying role would.
        snapshot = await consume(topic, uniqueName(`test-compact-${round++}-`), (received) => received.some((r) => BigInt(r.offset) >= last));
        return !snapshot.some((r) => r.key === 'k1' && r.value === 'v1');
      },
      { timeoutMs: 90_000, what: `the cleaner to compact away k1=v1 in ${topic}`, intervalMs: 500 },
    );

    const latest = new Map(byPosition(snapshot).map((r) => [r.key, r.value]));
    assert.equal(latest.get('k2'), 'v2');
    assert.deepEqual(snapshot.filter((r) => r.key === 'k2').map((r) => r.value), ['v2']);
    // The tombstone itself may still be there (until delete.retention.ms after a cleaning), but nothing else of k1.
    assert.deepEqual([...new Set(snapshot.filter((r) => r.key === 'k1').map((r) => r.value))].filter((v) => v !== null), []);
  });
});
