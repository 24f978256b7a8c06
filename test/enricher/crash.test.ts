/**
 * The enricher process killed with SIGKILL while it stores a stream of batches, then restarted: the table ends with
 * every event exactly once. A separate file (a separate process) because the embedded engine allows one store
 * per process, and this test opens it only after the enricher processes are gone.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { waitFor } from '../../src/lab/stack/processes.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { topicSpecs } from '../../src/events/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { FLOWS, type FlowBatch } from '../../src/events/flows.js';
import { committed as committedOf, EnricherProcesses, exited } from '../helpers/enricher-process.js';
import { flowEvent, testConfig } from '../helpers/flows.js';
import { requireStackService } from '../helpers/stack.js';

const MESSAGES = 600;
const EVENTS_PER_MESSAGE = 20;
const { config, env } = testConfig({ SIDECARLESS_ENRICHER_BATCH_BYTES: '4096', SIDECARLESS_KAFKA_PARTITIONS: '3' });
const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' }));
const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 3 });
const admin = kafka.admin();
const processes = new EnricherProcesses();
const startEnricherProcess = () => processes.start(env);
const committed = () => committedOf(admin, config.enricher.groupId, topics.flows.topic);

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await ensureTopics(admin, [topics.flows, topics.deadletter]);
});

after(async () => {
  processes.killAll();
  await admin.deleteTopics({ topics: [topics.flows.topic, topics.http.topic, topics.verdicts.topic, topics.metadata.topic, topics.deadletter.topic] }).catch(() => {});
  await admin.disconnect();
  rmSync(config.clickhouse.embeddedPath, { recursive: true, force: true });
});

describe('enricher crash', () => {
  it('SIGKILL mid-stream and restart: every event stored exactly once', async () => {
    const codec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
    const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    await producer.connect();
    const messages = Array.from({ length: MESSAGES }, (_, m) => ({
      key: `k${m}`,
      value: codec.encode({ events: Array.from({ length: EVENTS_PER_MESSAGE }, (_, e) => flowEvent(m * EVENTS_PER_MESSAGE + e)) }),
    }));
    // A few messages per send: a fetch returns whole record batches whatever its size limit, so one big send would
    // reach the enricher as one batch per partition and be stored before the kill could land.
    for (let i = 0; i < messages.length; i += 3) await producer.send({ topic: topics.flows.topic, messages: messages.slice(i, i + 3) });
    await producer.disconnect();

    const first = startEnricherProcess();
    await waitFor(async () => (await committed()) >= MESSAGES / 10, { timeoutMs: 60_000, intervalMs: 20, what: 'the first enricher to commit a tenth of the stream' });
    first.kill('SIGKILL');
    await exited(first);
    const atKill = await committed();
    assert.ok(atKill < MESSAGES, `killed before the end (committed ${atKill} of ${MESSAGES})`);

    const second = startEnricherProcess();
    await waitFor(async () => (await committed()) === MESSAGES, { timeoutMs: 180_000, what: 'the restarted enricher to commit everything' });
    second.kill('SIGTERM');
    await exited(second);

    const clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
    try {
      const result = await clickhouse.query({
        query: `SELECT count() AS rows, uniqExact(connection_id) AS connections, sum(bytes_client_to_server) AS bytes FROM ${config.clickhouse.database}.flows`,
        format: 'JSONEachRow',
      });
      const total = MESSAGES * EVENTS_PER_MESSAGE;
      // bytes_client_to_server of event n is 1000 + n: the sum proves every event's own row, not just the count.
      const expectedBytes = BigInt(total) * 1000n + BigInt((total * (total - 1)) / 2);
      assert.deepEqual(await result.json(), [{ rows: String(total), connections: String(total), bytes: expectedBytes.toString() }]);
    } finally {
      await clickhouse.close();
    }
  });
});
