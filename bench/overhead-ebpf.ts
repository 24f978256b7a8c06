/**
 * bench/overhead's ebpf mode: what sidecarless runs on a node, each role as its own process in a cgroup of its
 * own (role-process.ts), on a topic prefix, pin directories and consumer group of the run's own:
 *   - the collector, tracing the lab's cgroup (both pods) with L4 flows and HTTP capture on (http.enabled);
 *   - the enforcer, attached to the lab's cgroup, with a policy set loaded that isolates both pods and allows the
 *     bench's traffic (the server's ingress from the client's namespace, the client's egress to the server's, on
 *     the bench's port): every connection is judged by the rules, none passes for want of a policy (assertJudged
 *     checks that a connect() to another port is denied by the enforcer before the load starts);
 *   - the enricher, joining the events with the pods' metadata into ClickHouse (enricherStore says where).
 * The metadata role (publishing the lab's pods from the API server, which the enforcer and the enricher need) runs
 * too, as a process: it is one per cluster, not per node, and is not measured.
 *
 * Its BPF programs' run time (the collector's and the enforcer's pinned programs) is read from the kernel's run-time
 * statistics, which the bench keeps on for every mode.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRegistry } from '../src/common/avro.js';
import { createClickHouse } from '../src/common/clickhouse/client.js';
import type { Config } from '../src/common/config.js';
import { createKafka } from '../src/common/kafka/client.js';
import type { Logger } from '../src/common/logger.js';
import type { CollectorStats } from '../src/collector/collector.js';
import { PinDirectory } from '../src/ebpf/pins.js';
import { programStatsOfPins, type ProgramStats } from '../src/ebpf/stats.js';
import { PolicyTopic } from '../src/enforcer/policy-topic.js';
import { parsePolicies } from '../src/events/networkpolicy/document.js';
import { topicSpecs } from '../src/events/topics.js';
import { launch } from '../src/lab/agent-launch.js';
import type { ProbeParams, ProbeResult } from '../src/lab/agents/protocol.js';
import { startCollectorProcess, uninstallCollectorPins } from '../src/lab/collector-process.js';
import { startEnforcerProcess } from '../src/lab/enforcer-process.js';
import { kernelLossesOfPins } from '../src/lab/kernel-losses.js';
import type { Pod } from '../src/lab/pods.js';
import { startRoleProcess } from '../src/lab/role-process.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { kubeCredentials } from '../src/lab/stack/kube-credentials.js';
import { waitFor } from '../src/lab/stack/processes.js';
import type { Component } from './overhead-measure.js';
import type { Undo } from './undo.js';

export interface EbpfStackOptions {
  /** Two pods of one lab, API objects in two namespaces; the policy allows client → server:port only. */
  pods: { client: Pod; server: Pod };
  port: number;
  /** The run's id: its topic prefix, pin directories and consumer group are named after it. */
  id: string;
  /** The configured ClickHouse: the enricher's tables go to a database of the run's own there (dropped at the end). */
  clickhouse: Config['clickhouse'];
  logger: Logger;
  /** Each started part is undone through it: at the mode's end, and by an interrupted run. */
  undo: Undo;
}

export interface EbpfStack {
  /** Collector, enforcer and enricher, each by its cgroup. */
  readonly components: Component[];
  /** The in-kernel run time of the collector's and the enforcer's programs so far, ns, by program name. */
  bpfRunNs(): Map<string, bigint>;
  /** What the collector's and the enforcer's programs lost so far (kernelLossesOfPins). */
  lostSoFar(): bigint;
  /** The collector's counts of HTTP events, taken at its orderly stop. */
  stop(): Promise<CollectorStats>;
}

/** Run time by program name (a name pinned twice, as during an upgrade, sums both). */
function runNsByProgram(programs: ProgramStats[]): Map<string, bigint> {
  const byName = new Map<string, bigint>();
  for (const program of programs) byName.set(program.name, (byName.get(program.name) ?? 0n) + program.runTimeNs);
  return byName;
}

/** The policy set: both pods isolated, the bench's traffic allowed by one rule per direction. */
function policies(options: EbpfStackOptions) {
  const [client, server] = [options.pods.client.kubernetes!.namespace, options.pods.server.kubernetes!.namespace];
  return parsePolicies(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-ingress, namespace: ${server}}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{from: [{namespaceSelector: {matchLabels: {"kubernetes.io/metadata.name": ${client}}}}], ports: [{port: ${options.port}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: ${client}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {"kubernetes.io/metadata.name": ${server}}}}], ports: [{port: ${options.port}}]}]
`);
}

/**
 * Where the enricher writes: with a ClickHouse server configured, a database of the run's own on it; else the
 * embedded engine in a directory of the run's own (the configured one may be open in this process). The embedded
 * engine's insert work then runs in the enricher's process and is counted as its CPU: against sidecarless.
 */
function enricherStore(options: EbpfStackOptions): Record<string, string> {
  const database = `bench_overhead_${options.id}`;
  if (options.clickhouse.url === undefined) {
    const path = mkdtempSync(join(tmpdir(), 'sidecarless-bench-overhead-chdb-'));
    options.undo.push('the enricher\'s embedded engine', () => rmSync(path, { recursive: true, force: true }));
    return { SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: path, SIDECARLESS_CLICKHOUSE_DATABASE: database };
  }
  options.undo.push('the enricher\'s database', async () => {
    const client = await createClickHouse({ ...options.clickhouse, database: undefined });
    await client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await client.close();
  });
  return { SIDECARLESS_CLICKHOUSE_DATABASE: database };
}

/**
 * The policy set judges the pods' connections: the client's connect() to a port no rule allows is refused by the
 * enforcer's program (EPERM: the lab's probe says `denied`), not by the server. Else the ebpf mode would measure an
 * enforcer that decides nothing.
 */
async function assertJudged(options: EbpfStackOptions): Promise<void> {
  const target = { host: options.pods.server.ip, port: options.port + 1, protocol: 'TCP' as const };
  const params: Omit<ProbeParams, 'deadlineMs'> = { targets: [target], timeoutMs: 2_000 };
  const [answer] = (await launch<ProbeResult>(options.pods.client, 'probe', params, 15_000).result).answers;
  if (answer?.outcome !== 'denied') throw new Error(`the enforcer does not judge the client's connections: a connect() to ${target.host}:${target.port} came to ${JSON.stringify(answer)}, not denied`);
}

/** Starts the roles; each started part is pushed to options.undo, so a failure half way leaves nothing once unwound. */
export async function startEbpfStack(options: EbpfStackOptions): Promise<EbpfStack> {
  const prefix = `bench-overhead-${options.id}.`;
  const pins = { collector: `/sys/fs/bpf/sidecarless-bench-overhead-c-${options.id}`, enforcer: `/sys/fs/bpf/sidecarless-bench-overhead-e-${options.id}` };
  const env = {
    SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','),
    SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix,
    SIDECARLESS_KAFKA_PARTITIONS: '3',
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    SIDECARLESS_METADATA_KUBECONFIG: kubeCredentials.kubeconfigFile,
    SIDECARLESS_METADATA_CLUSTER: `bench-overhead-${options.id}`,
    // The policy set is published below; the NetworkPolicies of whoever else uses the API server are not the bench's.
    SIDECARLESS_METADATA_NETWORK_POLICIES: 'false',
  };
  const labCgroup = options.pods.client.lab.cgroupPath;
  const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-bench-overhead' }, options.logger);
  const { undo } = options;
  undo.push('the run\'s topics', async () => {
    const admin = kafka.admin();
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    await admin.deleteTopics({ topics: Object.values(topicSpecs(prefix)).map((spec) => spec.topic).filter((topic) => existing.has(topic)) });
    await admin.disconnect();
  });
  const metadata = await startRoleProcess('metadata', 'metadata running', env);
  undo.push('the metadata role', () => metadata.kill());
  // Its pins may be made before it fails to start: their removal is due from the start.
  undo.push('the enforcer\'s pins', () => new PinDirectory(pins.enforcer).remove());
  const enforcer = await startEnforcerProcess({ ...env, SIDECARLESS_ENFORCER_CGROUPS: labCgroup, SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins.enforcer });
  undo.push('the enforcer', () => enforcer.kill());
  const topic = new PolicyTopic(kafka, topicSpecs(prefix).policies.topic, loadRegistry(), options.logger);
  try {
    await topic.publish(policies(options), 'bench-overhead');
  } finally {
    await topic.shutdown();
  }
  await waitFor(async () => enforcer.logs.some((entry) => entry.msg === 'policy state applied' && entry.policies === 2), {
    timeoutMs: 30_000,
    what: 'the enforcer applying the policy set',
  });
  await assertJudged(options);
  const store = enricherStore(options);
  const enricher = await startRoleProcess('enricher', 'enricher running', { ...env, ...store, SIDECARLESS_ENRICHER_GROUP_ID: `bench-overhead-${options.id}` });
  undo.push('the enricher', () => enricher.kill());
  const collectorEnv = { ...env, SIDECARLESS_HTTP_ENABLED: 'true', SIDECARLESS_COLLECTOR_PIN_DIRECTORY: pins.collector };
  undo.push('the collector\'s pins', () => uninstallCollectorPins(collectorEnv));
  const collector = await startCollectorProcess(collectorEnv, () => [labCgroup]);
  undo.push('the collector', () => collector.kill());
  return {
    components: [
      { name: 'collector', cgroup: collector.cgroup },
      { name: 'enforcer', cgroup: enforcer.cgroup },
      { name: 'enricher', cgroup: enricher.cgroup },
    ],
    bpfRunNs: () => runNsByProgram([...programStatsOfPins(pins.collector).values(), ...programStatsOfPins(pins.enforcer).values()]),
    lostSoFar: () => kernelLossesOfPins(pins.collector) + kernelLossesOfPins(pins.enforcer),
    async stop() {
      const http = await collector.stop('http');
      await Promise.all([enricher.stop(), enforcer.stop()]);
      return http;
    },
  };
}
