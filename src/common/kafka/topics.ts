/**
 * Creates topics idempotently and checks the configs of those that exist: the cleanup policy (a mismatch is an
 * error) and the minimums a spec declares (a lower value is a warning). Which topics there are, and their
 * retention, is a contract between roles: src/events/topics.ts.
 */
// Default import: kafkajs is CommonJS and Node cannot see ConfigResourceTypes as a named export of it.
import kafkajs, { type Admin } from 'kafkajs';
import { SidecarlessError, describeError } from '../errors.js';
import { createLogger, type Logger } from '../logger.js';
import { whileRetriable } from './retriable.js';

/** A topic as ensureTopics creates it. */
export interface TopicSpec {
  topic: string;
  partitions: number;
  /** Omitted: the broker's default.replication.factor. */
  replicationFactor?: number;
  /** Topic-level configs; cleanup.policy is checked on topics that already exist. */
  configs: Record<string, string>;
  /**
   * Numeric configs an existing topic should have at least (a compacted topic's history: min.compaction.lag.ms,
   * delete.retention.ms); a lower value is logged as a warning naming the command that raises it.
   */
  minimums?: Record<string, number>;
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

/**
 * The configs of existing topics. cleanup.policy: a compacted topic that silently expires would lose state on
 * replay, and a timed one that compacts would lose events: an error. Minimums: a lower value shortens only the
 * history a replay of old events can be joined with, while the topic still serves every role live, and topics
 * created before a minimum was declared (every existing deployment's) have the broker's defaults: a warning, so an
 * upgrade does not stop every role until an operator alters the topic.
 */
async function checkExisting(admin: Admin, specs: readonly TopicSpec[], logger: Logger): Promise<void> {
  const checked = specs.filter((spec) => spec.configs['cleanup.policy'] !== undefined || spec.minimums !== undefined);
  if (checked.length === 0) return;
  const configNames = (spec: TopicSpec) => [...(spec.configs['cleanup.policy'] === undefined ? [] : ['cleanup.policy']), ...Object.keys(spec.minimums ?? {})];
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: checked.map((spec) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name: spec.topic, configNames: configNames(spec) })),
  });
  for (const spec of checked) {
    const entries = resources.find((r) => r.resourceName === spec.topic)?.configEntries ?? [];
    const value = (name: string) => entries.find((entry) => entry.configName === name)?.configValue;
    for (const [name, minimum] of Object.entries(spec.minimums ?? {})) {
      const actual = Number(value(name));
      if (actual >= minimum) continue;
      logger.warn(
        { topic: spec.topic, config: name, actual: value(name), minimum },
        `topic ${spec.topic} has ${name}=${value(name)}, below ${minimum}: a replay of events older than that may be joined with metadata compacted away since; ` +
          `raise it (kafka-configs.sh --alter --entity-type topics --entity-name ${spec.topic} --add-config ${name}=${minimum})`,
      );
    }
    if (spec.configs['cleanup.policy'] === undefined) continue;
    const actual = value('cleanup.policy');
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

let fallbackLogger: Logger | undefined;

/** How long ensureTopics keeps asking a cluster that answers with retriable errors (a broker still starting). */
const READY_TIMEOUT_MS = 60_000;

/**
 * Creates the topics that do not exist yet, with their configs, and checks the configs of those that do
 * (checkExisting; warnings go to `logger`, by default one of this module's). Partition counts and other configs
 * of existing topics are left alone: an operator may have tuned them. Returns the names of the topics it created.
 * A retriable error (a broker that has just started and does not host the topics' partitions yet) is logged once
 * and the whole check asked again, for up to a minute (retriable.ts).
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[], logger?: Logger): Promise<string[]> {
  const log = logger ?? (fallbackLogger ??= createLogger({ name: 'topics' }));
  let warned = false;
  return whileRetriable(
    () => ensureTopicsOnce(admin, specs, log),
    READY_TIMEOUT_MS,
    (error) => {
      if (warned) return;
      warned = true;
      log.warn(
        { topics: specs.map((spec) => spec.topic), error: describeError(error) },
        `Kafka answered a retriable error about topics ${specs.map((spec) => spec.topic).join(', ')} (${describeError(error)}): a broker still starting, or one that cannot be reached (check kafka.brokers); asking again for up to ${READY_TIMEOUT_MS / 1000} s`,
      );
    },
  );
}

async function ensureTopicsOnce(admin: Admin, specs: readonly TopicSpec[], logger: Logger): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const missing = specs.filter((spec) => !existing.has(spec.topic));
  await checkExisting(admin, specs.filter((spec) => existing.has(spec.topic)), logger);
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

