/**
 * The metadata role in integration tests: a configuration of its own (topic prefix, cluster name), the role
 * started in-process with an in-memory metrics reader, and the topic read back whole and decoded, per key in
 * offset order (one key lives in one partition).
 */
import { MetricReader, type DataPoint, type HistogramMetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import { loadRegistry } from '../../src/common/avro.js';
import { loadConfig, type Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { bindMetadataCodec, type MetadataChange, type MetadataEvent } from '../../src/events/metadata.js';
import { topicSpecs } from '../../src/events/topics.js';
import { startMetadata, type MetadataRoleOptions, type RunningMetadata } from '../../src/metadata/role.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { uniqueName } from './stack.js';

export const codec = bindMetadataCodec(loadRegistry());

/** A configuration whose metadata topic belongs to this test alone, watching the stack's API server. */
export function metadataConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({
    argv: [],
    env: {
      SIDECARLESS_KAFKA_TOPIC_PREFIX: `${uniqueName('md')}.`,
      SIDECARLESS_KAFKA_PARTITIONS: '3',
      SIDECARLESS_METADATA_KUBECONFIG: kubeCredentials.kubeconfigFile,
      SIDECARLESS_METADATA_CLUSTER: 'test',
      SIDECARLESS_METADATA_WATERMARK_MS: '200',
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
      SIDECARLESS_LOG_LEVEL: 'warn',
      ...extra,
    },
  });
}

/** Reads the meters on demand. */
export class TestReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}

  private async points(name: string): Promise<DataPoint<unknown>[]> {
    const { resourceMetrics } = await this.collect();
    const metric = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name) as SumMetricData | HistogramMetricData | undefined;
    return (metric?.dataPoints ?? []) as DataPoint<unknown>[];
  }

  /** A counter's values by the `kind` attribute. */
  async byKind(name: string): Promise<Record<string, number>> {
    return Object.fromEntries((await this.points(name)).map((p) => [String(p.attributes.kind), p.value as number]));
  }

  /** A histogram's number of values by the `kind` attribute. */
  async countsByKind(name: string): Promise<Record<string, number>> {
    return Object.fromEntries((await this.points(name)).map((p) => [String(p.attributes.kind), (p.value as { count: number }).count]));
  }
}

export interface StartedRole {
  role: RunningMetadata;
  telemetry: Telemetry;
  reader: TestReader;
  /** Stops the role, then its telemetry; safe to call twice. */
  stop(): Promise<void>;
}

export async function startRole(config: Config, options: MetadataRoleOptions = {}): Promise<StartedRole> {
  const reader = new TestReader();
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0, readers: [reader] });
  const logger = createLogger({ level: config.log.level });
  const role = await startMetadata({ config, logger, telemetry }, options).catch(async (error: unknown) => {
    await telemetry.shutdown();
    throw error;
  });
  let stopped: Promise<void> | undefined;
  return {
    role,
    telemetry,
    reader,
    stop: () => (stopped ??= role.stop().finally(() => telemetry.shutdown())),
  };
}

export interface Message {
  partition: number;
  offset: string;
  change: MetadataChange;
}

export function kafkaOf(config: Config) {
  return createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' }));
}

/** Every message of the run's metadata topic, decoded. */
export async function readMetadata(config: Config): Promise<Message[]> {
  const messages: Message[] = [];
  const { metadata } = topicSpecs(config.kafka.topicPrefix);
  await readToEnd(
    kafkaOf(config),
    metadata.topic,
    ({ partition, offset, key, value, timestamp }) => messages.push({ partition, offset, change: codec.decode(key, value, timestamp) }),
    { groupPrefix: 'test-metadata-read', logger: createLogger({ level: 'warn' }) },
  );
  return messages;
}

/** Per key, its messages in offset order: the state (null for a tombstone) and, for tombstones, their time. */
export function historyByKey(messages: readonly Message[]): Map<string, Array<MetadataEvent | null>> {
  const history = new Map<string, Array<MetadataEvent | null>>();
  const ordered = [...messages].sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  for (const { change } of ordered) {
    const list = history.get(change.key) ?? [];
    list.push('event' in change ? change.event : null);
    history.set(change.key, list);
  }
  return history;
}

/** Deletes the run's metadata topic. */
export async function deleteMetadataTopic(config: Config): Promise<void> {
  const admin = kafkaOf(config).admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [topicSpecs(config.kafka.topicPrefix).metadata.topic] }).catch(() => {});
  await admin.disconnect();
}
