/**
 * bench/policy-propagation: how long from a policy change until the kernel of this node enforces it, seen by a pod
 * connecting in a loop, for both ways a change is made, in the same run: `policy apply` (the publish to
 * policies.v1) and a write of the NetworkPolicy to the API server (which the metadata role's NetworkPolicy watch
 * publishes to policies.v1).
 *
 *   1. A described lab cluster on the local stack's API server (x/a serving TCP 80 and 81; y/a and z/a), and two
 *      roles as their own processes on a topic prefix of the run's own: `sidecarless metadata` (publishing the lab's
 *      pods, and watching NetworkPolicies) and `sidecarless enforcer` (pins of the run's own, attached to the lab's
 *      cgroup).
 *   2. y/a and z/a each run connect-watch against x/a:80: a connect() every millisecond (each denied one is a verdict
 *      the enforcer reports: about 1,000/s while denied), each change of outcome reported with its wall-clock time.
 *   3. 100 changes per path, the paths taking turns: y's egress policy is published the way `policy apply` publishes
 *      it (PolicyTopic.publish), z's is replaced on the API server (an unconditional update, as `kubectl replace`),
 *      each alternating two versions (to x's pods on port 80, then on 81 only). A change is timed from just before
 *      its publish or API write to its pod's next change of outcome (connected ↔ denied); the next change waits
 *      for it. Taking turns puts both paths under the same load, which the shared machine varies.
 *   4. One JSON line: per path p50, p99, min and max of the propagation and the time the write itself took (Kafka
 *      acknowledged the publish; the API server answered the update), and the load average before and after.
 *      Floor: p99 under 100 ms on each path.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadRegistry } from '../src/common/avro.js';
import { loadConfig } from '../src/common/config.js';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { PinDirectory } from '../src/ebpf/pins.js';
import { cgroup2Root } from '../src/ebpf/preflight.js';
import { PolicyTopic } from '../src/enforcer/policy-topic.js';
import { parsePolicies } from '../src/events/networkpolicy/document.js';
import { topicSpecs } from '../src/events/topics.js';
import { launch } from '../src/lab/agent-launch.js';
import type { ConnectWatchEvent, ConnectWatchParams, ConnectWatchResult } from '../src/lab/agents/protocol.js';
import { describeCluster } from '../src/lab/cluster-description.js';
import { startEnforcerProcess } from '../src/lab/enforcer-process.js';
import { KubeApi } from '../src/lab/kube/api.js';
import { labNames } from '../src/lab/names.js';
import type { Pod } from '../src/lab/pods.js';
import { startDescribedCluster } from '../src/lab/reachability.js';
import { startRoleProcess } from '../src/lab/role-process.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../src/lab/stack/kube-credentials.js';

const CHANGES = Number(process.env.BENCH_CHANGES ?? 100);
/** A change not seen by then is a failure of the run, not a slow sample. */
const CHANGE_TIMEOUT_MS = 10_000;
const FLOOR_P99_MS = 100;

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
const round2 = (ms: number): number => Math.round(ms * 100) / 100;
const nowMs = (): number => performance.timeOrigin + performance.now();

/** A pod's connect-watch loop against one target, and a wait for its next outcome. */
class OutcomeWatch {
  private readonly events: ConnectWatchEvent[] = [];
  private waiting: ((event: ConnectWatchEvent) => void) | undefined;
  private readonly agent;

  constructor(
    private readonly name: string,
    pod: Pod,
    target: Pod,
  ) {
    const params: Omit<ConnectWatchParams, 'deadlineMs'> = { host: target.ip, port: 80, intervalMs: 1 };
    this.agent = launch<ConnectWatchResult>(pod, 'connect-watch', params, 30 * 60_000, (event) => {
      this.events.push(event as unknown as ConnectWatchEvent);
      this.waiting?.(event as unknown as ConnectWatchEvent);
    });
  }

  /** Resolves with the first event of `outcome` from now on (or the last one, when that is the current outcome). */
  next(outcome: ConnectWatchEvent['outcome'], what: string): Promise<ConnectWatchEvent> {
    return new Promise<ConnectWatchEvent>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`policy-propagation: ${this.name}: ${what} not seen within ${CHANGE_TIMEOUT_MS} ms (events: ${JSON.stringify(this.events.slice(-3))})`)),
        CHANGE_TIMEOUT_MS,
      );
      const check = (event: ConnectWatchEvent) => {
        if (event.outcome === 'error') reject(new Error(`policy-propagation: ${this.name}: connect() failed otherwise than by the policy: ${event.error}`));
        if (event.outcome !== outcome) return;
        clearTimeout(timer);
        this.waiting = undefined;
        resolve(event);
      };
      const last = this.events.at(-1);
      if (last?.outcome === outcome) return check(last);
      this.waiting = check;
    });
  }

  async stop(): Promise<void> {
    this.agent.stop();
    await this.agent.result.catch(() => undefined);
  }
}

/** Times of one path's changes: until enforced, and the write itself. */
class PathTimes {
  readonly propagationMs: number[] = [];
  readonly writeMs: number[] = [];

  /** Makes one change with `write` and times it until `watch` sees `outcome`. */
  async change(watch: OutcomeWatch, outcome: ConnectWatchEvent['outcome'], what: string, write: () => Promise<unknown>): Promise<void> {
    const seen = watch.next(outcome, what);
    const before = nowMs();
    await write();
    this.writeMs.push(nowMs() - before);
    this.propagationMs.push((await seen).atMs - before);
  }

  summary(writeName: string): Record<string, unknown> {
    const sorted = [...this.propagationMs].sort((a, b) => a - b);
    const writes = [...this.writeMs].sort((a, b) => a - b);
    return {
      propagationMs: { p50: round2(quantile(sorted, 0.5)), p99: round2(quantile(sorted, 0.99)), max: round2(sorted.at(-1)!), min: round2(sorted[0]!) },
      [writeName]: { p50: round2(quantile(writes, 0.5)), p99: round2(quantile(writes, 0.99)) },
    };
  }

  p99(): number {
    return quantile([...this.propagationMs].sort((a, b) => a - b), 0.99);
  }
}

export async function run(): Promise<Record<string, unknown>> {
  const loadBefore = loadavg();
  const id = randomBytes(3).toString('hex');
  const [x, y, z] = [`px-${id}`, `py-${id}`, `pz-${id}`];
  const prefix = `bench-propagation-${id}.`;
  const pins = `/sys/fs/bpf/sidecarless-bench-propagation-${id}`;
  const logger = createLogger({ level: 'warn' });
  const description = describeCluster({ [x]: { ns: 'x' }, [y]: { ns: 'y' }, [z]: { ns: 'z' } }, [
    { namespace: x, name: 'a', ports: [80, 81] },
    { namespace: y, name: 'a' },
    { namespace: z, name: 'a' },
  ]);
  /** The egress of every pod of `namespace`: to x's pods on `port` only. */
  const egressTo = (namespace: string, port: number) =>
    parsePolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: ${namespace}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {ns: x}}}], ports: [{port: ${port}}]}]
`);
  const egressObject = (port: number) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'egress', namespace: z },
    spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'x' } } }], ports: [{ port }] }] },
  });
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
  const kube = KubeApi.connect(kubeCredentials.kubeconfigFile);
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
  ];
  try {
    const metadata = await startRoleProcess('metadata', 'metadata running', env);
    cleanups.unshift(() => metadata.stop());
    const described = await startDescribedCluster(description, { name: `propagation-${id}`, lifetimeMs: 15 * 60_000 });
    cleanups.unshift(() => described.destroy());
    const cgroup = join(cgroup2Root(), labNames.cgroupDir(described.cluster.id));
    const enforcer = await startEnforcerProcess({ ...env, SIDECARLESS_ENFORCER_CGROUPS: cgroup, SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins });
    cleanups.unshift(() => new PinDirectory(pins).remove());
    cleanups.unshift(() => enforcer.stop());
    const topic = new PolicyTopic(kafka, topicSpecs(prefix).policies.topic, loadRegistry(), logger);
    cleanups.unshift(() => topic.shutdown());

    const xa = described.pods.get(`${x}/a`)!;
    const viaApply = new OutcomeWatch('y/a (policy apply)', described.pods.get(`${y}/a`)!, xa);
    cleanups.unshift(() => viaApply.stop());
    const viaApi = new OutcomeWatch('z/a (API server)', described.pods.get(`${z}/a`)!, xa);
    cleanups.unshift(() => viaApi.stop());

    // Open before any policy; then each path's first version, so the loop starts from an enforced state.
    await Promise.all([viaApply.next('connected', 'the first connect()'), viaApi.next('connected', 'the first connect()')]);
    await topic.publish(egressTo(y, 80), 'bench');
    // Not removed with the lab (no namespace controller empties a deleted namespace): deleted here.
    cleanups.unshift(() => kube.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', namespace: z, name: 'egress' }));
    await kube.create(egressObject(80));
    const apply = new PathTimes();
    const api = new PathTimes();
    for (let change = 0; change < CHANGES; change++) {
      const deny = change % 2 === 0;
      const [outcome, port] = deny ? (['denied', 81] as const) : (['connected', 80] as const);
      const what = `change ${change + 1} (${deny ? 'deny' : 'allow'} x/a:80)`;
      await apply.change(viaApply, outcome, what, () => topic.publish(egressTo(y, port), 'bench'));
      await api.change(viaApi, outcome, what, () => kube.replace(egressObject(port)));
    }
    const meetsFloor = apply.p99() < FLOOR_P99_MS && api.p99() < FLOOR_P99_MS;
    return {
      bench: 'policy-propagation',
      changes: CHANGES,
      policyApply: apply.summary('publishAckMs'),
      apiServer: api.summary('apiWriteMs'),
      applyDelayMs: config.enforcer.applyDelayMs,
      loadAverage: { before: loadBefore.map(round2), after: loadavg().map(round2) },
      floorP99Ms: FLOOR_P99_MS,
      meets_floor: meetsFloor,
    };
  } finally {
    for (const cleanup of cleanups) await cleanup();
  }
}
