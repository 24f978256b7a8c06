/**
 * Kafka for every role: a kafkajs client built from plain options (TLS material read from PEM files once, at
 * creation, so a missing file fails at start-up and not at the first reconnect), kafkajs' own logs routed into
 * pino, and the topic catalog of DESIGN.md with an idempotent `ensureTopics`.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
// Default import: kafkajs is CommonJS and Node cannot see ConfigResourceTypes as a named export of it.
import kafkajs, { type Admin, type Kafka, type KafkaConfig, type LogEntry, type Message, type Producer, type RetryOptions, type SASLOptions } from 'kafkajs';
import { ConfigError, SidecarlessError, describeError } from './errors.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './logger.js';

export interface KafkaOptions {
  /** host:port of one or more bootstrap brokers. */
  brokers: readonly string[];
  clientId: string;
  /** PEM file paths (names as in config.ts). Present, even empty, means TLS; without caPath the system CAs apply. */
  tls?: { caPath?: string; certPath?: string; keyPath?: string; rejectUnauthorized?: boolean };
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
}

function readPem(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(key, `cannot read PEM file ${path}: ${describeError(error)}`);
  }
}

function tlsOptions(tls: NonNullable<KafkaOptions['tls']>): ConnectionOptions {
  if ((tls.certPath === undefined) !== (tls.keyPath === undefined)) {
    throw new ConfigError(tls.certPath === undefined ? 'kafka.tls.certPath' : 'kafka.tls.keyPath', 'a client certificate and its key go together: set both or neither');
  }
  const options: ConnectionOptions = {};
  if (tls.caPath !== undefined) options.ca = [readPem(tls.caPath, 'kafka.tls.caPath')];
  if (tls.certPath !== undefined) options.cert = readPem(tls.certPath, 'kafka.tls.certPath');
  if (tls.keyPath !== undefined) options.key = readPem(tls.keyPath, 'kafka.tls.keyPath');
  if (tls.rejectUnauthorized !== undefined) options.rejectUnauthorized = tls.rejectUnauthorized;
  return options;
}

function saslOptions({ mechanism, username, password }: NonNullable<KafkaOptions['sasl']>): SASLOptions {
  // One branch per mechanism because kafkajs types SASL options as a union discriminated by the literal.
  switch (mechanism) {
    case 'plain':
      return { mechanism, username, password };
    case 'scram-sha-256':
      return { mechanism, username, password };
    case 'scram-sha-512':
      return { mechanism, username, password };
  }
}

/**
 * kafkajs logs through pino, tagged with the kafkajs namespace. Its own timestamp and `logger: 'kafkajs'` fields
 * are dropped: pino adds a time, and the namespace tag already says where the line came from.
 */
/**
 * kafkajs warns about this on every idempotent producer with bounded retries. Our producers bound them on purpose
 * (their caller retries the same messages, which keep their sequence numbers, so the broker still de-duplicates):
 * the warning is noise, kept at debug.
 */
const EXPECTED_WARNINGS = new Set(['Limiting retries for the idempotent producer may invalidate EoS guarantees']);

/** An outage makes kafkajs log every reconnect attempt: the same line is logged at most once per interval. */
const REPEAT_INTERVAL_MS = 10_000;
const MAX_TRACKED_LINES = 1000;

export function logCreator(logger: Logger, now: () => number = Date.now): NonNullable<KafkaConfig['logCreator']> {
  const lastLogged = new Map<string, { at: number; suppressed: number }>();
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _logger, ...fields } = log;
      const key = `${namespace}\u0000${message}`;
      const seen = lastLogged.get(key);
      const at = now();
      if (seen && at - seen.at < REPEAT_INTERVAL_MS) {
        seen.suppressed++;
        return;
      }
      if (lastLogged.size >= MAX_TRACKED_LINES) lastLogged.clear();
      lastLogged.set(key, { at, suppressed: 0 });
      const bound = { kafkajs: namespace, ...fields, ...(seen?.suppressed ? { repeatedSinceLastLine: seen.suppressed } : {}) };
      if (EXPECTED_WARNINGS.has(message)) logger.debug(bound, message);
      else if (level === kafkajs.logLevel.ERROR) logger.error(bound, message);
      else if (level === kafkajs.logLevel.WARN) logger.warn(bound, message);
      else if (level === kafkajs.logLevel.INFO) logger.info(bound, message);
      else logger.debug(bound, message);
    };
}

export function createKafka(options: KafkaOptions, logger: Logger = createLogger()): Kafka {
  if (options.brokers.length === 0) throw new ConfigError('kafka.brokers', 'give at least one bootstrap broker as host:port');
  const malformed = options.brokers.find((broker) => !/^\S+:\d{1,5}$/.test(broker));
  if (malformed !== undefined) throw new ConfigError('kafka.brokers', `"${malformed}" is not host:port`);
  if (options.sasl !== undefined && options.sasl.username === '') {
    throw new ConfigError('kafka.sasl.username', `SASL ${options.sasl.mechanism} needs a username`);
  }
  const log = logger.child({ component: 'kafka' });
  if (options.sasl?.mechanism === 'plain' && options.tls === undefined) {
    log.warn('SASL PLAIN without TLS sends the password in clear text; enable kafka.tls');
  }
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: [...options.brokers],
    // Below warn kafkajs narrates every connection and rebalance; our own logs say what matters.
    logLevel: kafkajs.logLevel.WARN,
    logCreator: logCreator(log),
  };
  if (options.tls !== undefined) config.ssl = tlsOptions(options.tls);
  if (options.sasl !== undefined) config.sasl = saslOptions(options.sasl);
  return new kafkajs.Kafka(config);
}

/** A topic as ensureTopics creates it. */
export interface TopicSpec {
  topic: string;
  partitions: number;
  /** Omitted: the broker's default.replication.factor. */
  replicationFactor?: number;
  /** Topic-level configs; cleanup.policy is checked on topics that already exist. */
  configs: Record<string, string>;
}

export type TopicRole = 'flows' | 'http' | 'verdicts' | 'metadata' | 'policies' | 'deadletter';

export interface TopicCatalogOptions {
  partitions?: number;
  replicationFactor?: number;
  /** Retention of the event topics (flows, http, verdicts). */
  retentionMs?: number;
  /** Retention of the dead-letter topic. */
  deadLetterRetentionMs?: number;
}

const day = 24 * 60 * 60 * 1000;

/**
 * The topics of DESIGN.md. Events expire by time; metadata and policies are compacted because replaying them must
 * rebuild current state (the latest value per key, deletions as tombstones) however old it is. Dead letters are
 * kept longer than events: someone has to look at them.
 */
export function topicSpecs(prefix = 'sidecarless.', options: TopicCatalogOptions = {}): Record<TopicRole, TopicSpec> {
  const partitions = options.partitions ?? 6;
  const base = options.replicationFactor === undefined ? { partitions } : { partitions, replicationFactor: options.replicationFactor };
  const timed = (name: string, retentionMs: number): TopicSpec => ({
    ...base,
    topic: `${prefix}${name}`,
    configs: { 'cleanup.policy': 'delete', 'retention.ms': String(retentionMs) },
  });
  const compacted = (name: string): TopicSpec => ({ ...base, topic: `${prefix}${name}`, configs: { 'cleanup.policy': 'compact' } });
  const retentionMs = options.retentionMs ?? 7 * day;
  return {
    flows: timed('flows.v1', retentionMs),
    http: timed('http.v1', retentionMs),
    verdicts: timed('verdicts.v1', retentionMs),
    metadata: compacted('metadata.v1'),
    policies: compacted('policies.v1'),
    deadletter: timed('deadletter.v1', options.deadLetterRetentionMs ?? 30 * day),
  };
}

/**
 * kafkajs speaks CreateTopics v3 at most, which cannot ask for "the broker's default" replication factor (-1 came
 * with v4), so the default is read from a broker's config.
 */
async function defaultReplicationFactor(admin: Admin): Promise<number> {
  const { brokers } = await admin.describeCluster();
  const broker = brokers[0];
  if (broker === undefined) throw new SidecarlessError('the Kafka cluster reported no brokers', { retriable: true });
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: kafkajs.ConfigResourceTypes.BROKER, name: String(broker.nodeId), configNames: ['default.replication.factor'] }],
  });
  const value = Number(resources[0]?.configEntries[0]?.configValue);
  return Number.isInteger(value) && value > 0 ? value : 1;
}

/** cleanup.policy of existing topics: a compacted topic that silently expires would lose state on replay. */
async function checkCleanupPolicies(admin: Admin, specs: readonly TopicSpec[]): Promise<void> {
  const checked = specs.filter((spec) => spec.configs['cleanup.policy'] !== undefined);
  if (checked.length === 0) return;
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: checked.map((spec) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name: spec.topic, configNames: ['cleanup.policy'] })),
  });
  for (const spec of checked) {
    const actual = resources.find((r) => r.resourceName === spec.topic)?.configEntries[0]?.configValue;
    const wanted = spec.configs['cleanup.policy'];
    if (actual !== wanted) {
      throw new SidecarlessError(
        `topic ${spec.topic} exists with cleanup.policy=${actual} but needs ${wanted}; ` +
          `alter it (kafka-configs.sh --alter --entity-type topics --entity-name ${spec.topic} --add-config cleanup.policy=${wanted})`,
        { context: { topic: spec.topic } },
      );
    }
  }
}

/**
 * Creates the topics that do not exist yet, with their configs, and checks the cleanup policy of those that do.
 * Partition counts and other configs of existing topics are left alone: an operator may have tuned them.
 * Returns the names of the topics it created.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[]): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.topic));
  await checkCleanupPolicies(admin, specs.filter((spec) => existing.has(spec.topic)));
  if (missing.length === 0) return [];
  const fallbackReplication = missing.some((spec) => spec.replicationFactor === undefined) ? await defaultReplicationFactor(admin) : 1;
  let created: boolean;
  try {
    created = await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((spec) => ({
        topic: spec.topic,
        numPartitions: spec.partitions,
        replicationFactor: spec.replicationFactor ?? fallbackReplication,
        configEntries: Object.entries(spec.configs).map(([name, value]) => ({ name, value })),
      })),
    });
  } catch (error) {
    // Another role starting at the same moment may have created them first (TOPIC_ALREADY_EXISTS): as good.
    const now = new Set(await admin.listTopics());
    if (missing.every((spec) => now.has(spec.topic))) return [];
    throw new SidecarlessError(`creating topics ${missing.map((s) => s.topic).join(', ')} failed: ${describeError(error)}`, {
      retriable: (error as { retriable?: boolean }).retriable === true,
      cause: error,
    });
  }
  // false: another process created all of them in the meantime, which is as good.
  return created ? missing.map((spec) => spec.topic) : [];
}

/** KafkaOptions from the kafka section of the configuration (config.ts names; TLS only when kafka.tls.enabled). */
export function kafkaOptionsFromConfig(kafka: Config['kafka'], role: string): KafkaOptions {
  const options: KafkaOptions = { brokers: kafka.brokers, clientId: `${kafka.clientId}-${role}` };
  if (kafka.tls.enabled) {
    const { caPath, certPath, keyPath, rejectUnauthorized } = kafka.tls;
    options.tls = { rejectUnauthorized, ...(caPath && { caPath }), ...(certPath && { certPath }), ...(keyPath && { keyPath }) };
  }
  if (kafka.sasl.mechanism !== undefined) {
    options.sasl = { mechanism: kafka.sasl.mechanism, username: kafka.sasl.username ?? '', password: kafka.sasl.password ?? '' };
  }
  return options;
}

/**
 * An idempotent producer (acks=all, one request in flight, the Java-compatible partitioner for keyed messages)
 * that connects on its first send, so a role can start while the broker is down, and disconnects only if it ever
 * connected. `retry` bounds kafkajs' own retries when the caller retries itself.
 */
export class LazyProducer {
  private producer: Producer;
  private connected = false;

  constructor(
    private readonly kafka: Kafka,
    private readonly retry?: RetryOptions,
  ) {
    this.producer = this.create();
  }

  async send(topic: string, messages: Message[]): Promise<void> {
    if (!this.connected) {
      await this.producer.connect();
      this.connected = true;
    }
    await this.producer.send({ topic, acks: -1, messages });
  }

  /**
   * Replaces the producer with a new one (a new producer id): the way out when the broker no longer accepts this
   * producer's sequence numbers. A message whose earlier attempt was written may then be written twice.
   */
  async reset(): Promise<void> {
    const old = this.producer;
    this.producer = this.create();
    if (this.connected) await old.disconnect().catch(() => {});
    this.connected = false;
  }

  async shutdown(): Promise<void> {
    if (this.connected) await this.producer.disconnect();
    this.connected = false;
  }

  private create(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
      ...(this.retry && { retry: this.retry }),
    });
  }
}
