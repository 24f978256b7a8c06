/**
 * A described cluster (cluster-description.ts) brought up as a lab, every pod serving its declared ports, and the
 * reachability matrix between its pods as the Kubernetes network-policy e2e suite draws it: every pod connects to
 * every pod (itself included) on one port with a real connect() (or datagram) from inside its own network
 * namespace, through whatever the kernel enforces.
 */
import { defaultLifetimeMs, launch, type Agent } from './agent-launch.js';
import type { LabProtocol, PortServerParams, PortServerStats, ProbeAnswer, ProbeParams, ProbeResult } from './agents/protocol.js';
import { createClusterLab, type ClusterLab } from './cluster.js';
import type { ClusterDescription, DescribedPod } from './cluster-description.js';
import type { Pod } from './pods.js';

export interface DescribedCluster {
  readonly cluster: ClusterLab;
  /** "namespace/name" → the lab pod, in the description's order. */
  readonly pods: ReadonlyMap<string, Pod>;
  /** Stops the port servers and removes the lab with its objects. */
  destroy(): Promise<void>;
}

export const podKey = (pod: { namespace: string; name: string }) => `${pod.namespace}/${pod.name}`;
/** Lab pod names are unique per lab, Kubernetes names per namespace: the lab name joins both. */
const labPodName = (pod: DescribedPod) => `${pod.namespace}-${pod.name}`.slice(0, 32);

export interface DescribedClusterOptions {
  name: string;
  kubeconfig?: string;
  lifetimeMs?: number;
  /** The pod's address slot (lab subnet.host(index)); default the lowest free one. For scenarios with ipBlocks. */
  indexOf?: (pod: DescribedPod) => number;
}

/** Creates the namespaces and pods (bare pods bound to this node, Running) and serves each pod's ports. */
export async function startDescribedCluster(description: ClusterDescription, options: DescribedClusterOptions): Promise<DescribedCluster> {
  const names = new Set(description.pods.map(labPodName));
  if (names.size !== description.pods.length) throw new RangeError(`lab ${options.name}: two pods map to one lab name; shorten the namespace or pod names`);
  const cluster = await createClusterLab({
    name: options.name,
    ...(options.kubeconfig ? { kubeconfig: options.kubeconfig } : {}),
    namespaces: description.namespaces,
    pods: description.pods.map((pod) => ({
      name: labPodName(pod),
      objectName: pod.name,
      namespace: pod.namespace,
      labels: pod.labels,
      ...(options.indexOf ? { index: options.indexOf(pod) } : {}),
      ports: pod.ports.map(({ port, protocol, name }) => ({ containerPort: port, protocol, ...(name ? { name } : {}) })),
    })),
  });
  const servers: Array<Agent<PortServerStats>> = [];
  try {
    const pods = new Map(description.pods.map((pod) => [podKey(pod), cluster.pod(labPodName(pod))] as const));
    for (const pod of description.pods) {
      if (pod.ports.length === 0) continue;
      const lab = pods.get(podKey(pod))!;
      const params: Omit<PortServerParams, 'deadlineMs'> = { host: lab.ip, ports: pod.ports.map(({ port, protocol }) => ({ port, protocol })), answer: podKey(pod) };
      const server = launch<PortServerStats>(lab, 'port-server', params, options.lifetimeMs ?? defaultLifetimeMs);
      servers.push(server);
      await server.ready;
    }
    return {
      cluster,
      pods,
      destroy: async () => {
        for (const server of servers) server.stop();
        await Promise.allSettled(servers.map((server) => server.result));
        cluster.destroy();
      },
    };
  } catch (error) {
    for (const server of servers) server.stop();
    cluster.destroy();
    throw error;
  }
}

export interface ReachabilityMatrix {
  port: number;
  protocol: LabProtocol;
  /** Pod keys, the rows' and the columns' order. */
  pods: string[];
  /** from → to → what the probe saw. */
  answers: Record<string, Record<string, ProbeAnswer>>;
}

/** Reached: the very pod probed answered (not merely something at that address). */
export const reached = (matrix: ReachabilityMatrix, from: string, to: string): boolean => {
  const answer = matrix.answers[from]?.[to];
  return answer?.outcome === 'connected' && answer.answeredBy === to;
};

/** Every pod probes every pod on the port, all pods at once; each probe waits at most timeoutMs. */
export async function probeMatrix(described: DescribedCluster, target: { port: number; protocol: LabProtocol }, timeoutMs = 1_000): Promise<ReachabilityMatrix> {
  const keys = [...described.pods.keys()];
  const targets = keys.map((key) => ({ host: described.pods.get(key)!.ip, port: target.port, protocol: target.protocol }));
  const rows = await Promise.all(
    keys.map(async (from) => {
      const params: Omit<ProbeParams, 'deadlineMs'> = { targets, timeoutMs };
      const { answers } = await launch<ProbeResult>(described.pods.get(from)!, 'probe', params, timeoutMs + 10_000).result;
      return [from, Object.fromEntries(keys.map((to, i) => [to, answers[i]!]))] as const;
    }),
  );
  return { ...target, pods: keys, answers: Object.fromEntries(rows) };
}

/** The matrix as the e2e suite prints it: a row per client, a column per server, '.' reached, 'X' not. */
export function formatMatrix(matrix: ReachabilityMatrix): string {
  const width = Math.max(...matrix.pods.map((pod) => pod.length));
  const header = `${matrix.protocol}/${matrix.port}`.padEnd(width) + ' ' + matrix.pods.map((_, i) => String(i % 10)).join(' ');
  const rows = matrix.pods.map((from) => from.padEnd(width) + ' ' + matrix.pods.map((to) => (reached(matrix, from, to) ? '.' : 'X')).join(' '));
  const legend = matrix.pods.map((pod, i) => `${i % 10}=${pod}`).join(' ');
  return [header, ...rows, legend].join('\n');
}
