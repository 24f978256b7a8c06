/**
 * readToEnd against the real broker: every message below the end offsets the read started with, in offset order
 * per partition, nothing written after; an empty topic answers at once; the throwaway consumer group is gone after.
 * A partition whose records were removed after the end offsets were fetched (so no record reaches its end) is taken
 * as read after fetch rounds that delivered nothing, and said so; a read whose fetches stall for longer than any
 * wall-clock rule would allow still reads everything.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { createKafka } from '../../src/common/kafka/client.js';
import { readToEnd, type ReadMessage } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const logger = createLogger({ level: 'warn' });
const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, logger);
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
const [topic, emptyTopic, truncatedTopic, slowTopic] = ['read-to-end-', 'read-to-end-empty-', 'read-to-end-truncated-', 'read-to-end-slow-'].map((prefix) => uniqueName(prefix));
const topics = [topic!, emptyTopic!, truncatedTopic!, slowTopic!];
const groupPrefix = uniqueName('read-to-end-group-');

/** A logger whose lines the test reads. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, logger: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) }) };
}

/** Five messages in each of partitions 0, 1 and 2 (values p<partition>-<i>). */
async function fill(name: string): Promise<void> {
  await producer.send({ topic: name, acks: -1, messages: [0, 1, 2].flatMap((partition) => Array.from({ length: 5 }, (_, i) => ({ partition, key: `k${i}`, value: `p${partition}-${i}` }))) });
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
  await admin.createTopics({ waitForLeaders: true, topics: topics.map((name) => ({ topic: name, numPartitions: 3, replicationFactor: 1 })) });
});

after(async () => {
  await producer.disconnect();
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.disconnect();
});

describe('readToEnd', () => {
  it('reads every message up to the end offsets at its start, per partition in order, and deletes its group', async () => {
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
    await producer.send({ topic: topic!, acks: -1, messages: sent });
    const read: ReadMessage[] = [];
    const count = await readToEnd(kafka, topic!, (message) => void read.push(message), {
      groupPrefix,
      logger,
      timeoutMs: 30_000,
      // Written after the end offsets were fetched, before anything is consumed: beyond them, so not read.
      onEndOffsets: async (ends) => {
        assert.equal([...ends.values()].reduce((sum, end) => sum + end, 0n), 30n);
        await producer.send({ topic: topic!, acks: -1, messages: sent.map(({ key }) => ({ key, value: 'late' })) });
      },
    });
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
    assert.equal(await readToEnd(kafka, emptyTopic!, () => assert.fail('no message'), { groupPrefix, logger, timeoutMs: 30_000 }), 0);
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  });

  it('takes a partition whose records are gone before its end offset as read after fetch rounds that delivered nothing, and says so', async () => {
    await fill(truncatedTopic!);
    const read: string[] = [];
    const { lines, logger: captured } = capturingLogger();
    const count = await readToEnd(kafka, truncatedTopic!, (message) => void read.push(message.value!.toString()), {
      groupPrefix,
      logger: captured,
      timeoutMs: 30_000,
      quietRounds: 5,
      // Partition 0 loses all its records: its end offset (5) stays, and no record will ever reach it.
      onEndOffsets: async () => void (await admin.deleteTopicRecords({ topic: truncatedTopic!, partitions: [{ partition: 0, offset: '-1' }] })),
    });
    assert.equal(count, 10);
    assert.deepEqual(read.sort(), [1, 2].flatMap((p) => [0, 1, 2, 3, 4].map((i) => `p${p}-${i}`)));
    const warnings = lines.filter((line) => line.level === 40);
    assert.deepEqual(
      warnings.map((line) => [line.msg, line.partitions]),
      [[`${truncatedTopic}: 5 consecutive fetch rounds delivered nothing for partition(s) 0 at offset 0 (end 5): taken as read, as no record is left before the end offset`, { 0: { position: '0', end: '5' } }]],
    );
  });

  it('waits for a partition whose fetches stall: no round, however long, counts as one that delivered nothing', async () => {
    await fill(slowTopic!);
    // The consumer's connection to the broker stops delivering for 6 s once it asks for records the first time:
    // longer than the 5 s of silence after which the wall-clock rule this replaced gave partitions up.
    const stallMs = 6000;
    let stalled = false;
    const slow = new kafkajs.Kafka({
      brokers: [...localKafkaBrokers],
      clientId: uniqueName('read-to-end-slow-'),
      logLevel: kafkajs.logLevel.NOTHING,
      socketFactory: ({ host, port, onConnect }) => {
        const socket = connect({ host, port }, onConnect);
        const write = socket.write.bind(socket) as (chunk: Buffer, ...rest: unknown[]) => boolean;
        socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
          // A request: int32 size, int16 api key (1: Fetch).
          if (!stalled && Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === 1) {
            stalled = true;
            socket.pause();
            setTimeout(() => socket.resume(), stallMs).unref();
          }
          return write(chunk, ...rest);
        }) as typeof socket.write;
        return socket;
      },
    });
    const { lines, logger: captured } = capturingLogger();
    const started = Date.now();
    const count = await readToEnd(slow, slowTopic!, () => {}, { groupPrefix, logger: captured, timeoutMs: 60_000 });
    const took = Date.now() - started;
    assert.equal(count, 15);
    assert.ok(stalled && took >= stallMs, `the read took ${took} ms`);
    assert.deepEqual(lines.filter((line) => line.level === 40), []);
  });
});
