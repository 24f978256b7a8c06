/**
 * Wiring of the enricher role: the metadata feed (the metadata topic into the event-time index) and its gate, a
 * Kafka consumer group on the event topics (flows, http, and verdicts unless enricher.verdicts is off), the Avro
 * codecs, ClickHouse (the flows table, whose inserts feed the edge rollup; http_requests, whose inserts feed the RED
 * rollup; verdicts, whose inserts feed the policy verdicts rollup; the batch ledger) and the dead-letter topic
 * around one Enricher pipeline per topic. The consumer starts once the feed has read the metadata
 * topic to its end, so the first batches find the index complete. Offsets are committed only after a batch is
 * stored (event-consumer.ts).
 */
import { loadRegistry } from '../common/avro.js';
import { createClickHouse } from '../common/clickhouse/client.js';
import { migrate } from '../common/clickhouse/migrations.js';
import { DeadLetterProducer } from '../common/kafka/dead-letter.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { ensureTopics } from '../common/kafka/topics.js';
import { topicSpecs } from '../events/topics.js';
import type { RoleContext, RunningRole } from '../common/role.js';
import { bindCodec } from '../events/contract.js';
import { deadLetterEnvelope } from '../events/deadletter.js';
import { FLOWS } from '../events/flows.js';
import { HTTP } from '../events/http.js';
import { bindMetadataCodec } from '../events/metadata.js';
import { bindVerdictsCodec } from '../events/verdicts.js';
import { MetadataIndex } from '../metadata/index/metadata-index.js';
import { BatchLedger } from './batch-ledger.js';
import { ClickHouseSink } from './clickhouse-sink.js';
import { Enricher, type EnricherDeps } from './enricher.js';
import { consumeEvents, createEventConsumer, type TopicEnricher } from './event-consumer.js';
import { FLOWS_TABLE } from './flow-row.js';
import { HTTP_TABLE } from './http-row.js';
import { MetadataFeed } from './metadata-feed.js';
import { MetadataGate } from './metadata-gate.js';
import type { EventTable } from './row-binary.js';
import { VERDICTS_TABLE } from './verdict-row.js';

export async function startEnricher({ config, logger, telemetry }: RoleContext): Promise<RunningRole> {
  const registry = loadRegistry();
  const flows = bindCodec(registry, FLOWS);
  const http = bindCodec(registry, HTTP);
  const verdicts = bindVerdictsCodec(registry);
  const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'enricher'), logger);
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, [topics.flows, topics.http, ...(config.enricher.verdicts ? [topics.verdicts] : []), topics.metadata, topics.deadletter]);
  } finally {
    await admin.disconnect();
  }
  const clickhouse = await createClickHouse({ ...config.clickhouse, database: undefined });
  const migrated = await migrate(clickhouse, { database: config.clickhouse.database, ttlDays: config.clickhouse.ttlDays, cluster: config.clickhouse.cluster });
  logger.info({ database: config.clickhouse.database, applied: migrated.applied }, 'clickhouse schema migrated');
  if (migrated.newer.length > 0) {
    logger.warn({ database: config.clickhouse.database, versions: migrated.newer }, 'clickhouse schema has migrations newer than this release; upgrade this process');
  }
  const meter = telemetry.meter('sidecarless.enricher');
  const roleLogger = logger.child({ role: 'enricher' });
  const { metadataHoldMs: holdMs, metadataHistoryMs: historyMs, labels } = config.enricher;
  const index = new MetadataIndex({ labels, historyNs: BigInt(historyMs) * 1_000_000n });
  const feed = new MetadataFeed({
    kafka,
    topic: topics.metadata.topic,
    groupId: config.enricher.groupId,
    codec: bindMetadataCodec(registry),
    index,
    holdMs,
    historyMs,
    logger: roleLogger.child({ component: 'metadata feed' }),
    meter,
  });
  const feedStarted = Date.now();
  await feed.start();
  const feedCrashed = feed.failed.then((error) => Promise.reject(error));
  try {
    await Promise.race([feed.caughtUp(feedStarted), feedCrashed]);
  } catch (error) {
    await feed.stop();
    throw error;
  }
  logger.info({ topic: topics.metadata.topic, ...index.stats(), ms: Date.now() - feedStarted }, 'metadata index built from the metadata topic');
  const gate = new MetadataGate({ progress: feed, index, holdMs, logger: roleLogger, meter });

  const deadLetters = new DeadLetterProducer(kafka, topics.deadletter.topic, deadLetterEnvelope(registry, 'enricher'));
  let running = true;
  const { database } = config.clickhouse;
  const shared: Omit<EnricherDeps<never>, 'decode' | 'table' | 'sink'> = {
    ledger: new BatchLedger(clickhouse, `${database}.kafka_batches`, config.clickhouse.cluster === undefined ? 'server' : 'cluster'),
    gate,
    deadLetters,
    logger: roleLogger,
    meter,
    isRunning: () => running,
  };
  /** The Enricher of one topic: its events decoded into its table. */
  const enricher = <Event>(decode: (value: Buffer) => readonly Event[], table: EventTable<Event>): Enricher<Event> =>
    new Enricher<Event>({ ...shared, decode, table, sink: new ClickHouseSink(clickhouse, `${database}.${table.name}`, table.columns) });
  const enrichers = new Map<string, TopicEnricher>([
    [topics.flows.topic, enricher((value) => flows.decode(value), FLOWS_TABLE)],
    [topics.http.topic, enricher((value) => http.decode(value), HTTP_TABLE)],
  ]);
  if (config.enricher.verdicts) enrichers.set(topics.verdicts.topic, enricher((value) => verdicts.decode(value), VERDICTS_TABLE));

  const consumer = createEventConsumer(kafka, config.enricher, () => running);
  let crashed: (error: unknown) => void = () => {};
  const failed = new Promise<unknown>((resolve) => (crashed = resolve));
  consumer.on(consumer.events.CRASH, (event) => {
    if (!event.payload.restart) crashed(event.payload.error);
  });
  await consumeEvents(consumer, enrichers);
  telemetry.addHealthCheck('consumer', () => ({ ok: running }));
  logger.info({ topics: [...enrichers.keys()], group: config.enricher.groupId, database }, 'enricher running');
  return {
    failed: Promise.race([failed, feed.failed]),
    async stop() {
      running = false;
      // A batch held at the gate gives up at once (uncommitted: it comes again), so the consumer stops promptly.
      await consumer.disconnect();
      await feed.stop();
      gate.flush();
      await deadLetters.shutdown();
      await clickhouse.close();
    },
  };
}
