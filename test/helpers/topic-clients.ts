/**
 * An enricher test's Kafka side: an admin and a producer on the run's own topics (one partition each), connected
 * and the named topics made in before(); in after(), whatever failed, the enricher's consumer group deleted, the
 * clients closed and the run's database and topics dropped.
 */
import { after, before } from 'node:test';
import kafkajs, { type Admin, type Producer } from 'kafkajs';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics, type TopicSpec } from '../../src/common/kafka/topics.js';
import type { Logger } from '../../src/common/logger.js';
import { topicSpecs, type TopicRole } from '../../src/events/topics.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { dropTestData } from './flows.js';
import { requireStackService } from './stack.js';

export interface TopicClients {
  kafka: kafkajs.Kafka;
  admin: Admin;
  producer: Producer;
  topics: Record<TopicRole, TopicSpec>;
}

/** `clickhouse()` is the test's client by the time after() runs (undefined if it never made one). */
export function topicClients(config: Config, logger: Logger, made: readonly TopicRole[], clickhouse: () => ClickHouseClient | undefined): TopicClients {
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), logger);
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 1 });
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  before(async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    await admin.connect();
    await producer.connect();
    await ensureTopics(admin, made.map((role) => topics[role]));
  });
  after(async () => {
    await admin.deleteGroups([config.enricher.groupId]).catch(() => {});
    await producer.disconnect();
    await admin.disconnect();
    await dropTestData(config, clickhouse());
  });
  return { kafka, admin, producer, topics };
}
