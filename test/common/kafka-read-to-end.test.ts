/**
 * readToEnd against the real broker: every message below the end offsets the read started with, in offset order
 * per partition, nothing written after; an empty topic answers at once; the throwaway consumer group is gone after.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { createKafka } from '../../src/common/kafka/client.js';
import { readToEnd, type ReadMessage } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const logger = createLogger({ level: 'warn' });
const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, logger);
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
const topics = [uniqueName('read-to-end-'), uniqueName('read-to-end-empty-')];
const groupPrefix = uniqueName('read-to-end-group-');

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
  await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: 3, replicationFactor: 1 })) });
});

after(async () => {
  await producer.disconnect();
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.disconnect();
});

describe('readToEnd', () => {
  it('reads every message up to the end offsets at its start, per partition in order, and deletes its group', async () => {
    const [topic] = topics;
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
    await producer.send({ topic: topic!, messages: sent });
    const read: ReadMessage[] = [];
    let first = true;
    const count = await readToEnd(
      kafka,
      topic!,
      (message) => {
        read.push(message);
        // Written while the read runs: beyond the end offsets it started with, so not read.
        if (first) void producer.send({ topic: topic!, messages: [{ key: 'late', value: 'late' }] });
        first = false;
      },
      { groupPrefix, logger, timeoutMs: 30_000 },
    );
    assert.equal(count, 30);
    assert.deepEqual(read.map((message) => message.value!.toString()).sort(), sent.map((message) => message.value).sort());
    // One key, one partition: its messages come in the order they were sent.
    for (let k = 0; k < 7; k++) {
      const values = read.filter((message) => message.key!.toString() === `k${k}`).map((message) => message.value!.toString());
      assert.deepEqual(values, sent.filter((message) => message.key === `k${k}`).map((message) => message.value));
    }
    const groups = (await admin.listGroups()).groups.map((group) => group.groupId);
    assert.deepEqual(groups.filter((group) => group.startsWith(groupPrefix)), []);
  });

  it('an empty topic: nothing, at once', async () => {
    const started = Date.now();
    assert.equal(await readToEnd(kafka, topics[1]!, () => assert.fail('no message'), { groupPrefix, logger, timeoutMs: 30_000 }), 0);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  });
});
