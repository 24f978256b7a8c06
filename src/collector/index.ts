/**
 * Wiring of the collector role: per record kind (src/collector/kinds.ts), its kernel source, the Avro codec of its
 * contract and a Collector pipeline producing to its topic; and the identities of the traced cgroups on the
 * metadata topic (src/collector/identity/), which every pipeline's sends wait for. Kafka is checked after the
 * kernel: a node without the capabilities fails on that first, whatever the state of Kafka. The kernel side lives
 * on in the node's pin directory after the collector stops; `uninstallCollector` (`sidecarless collector
 * --uninstall`) removes it.
 */
import type { Meter } from '@opentelemetry/api';
import type { Kafka } from 'kafkajs';
import { loadRegistry, type Registry } from '../common/avro.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { KafkaSink, KeyedKafkaSink } from '../common/kafka/sink.js';
import { whileRetriable } from '../common/kafka/retriable.js';
import { ensureTopics } from '../common/kafka/topics.js';
import type { RoleContext, RunningRole } from '../common/role.js';
import type { Config } from '../common/config.js';
import type { Logger } from '../common/logger.js';
import { KernelError } from '../common/errors.js';
import { Cgroup, cgroupOfProcess } from '../ebpf/cgroup.js';
import { CgroupTreeWatch } from '../ebpf/cgroup-watch.js';
import { BootClock } from '../ebpf/clock.js';
import { PinDirectory } from '../ebpf/pins.js';
import { bindMetadataCodec } from '../events/metadata.js';
import { topicSpecs } from '../events/topics.js';
import { fixMallocThresholds, TrimAfterSends } from './allocator.js';
import { Collector, type CollectorStats } from './collector.js';
import { CpuPolicy } from './cpu-policy.js';
import { ConnectionEnds } from './connection-ends.js';
import { CgroupIdentities } from './identity/cgroup-identities.js';
import { scanTracedCgroups } from './identity/cgroup-scanner.js';
import { previousIdentities } from './identity/previous.js';
import { RECORD_KINDS } from './kinds.js';
import type { KernelSource, RecordKind } from './record-kind.js';

export interface RunningCollector extends RunningRole {
  /** Per record kind, its pipeline. */
  collectors: ReadonlyMap<string, Collector<unknown>>;
}

export async function startCollector({ config, logger, telemetry }: RoleContext, allKinds: ReadonlyArray<RecordKind<unknown, unknown, unknown>> = RECORD_KINDS): Promise<RunningCollector> {
  fixMallocThresholds();
  const kinds = allKinds.filter((kind) => kind.enabled?.(config) ?? true);
  const registry = loadRegistry();
  const pins = pinDirectory(config);
  const firstStart = !pins.exists();
  const unlock = lockPins(pins, 'another collector runs on it: stop that one first, or give this one its own collector.pinDirectory');
  const sources: KernelSource[] = [];
  const clock = new BootClock();
  const resync = setInterval(() => clock.resync(), 60_000);
  const collectors = new Map<string, Collector<unknown>>();
  // Reads the rings of `sources` as they are loaded below.
  const cpuPolicy = new CpuPolicy(config.collector.cpuPolicy, sources, logger.child({ role: 'collector', component: 'cpu-policy' }));
  // Assigned in the try below, which throws if it cannot be.
  let identities!: CgroupIdentities;
  const topicOf = (kind: RecordKind<unknown, unknown, unknown>) => `${config.kafka.topicPrefix}${kind.contract.topic}`;
  const meter = telemetry.meter('sidecarless.collector');
  try {
    for (const kind of kinds) sources.push(kind.load(config, pins));
    const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'collector'), logger);
    const topics = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
    const partitions = await partitionCounts(kafka, logger, [topics.metadata, ...Object.values(topics).filter((spec) => kinds.some((kind) => spec.topic === topicOf(kind)))]);
    identities = cgroupIdentities(config, kafka, registry, logger.child({ role: 'collector', component: 'cgroup-identities' }), meter);
    const connectionEnds = new ConnectionEnds();
    kinds.forEach((kind, i) => {
      const source = sources[i]!;
      const context = { nodeName: config.node.name, epoch: source.epoch, firstConnId: source.firstConnId, toWallNs: (ns: bigint) => clock.toWallNs(ns), connectionEnds };
      const collector = new Collector(
        {
          kind: kind.name,
          source,
          transform: (emit) => kind.transform(context, emit, config),
          packing: kind.packing(context, registry, partitions.get(topicOf(kind))!),
          sink: new TrimAfterSends(new KafkaSink(kafka, topicOf(kind), config.node.name)),
          prerequisites: identities.prerequisites((item) => kind.cgroupId(item)),
          beforeDrain: () => cpuPolicy.check(),
          logger: logger.child({ role: 'collector', record_kind: kind.name }),
          meter,
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
  identities.start();
  for (const collector of collectors.values()) collector.start();
  cpuPolicy.start();
  logger.info({ kinds: kinds.map((kind) => kind.name), topics: kinds.map(topicOf), cgroups: config.collector.cgroups, kernel }, 'collector running');
  return {
    collectors,
    failed: Promise.race([identities.failed, ...[...collectors.values()].map((collector) => collector.failed)]),
    async stop() {
      clearInterval(resync);
      await cpuPolicy.stop();
      // The collectors' last sends wait for identities: the publisher stops after them.
      await Promise.all([...collectors.values()].map((collector) => collector.stop()));
      await identities.stop();
      for (const source of sources) source.close();
      unlock();
      const stats: Record<string, CollectorStats> = Object.fromEntries([...collectors].map(([name, collector]) => [name, collector.stats]));
      logger.info({ stats, cgroupIdentities: identities.stats, cpuPolicy: cpuPolicy.stats }, 'collector final counts');
    },
  };
}

/** The identities of the cgroups below collector.cgroups (the collector's own left out), on the metadata topic. */
function cgroupIdentities(config: Config, kafka: Kafka, registry: Registry, logger: Logger, meter: Meter): CgroupIdentities {
  // loadFlowProbe has checked that these exist, naming collector.cgroups if not.
  const traced = config.collector.cgroups.map((path) => Cgroup.at(path));
  const own = cgroupOfProcess().id;
  const topic = topicSpecs(config.kafka.topicPrefix).metadata.topic;
  const codec = bindMetadataCodec(registry);
  const watch = new CgroupTreeWatch(() => identities.changed(), 'collector.cgroupScanMs', logger.child({ role: 'collector', component: 'cgroup-watch' }));
  const identities: CgroupIdentities = new CgroupIdentities(
    {
      node: config.node.name,
      scan: () => {
        const found = scanTracedCgroups(traced, own);
        watch.follow(found.values());
        return found;
      },
      close: () => watch.close(),
      previous: () => previousIdentities(kafka, topic, config.node.name, codec, logger),
      sink: new KeyedKafkaSink(kafka, topic),
      encode: (event) => codec.encode(event),
      logger,
      meter,
    },
    { scanMs: config.collector.cgroupScanMs },
  );
  return identities;
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

/** How long the topics' metadata is asked for while the cluster answers with retriable errors. */
const TOPIC_METADATA_TIMEOUT_MS = 30_000;

/** Creates the topics if needed and returns each one's partition count (events are partitioned by the collector). */
async function partitionCounts(kafka: ReturnType<typeof createKafka>, logger: Logger, specs: Parameters<typeof ensureTopics>[1]): Promise<Map<string, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, specs, logger.child({ role: 'collector' }));
    // Retriable errors here too: the topics may have been created a moment ago, their leaders not serving yet.
    const metadata = await whileRetriable(() => admin.fetchTopicMetadata({ topics: specs.map((spec) => spec.topic) }), TOPIC_METADATA_TIMEOUT_MS);
    return new Map(metadata.topics.map((topic) => [topic.name, topic.partitions.length]));
  } finally {
    await admin.disconnect();
  }
}
