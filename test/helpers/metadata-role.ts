/**
 * The metadata role in integration tests: a configuration of its own (topic prefix, cluster name), the role
 * started in-process with an in-memory metrics reader, and the topic read back whole and decoded, per key in
 * offset order (one key lives in one partition).
 */
import assert from 'node:assert/strict';
import { loadRegistry } from '../../src/common/avro.js';
import { loadConfig, type Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { bindMetadataCodec, type MetadataChange, type MetadataEvent } from '../../src/events/metadata.js';
import { topicSpecs } from '../../src/events/topics.js';
import { startMetadata, type MetadataRoleOptions, type RunningMetadata } from '../../src/metadata/role.js';
import type { KubeSource } from '../../src/metadata/watch/kube-source.js';
import { stateDigest } from '../../src/metadata/watch/published-state.js';
import { OBJECT_KINDS } from '../../src/metadata/watch/kinds.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { kubeCredentials } from '../../src/lab/stack/kube-credentials.js';
import { kafkaPort, kubeApiServerPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { KubeObjects } from './kube.js';
import { requireStackService, uniqueName } from './stack.js';
import { TestReader } from './telemetry.js';

export const codec = bindMetadataCodec(loadRegistry());

/** A configuration whose metadata topic belongs to this test alone, watching the stack's API server. */
export function metadataConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({
    argv: [],
    env: {
      SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
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

/** Per key, its states in offset order (null: a tombstone). */
export type History = Map<string, Array<MetadataEvent | null>>;

export function historyByKey(messages: readonly Message[]): History {
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
  const topics = topicSpecs(config.kafka.topicPrefix);
  // The role creates the policies topic too (its NetworkPolicy watch).
  await admin.deleteTopics({ topics: [topics.metadata.topic, topics.policies.topic] }).catch(() => {});
  await admin.disconnect();
}

/** Waits until every informer has listed and a watermark after that was acknowledged. */
export async function synced({ role }: StartedRole): Promise<void> {
  await waitFor(async () => role.source.ready() && role.publisher.stats.watermarks > 0, { timeoutMs: 20_000, what: 'the informers to sync and a first watermark' });
}

/**
 * Waits until the topic satisfies `done`, then until a watermark later than that has been acknowledged (every change
 * observed before it is on the topic), and returns the topic read once more.
 */
export async function settle(config: Config, { role }: StartedRole, done: (history: History) => boolean, timeoutMs = 20_000): Promise<History> {
  await waitFor(async () => done(historyByKey(await readMetadata(config))), { timeoutMs, what: 'the expected states on the metadata topic', intervalMs: 300 });
  const after = BigInt(Date.now()) * 1_000_000n;
  await waitFor(async () => role.publisher.stats.lastWatermarkNs > after, { timeoutMs: 10_000, what: 'a watermark after the expected states' });
  return historyByKey(await readMetadata(config));
}

const digest = stateDigest(codec);

/** No object's key holds the same state twice in a row: a republished state would show as two equal digests. */
export function assertNoRepeats(history: History): void {
  for (const [key, states] of history) {
    if (key.startsWith('watermark/')) continue;
    for (let i = 1; i < states.length; i++) {
      const [a, b] = [states[i - 1], states[i]];
      assert.ok(a === null || b === null ? a !== b : digest(a!) !== digest(b!), `${key}: state ${i} repeats state ${i - 1}`);
    }
  }
}

export const kubeStats = ({ role }: StartedRole) => (role.source as KubeSource).stats;

/** Each state's labels as JSON, 'deleted' for a tombstone. */
export const labelsOf = (states: Array<MetadataEvent | null> | undefined): string[] => (states ?? []).map((state) => (state === null ? 'deleted' : JSON.stringify(state.labels)));

/** The same count for every watched kind (what the stats and counters hold per kind). */
export const perKind = (n: number): Record<string, number> => Object.fromEntries(OBJECT_KINDS.map((kind) => [kind, n]));

/** What one test file creates (configurations and their topics, roles, API objects, files), removed in after(). */
export class MetadataFixture {
  readonly kube = KubeObjects.fromStack();
  private readonly configs: Config[] = [];
  private readonly roles: StartedRole[] = [];
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  /** For before(): Kafka and the API server answer. */
  async requireStack(): Promise<void> {
    await requireStackService('Kafka', localHost, kafkaPort);
    await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
  }

  /** A configuration of its own (metadataConfig); its topic is deleted at cleanup. */
  config(extra: Record<string, string> = {}): Config {
    const config = metadataConfig(extra);
    this.configs.push(config);
    return config;
  }

  async start(config: Config, options: MetadataRoleOptions = {}): Promise<StartedRole> {
    const started = await startRole(config, options);
    this.roles.push(started);
    return started;
  }

  /** Something else to undo at cleanup, before the API objects are deleted. */
  defer(cleanup: () => Promise<void> | void): void {
    this.cleanups.push(cleanup);
  }

  /** For after(): stops the roles, undoes the deferred, deletes the objects and the topics. */
  async cleanup(): Promise<void> {
    for (const started of this.roles) await started.stop();
    for (const cleanup of this.cleanups) await cleanup();
    await this.kube.cleanup();
    for (const config of this.configs) await deleteMetadataTopic(config);
  }
}
