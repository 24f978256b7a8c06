/**
 * The netpol e2e suite's truth tables on the real kernel: the steps of the pure suite (netpol-steps.ts: namespaces x,
 * y, z with pods a, b, c serving TCP 80 and 81 and UDP 80; cumulative applies, updates, deletes and relabels)
 * compiled by the pure compiler, applied to bpf/policy.bpf.c's maps, and after each step every pod probing every pod
 * on each port with a real connect() (or datagram) from inside its own network namespace and cgroup. Each 9×9
 * matrix must equal the one the independent oracle (netpol-oracle.ts) gives, and the one `explain` reads from the
 * same compiled state; the maps read back must hold that state.
 *
 * The pods sit where the suite's ipBlocks can name them: namespace n's pods at .8(n+1)+p of the lab's /24, so each
 * namespace is alone in an aligned /29 (x: .8/29, y: .16/29, z: .24/29).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PolicyApplier } from '../../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel } from '../../src/enforcer/apply/kernel.js';
import type { NetworkPolicy } from '../../src/events/networkpolicy/types.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { parseClusterDescription } from '../../src/lab/cluster-description.js';
import { formatMatrix, probeMatrix, reached, startDescribedCluster, type DescribedCluster } from '../../src/lab/reachability.js';
import { localHost, kubeApiServerPort } from '../../src/lab/stack/endpoints.js';
import { requireStackService } from '../helpers/stack.js';
import { labCgroupOf, removePolicyLab } from './lab-policy.js';
import { oracleSides, type OraclePod } from './netpol-oracle.js';
import { explainedMatrix, freshCluster, matrix, NAMESPACES, PODS, PROBES, STEPS, takeStep, type SuiteNetwork } from './netpol-steps.js';

const id = randomBytes(3).toString('hex');
/** Lab namespaces are unique per run; the compiled world keeps the suite's names (x, y, z). */
const labNamespace = (ns: string) => `${ns}-${id}`;
/** Address slot of pod p of namespace n: subnet.host(index) is .(index + 2). */
const slot = (n: number, p: number) => 8 * (n + 1) + p - 2;

const description = parseClusterDescription(
  [
    ...NAMESPACES.map((ns) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${labNamespace(ns)}, labels: {ns: ${ns}}}\n`),
    ...NAMESPACES.flatMap((ns) =>
      PODS.map(
        (name) => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${labNamespace(ns)}, labels: {pod: ${name}}}
spec:
  containers:
  - name: c
    ports: [{containerPort: 80, name: serve-80-tcp}, {containerPort: 81, name: serve-81-tcp}, {containerPort: 80, protocol: UDP, name: serve-80-udp}]
`,
      ),
    ),
  ].join('---\n'),
  'truth-table.yaml',
);

describe('NetworkPolicy truth tables in the kernel (x, y, z × a, b, c, real connect()s)', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-truth-${process.pid}-${id}`);
  let described: DescribedCluster;
  let kernel: PolicyKernel;
  let applier: PolicyApplier;

  before(async () => {
    await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
    described = await startDescribedCluster(description, {
      name: `truth-${id}`,
      lifetimeMs: 15 * 60_000,
      indexOf: (pod) => slot(NAMESPACES.indexOf(pod.namespace.slice(0, -id.length - 1)), PODS.indexOf(pod.name)),
    });
    kernel = PolicyKernel.open(pins, DEFAULT_POLICY_KERNEL_OPTIONS);
    applier = PolicyApplier.open(kernel.maps);
    kernel.attach([labCgroupOf(described)]);
  });

  after(() => removePolicyLab(kernel, pins, described));

  it('every step: each port’s 9×9 matrix of real connections equals the oracle’s and explain’s', async () => {
    const subnet = described.cluster.lab.subnet;
    const base = subnet.cidr.slice(0, subnet.cidr.lastIndexOf('.'));
    const network: SuiteNetwork = {
      all: subnet.cidr,
      namespaces: Object.fromEntries(NAMESPACES.map((ns, n) => [ns, `${base}.${8 * (n + 1)}/29`])),
      ip: (n, p) => subnet.host(slot(n, p)),
    };
    const cluster = freshCluster(network);
    const labKey = (pod: OraclePod) => `${labNamespace(pod.namespace)}/${pod.name}`;
    for (const pod of cluster.pods) assert.equal(described.pods.get(labKey(pod))!.ip, pod.ip, `${labKey(pod)} sits where the suite's ipBlocks expect`);
    const policies = new Map<string, NetworkPolicy>();
    const distinct = new Set<string>();
    for (const step of STEPS) {
      const compiled = takeStep(step, policies, network, cluster);
      const node = { state: compiled.state, cgroups: new Map(cluster.pods.map((pod) => [described.pods.get(labKey(pod))!.cgroup.id, compiled.identities.ofPod.get(`${pod.namespace}/${pod.name}`)!])) };
      applier.apply(node);
      assert.deepEqual(applier.readBack(0), node, `step "${step.name}": the kernel's maps hold the compiled state`);
      const matrices = await Promise.all(PROBES.map((probe) => probeMatrix(described, probe)));
      PROBES.forEach(({ port, protocol }, i) => {
        const probe = `${port}/${protocol}`;
        const kernelMatrix = matrix((from, to) => reached(matrices[i]!, labKey(from), labKey(to)), cluster);
        const oracle = matrix((from, to) => {
          const sides = oracleSides(from, to, port, protocol, [...policies.values()], cluster);
          return sides.egress && sides.ingress;
        }, cluster);
        assert.equal(kernelMatrix, oracle, `step "${step.name}", ${probe}: kernel (left) vs oracle (right)\n${formatMatrix(matrices[i]!)}`);
        assert.equal(explainedMatrix(compiled, cluster, port, protocol), oracle, `step "${step.name}", ${probe}: explain vs oracle`);
        distinct.add(kernelMatrix);
      });
    }
    assert.ok(distinct.size >= 15, `the steps exercise the tables: ${distinct.size} distinct matrices`);
  });
});
