import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { logCreator } from '../../src/common/kafka/client.js';

describe('kafkajs logs through pino', () => {
  it('logs a line repeated during an outage once per 10 s, with how often it was held back', () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) });
    let clock = 0;
    const log = logCreator(pino({ level: 'info' }, sink), () => clock)(kafkajs.logLevel.INFO);
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
});
