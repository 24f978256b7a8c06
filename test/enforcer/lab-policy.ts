/**
 * Test support for enforcing policies on lab pods: the ClusterView of a described lab cluster (what the enforcer
 * builds from metadata.v1), the node state compiled for it, and reachability matrices as outcome letters.
 */
import { join } from 'node:path';
import type { PolicyKernel } from '../../src/enforcer/apply/kernel.js';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import type { PinDirectory } from '../../src/ebpf/pins.js';
import { cgroup2Root } from '../../src/ebpf/preflight.js';
import { labNames } from '../../src/lab/names.js';
import { destroyAll } from '../../src/lab/pods.js';
import { compilePolicies, type CompiledPolicies } from '../../src/enforcer/compile/compile.js';
import type { NodeMapState } from '../../src/enforcer/apply/applier.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import type { ClusterDescription } from '../../src/lab/cluster-description.js';
import { podKey, type DescribedCluster, type ReachabilityMatrix } from '../../src/lab/reachability.js';

/** Namespaces with their labels; each pod with its labels, named ports and lab address. */
export function clusterView(description: ClusterDescription, described: DescribedCluster): ClusterView {
  return {
    namespaces: new Map(description.namespaces.map((ns) => [ns.name, ns.labels])),
    pods: description.pods.map((pod) => ({
      namespace: pod.namespace,
      name: pod.name,
      labels: pod.labels,
      namedPorts: pod.ports.flatMap((port) => (port.name ? [{ name: port.name, protocol: port.protocol, port: port.port }] : [])),
      ips: [described.pods.get(podKey(pod))!.ip],
    })),
  };
}

/** The policies (YAML) compiled for the cluster, and the node state for its pods: each pod's cgroup → identity. */
export function compileForLab(policiesYaml: string, view: ClusterView, described: DescribedCluster): { compiled: CompiledPolicies; node: NodeMapState } {
  const compiled = compilePolicies(policiesYaml.trim() === '' ? [] : parsePolicies(policiesYaml), view);
  const cgroups = new Map([...described.pods].map(([key, pod]) => [pod.cgroup.id, compiled.identities.ofPod.get(key)!]));
  return { compiled, node: { state: compiled.state, cgroups } };
}

/** One letter per probe: . connected (the very pod answered), D denied (EPERM), T timeout, R refused, E error. */
const LETTERS = { connected: '.', denied: 'D', timeout: 'T', refused: 'R', error: 'E' } as const;

/** A row per client, "from LETTERS" in the matrix's order, e.g. `x/a TT..`. */
export function outcomeRows(matrix: ReachabilityMatrix): string[] {
  return matrix.pods.map((from) => {
    const letters = matrix.pods.map((to) => {
      const answer = matrix.answers[from]![to]!;
      return answer.outcome === 'connected' && answer.answeredBy !== to ? '?' : LETTERS[answer.outcome];
    });
    return `${from} ${letters.join('')}`;
  });
}

/** The lab's cgroup, the one cgroup the policy programs attach to: every pod's cgroup is below it. */
export const labCgroupOf = (described: DescribedCluster): string => join(cgroup2Root(), labNames.cgroupDir(described.cluster.id));

/** Removes the policy programs and their pins, then the lab (each part only if it was made). */
export async function removePolicyLab(kernel: PolicyKernel | undefined, pins: PinDirectory, described: DescribedCluster | undefined): Promise<void> {
  kernel?.remove();
  pins.remove();
  await described?.destroy();
  destroyAll();
}
