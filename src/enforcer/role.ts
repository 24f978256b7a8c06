/**
 * Wiring of the enforcer role (`sidecarless enforcer`, one per node).
 *
 * 1. Configuration and the kernel first: enforcer.cgroups must name existing cgroups, the pin directory is locked
 *    (one enforcer per node), and the pinned policy installation is adopted (PolicyKernel.open, PolicyApplier.open),
 *    so the state an earlier enforcer applied keeps being enforced while this one replays.
 * 2. The topics are created if missing; `policies.v1` and `metadata.v1` are followed from their beginning
 *    (TopicFollower) into the Enforcer (enforcer.ts). Once both are read to their end offsets of the start, the
 *    desired state is applied, the programs are attached to enforcer.cgroups (a no-op when the pins already are)
 *    and installations of other layouts are retired. From then on each change is applied as it comes.
 * 3. The cgroups below enforcer.cgroups are walked when one is made or removed (an inotify watch,
 *    src/ebpf/cgroup-watch.ts) and every enforcer.cgroupScanMs, for containers that appeared or went;
 *    the verdict ring is read every enforcer.verdictIntervalMs into `verdicts.v1` (verdict-publisher.ts).
 * 4. Stop: the follower stops, a running apply finishes, the producers disconnect, the fds are released: the pins
 *    keep enforcing the last state.
 *
 * Which cgroup is which pod: the enforcer walks the cgroups itself and reads the pod uid from their names
 * (src/common/cgroup-path.ts, the parser the collector uses too), rather than reading the collector's Cgroup events
 * on metadata.v1: enforcement must not depend on the telemetry role running, nor wait for its scan and a round trip
 * through Kafka when a pod starts, and the collector publishes only cgroups below collector.cgroups, which need not
 * be the roots the policy programs are attached to.
 *
 * Verdicts go from the kernel to Kafka through the enforcer, not the collector (as DESIGN.md first drew it): naming
 * the policy that decided needs the compiled state (which rules gave an entry, which policies isolate a subject),
 * which only the enforcer holds. Publishing that mapping for the collector to join would be a second copy of the
 * state on a topic, joined by generation number, which is reused every other apply.
 */
import { loadRegistry } from '../common/avro.js';
import { ConfigError, KernelError } from '../common/errors.js';
import type { Config } from '../common/config.js';
import { DeadLetterProducer } from '../common/kafka/dead-letter.js';
import { KeyedKafkaSink } from '../common/kafka/sink.js';
import { createKafka, kafkaOptionsFromConfig } from '../common/kafka/client.js';
import { ensureTopics } from '../common/kafka/topics.js';
import type { Logger } from '../common/logger.js';
import type { RoleContext, RunningRole } from '../common/role.js';
import { CgroupTreeWatch } from '../ebpf/cgroup-watch.js';
import { PinDirectory } from '../ebpf/pins.js';
import { bindDeadLetterCodec, deadLetterEnvelope } from '../events/deadletter.js';
import { bindMetadataCodec } from '../events/metadata.js';
import { bindPoliciesCodec } from '../events/policies.js';
import { topicSpecs } from '../events/topics.js';
import { bindVerdictsCodec } from '../events/verdicts.js';
import { PolicyApplier } from './apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel, type PolicyKernelOptions } from './apply/kernel.js';
import { cgroupWalker } from './apply/node-cgroups.js';
import { VerdictReader } from './apply/verdict-reader.js';
import { Enforcer } from './enforcer.js';
import { previousLetters } from './previous-letters.js';
import { TopicFollower } from './topic-follower.js';
import { VerdictPublisher } from './verdict-publisher.js';

export interface RunningEnforcer extends RunningRole {
  enforcer: Enforcer;
  kernel: PolicyKernel;
  applier: PolicyApplier;
  follower: TopicFollower;
}

/** enforcer.pinDirectory, or one per node below /sys/fs/bpf/sidecarless-enforcer (bpffs refuses dots in names). */
export function enforcerPinDirectory(config: Pick<Config, 'enforcer' | 'node'>): PinDirectory {
  return new PinDirectory(config.enforcer.pinDirectory ?? `/sys/fs/bpf/sidecarless-enforcer/${config.node.name.replaceAll('.', '_')}`);
}

export async function startEnforcer({ config, logger, telemetry }: RoleContext): Promise<RunningEnforcer> {
  const log = logger.child({ role: 'enforcer' });
  if (config.enforcer.cgroups.length === 0) {
    throw new ConfigError('enforcer.cgroups', 'required: the cgroup(s) holding the node\'s pods (kubepods.slice with the kubelet\'s systemd driver, kubepods with cgroupfs)');
  }
  const walk = cgroupWalker(config.enforcer.cgroups);
  // A cgroup made or removed below enforcer.cgroups calls for a walk at once (src/ebpf/cgroup-watch.ts); the
  // periodic one (enforcer.cgroupScanMs) is the safety net. The Enforcer, made below, walks through scanCgroups.
  let walker: Enforcer | undefined;
  const watch = new CgroupTreeWatch(() => walker?.rescan(), 'enforcer.cgroupScanMs', log.child({ component: 'cgroup-watch' }));
  const scanCgroups = () => {
    const found = walk();
    watch.follow(found.values());
    return found;
  };
  const pins = enforcerPinDirectory(config);
  const unlock = pins.lock();
  if (!unlock) throw new KernelError(`${pins.path} is in use: another enforcer runs on this node; stop it first, or give this one its own enforcer.pinDirectory`, { context: { component: 'pins' } });
  const options: PolicyKernelOptions = { ...DEFAULT_POLICY_KERNEL_OPTIONS, allowSampleEvery: config.enforcer.allowSampleEvery };
  let kernel: PolicyKernel | undefined;
  try {
    kernel = PolicyKernel.open(pins, options);
    const applier = PolicyApplier.open(kernel.maps);
    const registry = loadRegistry();
    const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'enforcer'), logger);
    const topics = topicSpecs(config.kafka.topicPrefix, { partitions: config.kafka.partitions });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [topics.policies, topics.metadata, topics.deadletter, topics.verdicts], log);
    } finally {
      await admin.disconnect();
    }
    const writer = `enforcer/${config.node.name}`;
    const deadLetters = new DeadLetterProducer(kafka, topics.deadletter.topic, deadLetterEnvelope(registry, writer));
    const letteredBefore = await previousLetters(kafka, topics.deadletter.topic, writer, topics.policies.topic, bindDeadLetterCodec(registry), log);
    const enforcer = new Enforcer({
      node: config.node.name,
      policiesTopic: topics.policies.topic,
      metadataTopic: topics.metadata.topic,
      policiesCodec: bindPoliciesCodec(registry),
      metadataCodec: bindMetadataCodec(registry),
      applier,
      scanCgroups,
      deadLetters,
      letteredBefore,
      capacities: options,
      logger: log,
      meter: telemetry.meter('sidecarless.enforcer'),
      applyDelayMs: config.enforcer.applyDelayMs,
    });
    // rescan() does nothing before the replay is done; the replay's first apply walks the cgroups anyway.
    walker = enforcer;
    const verdicts = new VerdictPublisher({
      node: config.node.name,
      source: new VerdictReader(kernel.installation),
      state: () => enforcer.current,
      codec: bindVerdictsCodec(registry),
      sink: new KeyedKafkaSink(kafka, topics.verdicts.topic),
      logger: log,
      meter: telemetry.meter('sidecarless.enforcer'),
      intervalMs: config.enforcer.verdictIntervalMs,
      maxQueued: config.enforcer.verdictQueueEvents,
    });
    const follower = new TopicFollower(kafka, [topics.policies.topic, topics.metadata.topic], (message) => enforcer.take(message), { groupPrefix: `${config.kafka.clientId}-enforcer`, logger: log });
    const started = Date.now();
    await follower.start();
    const failed = follower.failed;
    const replay = await Promise.race([follower.caughtUp.then(() => 'caught up' as const), failed.then((error) => ({ error }))]);
    if (replay !== 'caught up') {
      await follower.stop();
      throw replay.error;
    }
    await enforcer.replayed();
    kernel.attach(config.enforcer.cgroups);
    const adopted = publishRetiredVerdicts(kernel, verdicts, log);
    const retired = kernel.retireOtherLayouts();
    log.info({ ms: Date.now() - started, retired, adoptedVerdicts: adopted, stats: enforcer.stats }, 'topics replayed, state applied, programs attached');

    verdicts.start();
    const scans = setInterval(() => enforcer.rescan(), config.enforcer.cgroupScanMs);
    telemetry.meter('sidecarless.enforcer').createObservableGauge('sidecarless.enforcer.lag', { description: 'Messages of policies.v1 and metadata.v1 not read yet', unit: '{message}' }).addCallback((result) => result.observe(follower.lag(), { 'k8s.node.name': config.node.name }));
    telemetry.addHealthCheck('policy_state', () => ({
      ok: enforcer.current !== undefined && verdicts.queued < config.enforcer.verdictQueueEvents,
      detail: `generation ${enforcer.stats.generation}, ${enforcer.current?.applied.length ?? 0} policies, ${enforcer.stats.applyFailures} failed applies, lag ${follower.lag()}, ${verdicts.queued} verdicts queued`,
    }));
    log.info({ cgroups: config.enforcer.cgroups, pins: pins.path, topics: [topics.policies.topic, topics.metadata.topic] }, 'enforcer running');
    const installed = kernel;
    return {
      enforcer,
      kernel: installed,
      applier,
      follower,
      failed,
      async stop() {
        clearInterval(scans);
        watch.close();
        await follower.stop();
        await enforcer.stop();
        await verdicts.stop();
        await deadLetters.shutdown();
        installed.close();
        unlock();
        log.info({ stats: enforcer.stats, verdicts: verdicts.stats }, 'enforcer final counts');
      },
    };
  } catch (error) {
    watch.close();
    kernel?.close();
    unlock();
    throw error;
  }
}

/**
 * An upgrade that changed the policy layout: the old layout's ring holds what it decided while no enforcer ran. Each
 * is read to its end into the publisher (once this installation reports, PolicyKernel.takeOverVerdicts); returns
 * how many verdicts that was.
 */
function publishRetiredVerdicts(kernel: PolicyKernel, verdicts: VerdictPublisher, log: Logger): number {
  let adopted = 0;
  for (const old of kernel.takeOverVerdicts()) {
    try {
      // An installation cut off while it was made may lack its ring or counters: there is nothing to read then.
      if (old.findMap('verdict_ring') === undefined || old.findMap('drops') === undefined) {
        log.warn({ layout: old.layout }, 'a policy layout being retired lacks its verdict ring or drop counters: nothing of it to publish');
        continue;
      }
      const reader = new VerdictReader(old);
      try {
        adopted += verdicts.adoptRing(reader);
      } finally {
        reader.close();
      }
    } finally {
      old.close();
    }
  }
  return adopted;
}
