/**
 * bench/policy-propagation: how long from `policy apply` (the publish to policies.v1) until the kernel of this node
 * enforces the change, seen by a pod connecting in a loop.
 *
 *   1. A described lab cluster on the local stack's API server (x/a serving TCP 80 and 81, y/a), the metadata role
 *      in this process (publishing the lab's pods), and `sidecarless enforcer` as its own process on a topic prefix
 *      and pin directory of the run's own, attached to the lab's cgroup.
 *   2. y/a runs connect-watch against x/a:80: a connect() every millisecond (each denied one is a verdict the
 *      enforcer reports: about 1,000/s while denied), each change of outcome reported with its wall-clock time.
 *   3. 100 changes, alternating two versions of one policy (y/a's egress to x/a:80, then to x/a:81 only): each is
 *      published the way `policy apply` publishes (PolicyTopic.publish), timed from just before the publish to
 *      the watch's next change of outcome (connected ↔ denied). The next change waits for that one.
 *   4. One JSON line: p50, p99 and max of the propagation, and the share of it the publish itself took (until
 *      Kafka acknowledged). Floor: p99 under 100 ms.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { loadRegistry } from '../src/common/avro.js';
import { loadConfig } from '../src/common/config.js';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { startTelemetry } from '../src/common/telemetry.js';
import { PinDirectory } from '../src/ebpf/pins.js';
import { cgroup2Root } from '../src/ebpf/preflight.js';
import { PolicyTopic } from '../src/enforcer/policy-topic.js';
import { parsePolicies } from '../src/events/networkpolicy/document.js';
import { topicSpecs } from '../src/events/topics.js';
import { launch } from '../src/lab/agent-launch.js';
import type { ConnectWatchEvent, ConnectWatchParams, ConnectWatchResult } from '../src/lab/agents/protocol.js';
import { describeCluster } from '../src/lab/cluster-description.js';
import { startEnforcerProcess } from '../src/lab/enforcer-process.js';
import { labNames } from '../src/lab/names.js';
import { startDescribedCluster } from '../src/lab/reachability.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../src/lab/stack/kube-credentials.js';
import { startMetadata } from '../src/metadata/role.js';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
/** A change not seen by then is a failure of the run, not a slow sample. */
const CHANGE_TIMEOUT_MS = 10_000;

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const round2 = (ms: number): number => Math.round(ms * 100) / 100;

export async function run(): Promise<Record<string, unknown>> {
  const id = randomBytes(3).toString('hex');
  const [x, y] = [`px-${id}`, `py-${id}`];
  const prefix = `bench-propagation-${id}.`;
  const pins = `/sys/fs/bpf/sidecarless-bench-propagation-${id}`;
  const logger = createLogger({ level: 'warn' });
  const description = describeCluster({ [x]: { ns: 'x' }, [y]: { ns: 'y' } }, [
    { namespace: x, name: 'a', ports: [80, 81] },
    { namespace: y, name: 'a' },
  ]);
  const egressTo = (port: number) =>
    parsePolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: ${y}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: ${port}}]}]
`);
  const env = {
    SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
    SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix,
    SIDECARLESS_KAFKA_PARTITIONS: '3',
    SIDECARLESS_METADATA_KUBECONFIG: kubeCredentials.kubeconfigFile,
    SIDECARLESS_METADATA_CLUSTER: `bench-${id}`,
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
  };
  const config = loadConfig({ argv: [], env });
  const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-bench' }, logger);
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  const cleanups: Array<() => unknown> = [
    async () => {
      // The run's topics (created by the roles on first use).
      const admin = kafka.admin();
      await admin.connect();
      const topics = Object.values(topicSpecs(prefix)).map((spec) => spec.topic);
      const existing = new Set(await admin.listTopics());
      await admin.deleteTopics({ topics: topics.filter((name) => existing.has(name)) }).catch(() => undefined);
      await admin.disconnect();
    },
    () => telemetry.shutdown(),
  ];
  try {
    const metadata = await startMetadata({ config, logger, telemetry });
    cleanups.unshift(() => metadata.stop());
    const described = await startDescribedCluster(description, { name: `propagation-${id}`, lifetimeMs: 15 * 60_000 });
    cleanups.unshift(() => described.destroy());
    const cgroup = join(cgroup2Root(), labNames.cgroupDir(described.cluster.id));
    const enforcer = await startEnforcerProcess({ ...env, SIDECARLESS_ENFORCER_CGROUPS: cgroup, SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins});
    cleanups.unshift(() => new PinDirectory(pins).remove());
    cleanups.unshift(() => enforcer.stop());
    const topic = new PolicyTopic(kafka, topicSpecs(prefix).policies.topic, loadRegistry(), logger);
    cleanups.unshift(() => topic.shutdown());

    let waiting: ((event: ConnectWatchEvent) => void) | undefined;
    const events: ConnectWatchEvent[] = [];
    const xa = described.pods.get(`${x}/a`)!;
    const params: Omit<ConnectWatchParams, 'deadlineMs'> = { host: xa.ip, port: 80, intervalMs: 1 };
    const watch = launch<ConnectWatchResult>(described.pods.get(`${y}/a`)!, 'connect-watch', params, 30 * 60_000, (event) => {
      events.push(event as unknown as ConnectWatchEvent);
      waiting?.(event as unknown as ConnectWatchEvent);
    });
    cleanups.unshift(async () => {
      watch.stop();
      await watch.result.catch(() => undefined);
    });
    const next = (outcome: ConnectWatchEvent['outcome'], what: string) =>
      new Promise<ConnectWatchEvent>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`policy-propagation: ${what} not seen within ${CHANGE_TIMEOUT_MS} ms (events: ${JSON.stringify(events.slice(-3))})`)), CHANGE_TIMEOUT_MS);
        const check = (event: ConnectWatchEvent) => {
          if (event.outcome === 'error') reject(new Error(`policy-propagation: connect() failed otherwise than by the policy: ${event.error}`));
          if (event.outcome !== outcome) return;
          clearTimeout(timer);
          waiting = undefined;
          resolve(event);
        };
        const last = events.at(-1);
        if (last?.outcome === outcome) return check(last);
        waiting = check;
      });

    // Open before any policy; then the first version, so the loop starts from an enforced state.
    await next('connected', 'the first connect()');
    await topic.publish(egressTo(80), 'bench');
    const propagationMs: number[] = [];
    const publishMs: number[] = [];
    for (let change = 0; change < CHANGES; change++) {
      const deny = change % 2 === 0;
      const seen = next(deny ? 'denied' : 'connected', `change ${change + 1} (${deny ? 'deny' : 'allow'} x/a:80)`);
      const before = performance.timeOrigin + performance.now();
      await topic.publish(egressTo(deny ? 81 : 80), 'bench');
      publishMs.push(performance.timeOrigin + performance.now() - before);
      propagationMs.push((await seen).atMs - before);
    }
    const sorted = [...propagationMs].sort((a, b) => a - b);
    const publishes = [...publishMs].sort((a, b) => a - b);
    const p99 = quantile(sorted, 0.99);
    return {
      bench: 'policy-propagation',
      changes: CHANGES,
      propagationMs: { p50: round2(quantile(sorted, 0.5)), p99: round2(p99), max: round2(sorted.at(-1)!), min: round2(sorted[0]!) },
      publishAckMs: { p50: round2(quantile(publishes, 0.5)), p99: round2(quantile(publishes, 0.99)) },
      applyDelayMs: config.enforcer.applyDelayMs,
      floorP99Ms: 100,
      meets_floor: p99 < 100,
    };
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}
