/**
 * Wiring of the collector role: per record kind (src/collector/kinds.ts), its kernel source, the Avro codec of its
 * contract and a Collector pipeline producing to its topic. Kafka is checked after the kernel: a node without the
 * capabilities fails on that first, whatever the state of Kafka. The kernel side lives on in the node's pin
 * directory after the collector stops; `uninstallCollector` (`sidecarless collector --uninstall`) removes it.
 */
import { loadRegistry } from '../common/avro.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { KafkaSink } from '../common/kafka/sink.js';
import { ensureTopics } from '../common/kafka/topics.js';
import type { RoleContext, RunningRole } from '../common/role.js';
import type { Config } from '../common/config.js';
import { KernelError } from '../common/errors.js';
import { BootClock } from '../ebpf/clock.js';
import { PinDirectory } from '../ebpf/pins.js';
import { bindCodec } from '../events/contract.js';
import { topicSpecs } from '../events/topics.js';
import { fixMallocThresholds } from './allocator.js';
import { Collector, type CollectorStats } from './collector.js';
import { RECORD_KINDS } from './kinds.js';
import type { KernelSource, RecordKind } from './record-kind.js';

export interface RunningCollector extends RunningRole {
  /** Per record kind, its pipeline. */
  collectors: ReadonlyMap<string, Collector<unknown>>;
}

export async function startCollector({ config, logger, telemetry }: RoleContext, kinds: ReadonlyArray<RecordKind<unknown, unknown>> = RECORD_KINDS): Promise<RunningCollector> {
  fixMallocThresholds();
  const registry = loadRegistry();
  const pins = pinDirectory(config);
  const firstStart = !pins.exists();
  const unlock = lockPins(pins, 'another collector runs on it: stop that one first, or give this one its own collector.pinDirectory');
  const sources: KernelSource[] = [];
  const clock = new BootClock();
  const resync = setInterval(() => clock.resync(), 60_000);
  const collectors = new Map<string, Collector<unknown>>();
  const topicOf = (kind: RecordKind<unknown, unknown>) => `${config.kafka.topicPrefix}${kind.contract.topic}`;
  try {
    for (const kind of kinds) sources.push(kind.load(config.collector, pins));
    const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'collector'), logger);
    const topics = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
    const partitions = await partitionCounts(kafka, [...Object.values(topics)].filter((spec) => kinds.some((kind) => spec.topic === topicOf(kind))));
    kinds.forEach((kind, i) => {
      const context = { nodeName: config.node.name, epoch: sources[i]!.epoch, toWallNs: (ns: bigint) => clock.toWallNs(ns) };
      const codec = bindCodec(registry, kind.contract);
      const collector = new Collector(
        {
          kind: kind.name,
          source: sources[i]!,
          toEvent: (view, offset, size) => kind.toEvent(view, offset, size, context),
          partitionKey: (event) => kind.contract.partitionKey(event),
          partitions: partitions.get(topicOf(kind))!,
          messageBuilder: () => codec.builder(),
          sink: new KafkaSink(kafka, topicOf(kind), config.node.name),
          logger: logger.child({ role: 'collector', record_kind: kind.name }),
          meter: telemetry.meter('sidecarless.collector'),
        },
        config.collector,
      );
      collectors.set(kind.name, collector);
    });
  } catch (error) {
    clearInterval(resync);
    for (const source of sources) source.close();
    unlock();
    // Nothing of an earlier collector is there: a failed first start leaves the node as it found it.
    if (firstStart) pins.remove();
    throw error;
  }
  const queued = () => [...collectors.values()].reduce((sum, collector) => sum + collector.queuedEvents, 0);
  telemetry.addHealthCheck('kafka_queue', () => ({ ok: queued() < config.collector.queueEvents, detail: `${queued()} events queued` }));
  const kernel = Object.fromEntries(kinds.map((kind, i) => [kind.name, sources[i]!.status]));
  for (const collector of collectors.values()) collector.start();
  logger.info({ kinds: kinds.map((kind) => kind.name), topics: kinds.map(topicOf), cgroups: config.collector.cgroups, kernel }, 'collector running');
  return {
    collectors,
    failed: Promise.race([...collectors.values()].map((collector) => collector.failed)),
    async stop() {
      clearInterval(resync);
      await Promise.all([...collectors.values()].map((collector) => collector.stop()));
      for (const source of sources) source.close();
      unlock();
      const stats: Record<string, CollectorStats> = Object.fromEntries([...collectors].map(([name, collector]) => [name, collector.stats]));
      logger.info({ stats }, 'collector final counts');
    },
  };
}

/**
 * collector.pinDirectory, or one per node below /sys/fs/bpf/sidecarless. bpffs refuses names with a dot, which node
 * names often have (ip-10-0-0-1.ec2.internal): dots become underscores, which node names never hold.
 */
export function pinDirectory(config: Pick<Config, 'collector' | 'node'>): PinDirectory {
  return new PinDirectory(config.collector.pinDirectory ?? `/sys/fs/bpf/sidecarless/${config.node.name.replaceAll('.', '_')}`);
}

/**
 * Removes every pin of this node's collector, which detaches its programs (a collector still running then reads
 * nothing more). Returns the directory removed, or undefined when nothing was installed there.
 */
export function uninstallCollector(config: Config): string | undefined {
  const pins = pinDirectory(config);
  if (!pins.exists()) return undefined;
  const unlock = lockPins(pins, 'a collector runs on it: stop the collector first');
  pins.remove();
  unlock();
  return pins.path;
}

/**
 * One collector per pin directory: two would read one ring, each taking records from the other. A second one stops
 * at start (the first may still be shutting down during a rollout: the pod is restarted); the kernel drops the lock
 * of a process that dies.
 */
function lockPins(pins: PinDirectory, whenHeld: string): () => void {
  const unlock = pins.lock();
  if (!unlock) throw new KernelError(`${pins.path} is in use, ${whenHeld}`, { context: { component: 'pins' } });
  return unlock;
}

/** Creates the topics if needed and returns each one's partition count (events are partitioned by the collector). */
async function partitionCounts(kafka: ReturnType<typeof createKafka>, specs: Parameters<typeof ensureTopics>[1]): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, specs);
    const metadata = await admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.topic) });
    return new Map(metadata.topics.map((topic) => [topic.name, topic.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}
