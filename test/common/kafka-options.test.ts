/** createKafka and topicSpecs without a broker: option validation, log routing, the catalog's names and configs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ConfigError } from '../../src/common/errors.js';
import { createKafka, type KafkaOptions } from '../../src/common/kafka/client.js';
import { topicSpecs } from '../../src/events/topics.js';

const brokers = ['127.0.0.1:19092'];

function configKeyOf(options: KafkaOptions): unknown {
  try {
    createKafka(options, pino({ level: 'silent' }));
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.context.configKey;
  }
  return assert.fail('createKafka accepted the options');
}

describe('createKafka', () => {
  it('names the setting at fault', () => {
    assert.equal(configKeyOf({ brokers: [], clientId: 't' }), 'kafka.brokers');
    assert.equal(configKeyOf({ brokers: ['no-port'], clientId: 't' }), 'kafka.brokers');
    assert.equal(configKeyOf({ brokers, clientId: 't', tls: { caPath: '/nonexistent/ca.pem' } }), 'kafka.tls.caPath');
    assert.equal(configKeyOf({ brokers, clientId: 't', tls: { certPath: '/nonexistent/cert.pem' } }), 'kafka.tls.keyPath');
    assert.equal(configKeyOf({ brokers, clientId: 't', sasl: { mechanism: 'scram-sha-512', username: '', password: 'p' } }), 'kafka.sasl.username');
  });

  it('routes kafkajs logs into pino at warn and above, without kafkajs timestamps', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: 'debug', base: null, timestamp: false }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const kafkaLogger = createKafka({ brokers, clientId: 't' }, logger).logger();
    kafkaLogger.info('chatty', { broker: 'b1' });
    kafkaLogger.warn('worth knowing', { broker: 'b1' });
    kafkaLogger.error('broken', { retryCount: 2 });
    assert.deepEqual(
      lines.map(({ kafkajs: _namespace, ...rest }) => rest),
      [
        { level: 40, component: 'kafka', broker: 'b1', msg: 'worth knowing' },
        { level: 50, component: 'kafka', retryCount: 2, msg: 'broken' },
      ],
    );
  });
});

describe('topicSpecs', () => {
  it('gives the DESIGN.md topics under the prefix, compacted where state is replayed', () => {
    const day = 86_400_000;
    assert.deepEqual(topicSpecs('p.', { partitions: 3 }), {
      flows: { topic: 'p.flows.v1', partitions: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': String(7 * day) } },
      http: { topic: 'p.http.v1', partitions: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': String(7 * day) } },
      verdicts: { topic: 'p.verdicts.v1', partitions: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': String(7 * day) } },
      // Metadata keeps superseded states and tombstones as long as the events it labels: a replay joins with them.
      metadata: {
        topic: 'p.metadata.v1',
        partitions: 3,
        configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': String(7 * day), 'delete.retention.ms': String(7 * day) },
        minimums: { 'min.compaction.lag.ms': 7 * day, 'delete.retention.ms': 7 * day },
      },
      policies: { topic: 'p.policies.v1', partitions: 3, configs: { 'cleanup.policy': 'compact' } },
      deadletter: { topic: 'p.deadletter.v1', partitions: 3, configs: { 'cleanup.policy': 'delete', 'retention.ms': String(30 * day) } },
    });
    assert.equal(topicSpecs().flows.topic, 'sidecarless.flows.v1');
    assert.equal(topicSpecs('p.', { retentionMs: day }).metadata.configs['min.compaction.lag.ms'], String(day));
  });
});
