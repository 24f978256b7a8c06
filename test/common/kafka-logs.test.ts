import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { logCreator } from '../../src/common/kafka/client.js';

/** kafkajs's log function as logCreator makes it, over pino at info, and the JSON lines it writes. */
function logging(now?: () => number) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) });
  return { lines, log: logCreator(pino({ level: 'info' }, sink), now)(kafkajs.logLevel.INFO) };
}

describe('kafkajs logs through pino', () => {
  it('logs a line repeated during an outage once per 10 s, with how often it was held back', () => {
    let clock = 0;
    const { lines, log } = logging(() => clock);
    const refused = { message: 'Connection error: connect ECONNREFUSED', timestamp: 'x', logger: 'kafkajs', broker: '127.0.0.1:19092' };
    for (clock = 0; clock < 5_000; clock += 1_000) log({ namespace: 'Connection', level: kafkajs.logLevel.ERROR, label: 'ERROR', log: refused });
    log({ namespace: 'Consumer', level: kafkajs.logLevel.INFO, label: 'INFO', log: { message: 'Starting', timestamp: 'x', logger: 'kafkajs' } });
    clock = 11_000;
    log({ namespace: 'Connection', level: kafkajs.logLevel.ERROR, label: 'ERROR', log: refused });
    assert.deepEqual(
      lines.map((line) => [line.level, line.kafkajs, line.msg, line.repeatedSinceLastLine]),
      [
        [50, 'Connection', 'Connection error: connect ECONNREFUSED', undefined],
        [30, 'Consumer', 'Starting', undefined],
        [50, 'Connection', 'Connection error: connect ECONNREFUSED', 4],
      ],
    );
    assert.equal(lines[0]!.broker, '127.0.0.1:19092');
  });

  it('logs an error the broker answered at info when Kafka marks it retriable (kafkajs retries it) or it answers a topic creation (ensureTopics decides), else at error', () => {
    const { lines, log } = logging();
    const response = (request: string, error: string) =>
      log({ namespace: 'Connection', level: kafkajs.logLevel.ERROR, label: 'ERROR', log: { message: `Response ${request}`, timestamp: 'x', logger: 'kafkajs', error, correlationId: 2 } });
    // What the demo's first run logged at error while the new broker loaded its group coordinator.
    response('InitProducerId(key: 22, version: 1)', "The coordinator is loading and hence can't process requests for this group");
    response('Produce(key: 0, version: 7)', 'This server is not the leader for that topic-partition');
    // The same request with another error: its own line, not held back as a repeat of the one before.
    response('Produce(key: 0, version: 7)', 'The request included message batch larger than the configured segment size on the server');
    response('Fetch(key: 1, version: 11)', 'Not authorized to access topics: [Topic authorization failed]');
    // Two roles creating the same topics: the loser's answer (ensureTopics checks that they exist, or throws).
    response('CreateTopics(key: 19, version: 2)', 'Topic creation errors');
    assert.deepEqual(
      lines.map((line) => [line.level, line.error]),
      [
        [30, "The coordinator is loading and hence can't process requests for this group"],
        [30, 'This server is not the leader for that topic-partition'],
        [50, 'The request included message batch larger than the configured segment size on the server'],
        [50, 'Not authorized to access topics: [Topic authorization failed]'],
        [30, 'Topic creation errors'],
      ],
    );
  });

  it("logs a consumer's crash on a retriable error, and the restart kafkajs makes for it, at info; any other crash at error", () => {
    const { lines, log } = logging();
    const consumer = (message: string) =>
      log({ namespace: 'Consumer', level: kafkajs.logLevel.ERROR, label: 'ERROR', log: { message, timestamp: 'x', logger: 'kafkajs', groupId: 'g', stack: 'at ...' } });
    // What the demo's first run logged at error while the new broker loaded its group coordinator.
    consumer("Crash: KafkaJSProtocolError: The coordinator is loading and hence can't process requests for this group");
    consumer('Restarting the consumer in 300ms');
    consumer("Crash: KafkaJSNumberOfRetriesExceeded: The coordinator is loading and hence can't process requests for this group");
    consumer('Crash: KafkaJSProtocolError: Not authorized to access group: Group authorization failed');
    consumer('Crash: TypeError: Cannot read properties of undefined');
    assert.deepEqual(
      lines.map((line) => [line.level, line.msg]),
      [
        [30, "Crash: KafkaJSProtocolError: The coordinator is loading and hence can't process requests for this group"],
        [30, 'Restarting the consumer in 300ms'],
        [50, "Crash: KafkaJSNumberOfRetriesExceeded: The coordinator is loading and hence can't process requests for this group"],
        [50, 'Crash: KafkaJSProtocolError: Not authorized to access group: Group authorization failed'],
        [50, 'Crash: TypeError: Cannot read properties of undefined'],
      ],
    );
  });
});
