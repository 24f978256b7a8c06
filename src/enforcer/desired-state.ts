/**
 * What one node's kernel should enforce: the live policies compiled against the cluster, and each container cgroup
 * of the node's pods mapped to its pod's identity. Pure.
 *
 * Policies that cannot be applied are left out, each with its reason (they become dead letters), and the rest is
 * enforced:
 *   - a policy whose compilation throws on its own (compiled alone against the cluster) is left out;
 *   - when the state does not fit the maps' capacities, policies are taken one at a time in the order they were
 *     published (change_time_ns, then key) and each one that would make it not fit is left out. The order is a
 *     property of the policies, not of when an enforcer saw them, so a restarted enforcer leaves out the same
 *     ones as one that never stopped.
 * What cannot be blamed on a policy (the cgroups of the node's pods alone overflow, an identity collision) throws,
 * and the caller keeps enforcing the last state it applied.
 */
import { parseCgroupPath } from '../common/cgroup-path.js';
import { describeError, SidecarlessError } from '../common/errors.js';
import type { NodeMapState } from './apply/applier.js';
import { podName, type ClusterView } from './compile/cluster.js';
import { compilePolicies, type CompiledPolicies } from './compile/compile.js';
import { portRangeBlocks, type MapState } from './compile/map-state.js';
import type { LivePolicy } from './policy-ledger.js';

/** Entries each map holds per generation (PolicyKernelOptions's capacities). */
export interface Capacities {
  maxPods: number;
  maxEndpoints: number;
  maxPrefixes: number;
  maxPolicyEntries: number;
}

export interface DesiredState {
  compiled: CompiledPolicies;
  node: NodeMapState;
  /** Cgroup id → `namespace/name` of its pod, for the cgroups in `node.cgroups`. */
  cgroupPods: ReadonlyMap<bigint, string>;
  /** Pod address (canonical text) → `namespace/name`, as `endpoints` resolves it (the later name of two wins). */
  addressPods: ReadonlyMap<string, string>;
  /** Keys of the policies enforced. */
  applied: string[];
  /** Policies left out, with why. */
  rejected: Array<{ policy: LivePolicy; reason: string }>;
}

export interface NodeCgroups {
  /** Cgroup id → path below the cgroup v2 mount: every cgroup below the roots the programs are attached to. */
  cgroups: ReadonlyMap<bigint, string>;
  /** Pod uid → `namespace/name`: the selectable pods bound to this node (ClusterViewBuilder.podsOnNode). */
  pods: ReadonlyMap<string, string>;
}

/** The first map the state overflows, as a sentence naming the capacity; undefined when it fits. */
export function capacityProblem(state: MapState, cgroups: number, capacities: Capacities): string | undefined {
  const policyBlocks = [...state.policy.values()].reduce((sum, entry) => sum + portRangeBlocks(entry.portFirst, entry.portLast).length, 0);
  const checks: Array<[what: string, count: number, limit: number, setting: string]> = [
    ['container cgroups', cgroups, capacities.maxPods, 'maxPods'],
    ['pod addresses', state.endpoints.size, capacities.maxEndpoints, 'maxEndpoints'],
    ['ipBlock prefixes', state.prefixes.size, capacities.maxPrefixes, 'maxPrefixes'],
    ['isolated (identity, direction) pairs', state.isolation.size, 2 * capacities.maxPods, 'maxPods'],
    ['policy entries (port blocks)', policyBlocks, capacities.maxPolicyEntries, 'maxPolicyEntries'],
  ];
  const over = checks.find(([, count, limit]) => count > limit);
  return over && `${over[1]} ${over[0]} exceed the maps' ${over[2]} (raise ${over[3]})`;
}

const byPublication = (a: LivePolicy, b: LivePolicy): number =>
  a.changeTimeNs !== b.changeTimeNs ? (a.changeTimeNs < b.changeTimeNs ? -1 : 1) : keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0;
const keyOf = (live: LivePolicy): string => `${live.policy.namespace}/${live.policy.name}`;

export function desiredState(policies: readonly LivePolicy[], cluster: ClusterView, local: NodeCgroups, capacities: Capacities): DesiredState {
  const rejected: DesiredState['rejected'] = [];
  const compileAll = (lives: readonly LivePolicy[]) => compilePolicies(lives.map((live) => live.policy), cluster);
  let compilable = policies;
  let compiled: CompiledPolicies;
  try {
    compiled = compileAll(policies);
  } catch {
    // Which policy: each compiled alone (only now, as it costs a compile per policy).
    compilable = policies.filter((live) => {
      try {
        compileAll([live]);
        return true;
      } catch (error) {
        rejected.push({ policy: live, reason: `does not compile: ${describeError(error)}` });
        return false;
      }
    });
    compiled = compileAll(compilable);
  }
  const cgroupPods = podCgroups(local);
  const fit = (compiled: CompiledPolicies) => capacityProblem(compiled.state, cgroupPods.size, capacities);
  let accepted: LivePolicy[] = [...compilable];
  if (fit(compiled) !== undefined) {
    accepted = [];
    for (const live of [...compilable].sort(byPublication)) {
      const attempt = compileAll([...accepted, live]);
      const problem = fit(attempt);
      if (problem === undefined) accepted.push(live);
      else rejected.push({ policy: live, reason: `does not fit the policy maps with the policies published before it: ${problem}` });
    }
    compiled = compileAll(accepted);
    const problem = fit(compiled);
    if (problem !== undefined) throw new SidecarlessError(`policy: the node's pods alone do not fit the policy maps: ${problem}`, { context: { component: 'enforcer' } });
  }
  const cgroups = new Map<bigint, bigint>();
  for (const [cgroupId, pod] of cgroupPods) {
    const identity = compiled.identities.ofPod.get(pod);
    if (identity !== undefined) cgroups.set(cgroupId, identity);
  }
  const addressPods = new Map(
    [...cluster.pods].sort((a, b) => (podName(a) < podName(b) ? -1 : 1)).flatMap((pod) => pod.ips.map((ip) => [ip, podName(pod)] as const)),
  );
  return { compiled, node: { state: compiled.state, cgroups }, cgroupPods, addressPods, applied: accepted.map(keyOf).sort(), rejected };
}

/** Every cgroup whose path names a pod of this node (its own cgroup, its containers', what they nest) → that pod. */
function podCgroups(local: NodeCgroups): Map<bigint, string> {
  const found = new Map<bigint, string>();
  for (const [cgroupId, path] of local.cgroups) {
    const { podUid } = parseCgroupPath(path);
    const pod = podUid === null ? undefined : local.pods.get(podUid);
    if (pod !== undefined) found.set(cgroupId, pod);
  }
  return found;
}
