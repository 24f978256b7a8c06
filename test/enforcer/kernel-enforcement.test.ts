/**
 * NetworkPolicy enforced by the real kernel (bpf/policy.bpf.c through src/enforcer/apply/): a described lab cluster
 * (namespaces x, y with pods a, b serving TCP 80 and 81 and UDP 53) on a real API server, policies compiled by the
 * pure compiler, applied to the maps, and every pod probing every pod with a real connect() or datagram from inside
 * its own network namespace and cgroup. Each step asserts the exact outcome matrix (denied at connect, dropped at
 * ingress, connected), that `explain` over the same compiled state agrees cell by cell, that the maps read back
 * equal the compiled state, and the verdict records the kernel wrote.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PolicyApplier, type NodeMapState } from '../../src/enforcer/apply/applier.js';
import { PolicyKernel, DEFAULT_POLICY_KERNEL_OPTIONS } from '../../src/enforcer/apply/kernel.js';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import type { CompiledPolicies } from '../../src/enforcer/compile/compile.js';
import { explain } from '../../src/enforcer/compile/explain.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { PolicyDirection } from '../../src/ebpf/records/policy-keys.js';
import { decodeVerdictRecord, PolicyHook, Verdict, type VerdictRecord } from '../../src/ebpf/records/verdict.js';
import { openRingReader, type RingReader } from '../../src/ebpf/ringbuf.js';
import { describeCluster } from '../../src/lab/cluster-description.js';
import { formatMatrix, probeMatrix, startDescribedCluster, type DescribedCluster } from '../../src/lab/reachability.js';
import { localHost, kubeApiServerPort } from '../../src/lab/stack/endpoints.js';
import { requireStackService } from '../helpers/stack.js';
import { clusterView, compileForLab, labCgroupOf, outcomeRows, removePolicyLab } from './lab-policy.js';

const id = randomBytes(3).toString('hex');
const x = `x-${id}`;
const y = `y-${id}`;

const PORTS = [
  { port: 80, protocol: 'TCP', name: 'http' },
  { port: 81, protocol: 'TCP' },
  { port: 53, protocol: 'UDP', name: 'dns' },
] as const;
const description = describeCluster(
  { [x]: { ns: 'x' }, [y]: { ns: 'y' } },
  [x, y].flatMap((namespace) => ['a', 'b'].map((name) => ({ namespace, name, ports: PORTS }))),
);

const PROBES = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 53, protocol: 'UDP' },
] as const;

/** "TCP/80" → rows "x/a TT.." with the namespaces' short names. */
type Matrices = Record<string, string[]>;

describe('NetworkPolicy in the kernel: lab pods, real connect()s', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-policy-${process.pid}-${id}`);
  let described: DescribedCluster;
  let view: ClusterView;
  let kernel: PolicyKernel;
  let applier: PolicyApplier;
  let verdicts: RingReader;
  let labCgroup: string;

  before(async () => {
    await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
    described = await startDescribedCluster(description, { name: `policy-${id}`, lifetimeMs: 15 * 60_000 });
    view = clusterView(description, described);
    kernel = PolicyKernel.open(pins, DEFAULT_POLICY_KERNEL_OPTIONS);
    applier = PolicyApplier.open(kernel.maps);
    verdicts = openRingReader(kernel.installation, 'verdict_ring');
    labCgroup = labCgroupOf(described);
    kernel.attach([labCgroup]);
  });

  after(() => removePolicyLab(kernel, pins, described));

  const short = (text: string) => text.replaceAll(x, 'x').replaceAll(y, 'y');
  const ip = (key: string) => described.pods.get(key)!.ip;
  const identity = (compiled: CompiledPolicies, key: string) => compiled.identities.ofPod.get(key)!;

  function drainVerdicts(): VerdictRecord[] {
    const records: VerdictRecord[] = [];
    verdicts.drain((data, offset, size) => records.push(decodeVerdictRecord(data, offset, size)));
    return records;
  }

  /** Compiles and applies the policies; the maps read back must be exactly the compiled state. */
  function enforce(policies: string): { compiled: CompiledPolicies; node: NodeMapState } {
    const result = compileForLab(policies, view, described);
    applier.apply(result.node);
    assert.deepEqual(applier.readBack(0), result.node, 'generation 0 holds the compiled state');
    assert.deepEqual(applier.readBack(1), result.node, 'generation 1 holds the compiled state');
    return result;
  }

  /** Probes every port; each matrix must be `expected`, and explain must agree with every cell. */
  async function assertMatrices(compiled: CompiledPolicies, expected: Matrices): Promise<void> {
    const actual: Matrices = {};
    const printed: string[] = [];
    const disagreements: string[] = [];
    for (const probe of PROBES) {
      const matrix = await probeMatrix(described, probe);
      actual[`${probe.protocol}/${probe.port}`] = outcomeRows(matrix).map(short);
      printed.push(short(formatMatrix(matrix)));
      for (const from of matrix.pods) {
        for (const to of matrix.pods) {
          const allowed = explain(compiled, { identity: identity(compiled, from), ip: ip(from) }, { identity: identity(compiled, to), ip: ip(to) }, probe.port, probe.protocol).allowed;
          const connected = matrix.answers[from]![to]!.outcome === 'connected';
          if (allowed !== connected) disagreements.push(`${short(from)} → ${short(to)} ${probe.protocol}/${probe.port}: explain ${allowed ? 'allows' : 'denies'}, the kernel ${connected ? 'connected' : matrix.answers[from]![to]!.outcome}`);
        }
      }
    }
    assert.deepEqual(actual, expected, printed.join('\n'));
    assert.deepEqual(disagreements, []);
  }

  const OPEN = ['x/a ....', 'x/b ....', 'y/a ....', 'y/b ....'];

  it('no policy: every pod reaches every pod on every port', async () => {
    const { compiled } = enforce('');
    await assertMatrices(compiled, { 'TCP/80': OPEN, 'TCP/81': OPEN, 'UDP/53': OPEN });
    assert.deepEqual(drainVerdicts(), [], 'no decision is reported while no pod is isolated');
  });

  const denyIngressX = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: ${x}}
spec: {podSelector: {}, policyTypes: [Ingress]}
`;
  const ISOLATED_X = ['x/a TT..', 'x/b TT..', 'y/a TT..', 'y/b TT..'];

  it('default-deny ingress in x: every SYN and datagram into x is dropped, each drop reported with its 5-tuple', async () => {
    const { compiled } = enforce(denyIngressX);
    drainVerdicts();
    await assertMatrices(compiled, { 'TCP/80': ISOLATED_X, 'TCP/81': ISOLATED_X, 'UDP/53': ISOLATED_X });
    const records = drainVerdicts();
    // One probe per (client, server in x, port): TCP SYNs are retransmitted within the 1 s timeout (each one
    // judged and reported again), so the distinct decisions are counted.
    const decisions = new Set(records.map((r) => `${r.srcAddress} → ${r.dstAddress}:${r.dstPort}/${r.protocol} ${r.verdict} ${r.direction} ${r.hook}`));
    const expected = new Set(
      [...described.pods.keys()].flatMap((from) =>
        [`${x}/a`, `${x}/b`].flatMap((to) =>
          PROBES.map((p) => `${ip(from)} → ${ip(to)}:${p.port}/${p.protocol === 'TCP' ? 6 : 17} ${Verdict.deny} ${PolicyDirection.ingress} ${PolicyHook.ingress}`),
        ),
      ),
    );
    assert.deepEqual(decisions, expected);
    const denial = records.find((r) => r.dstAddress === ip(`${x}/a`) && r.srcAddress === ip(`${y}/b`) && r.dstPort === 80)!;
    assert.equal(denial.subject, identity(compiled, `${x}/a`));
    assert.equal(denial.peer, identity(compiled, `${y}/b`));
    assert.equal(denial.peerPrefix, 0n);
    assert.equal(denial.cgroupId, described.pods.get(`${x}/a`)!.cgroup.id);
    assert.ok(denial.srcPort >= 1024, `the client's ephemeral port, got ${denial.srcPort}`);
  });

  const allowYToA80 = `${denyIngressX}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-to-a, namespace: ${x}}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{port: http}]
`;

  it('allow from namespace y to x/a on port 80 only (a named port)', async () => {
    const { compiled } = enforce(allowYToA80);
    await assertMatrices(compiled, {
      'TCP/80': ['x/a TT..', 'x/b TT..', 'y/a .T..', 'y/b .T..'],
      'TCP/81': ISOLATED_X,
      'UDP/53': ISOLATED_X,
    });
  });

  const egressExcept = () => `${allowYToA80}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-egress, namespace: ${y}}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: ${described.cluster.lab.subnet.cidr}, except: [${ip(`${x}/a`)}/32]}}]
`;

  it('egress deny with an ipBlock except: y/b cannot connect() to x/a (EPERM), each refusal reported', async () => {
    const { compiled } = enforce(egressExcept());
    drainVerdicts();
    await assertMatrices(compiled, {
      'TCP/80': ['x/a TT..', 'x/b TT..', 'y/a .T..', 'y/b DT..'],
      'TCP/81': ['x/a TT..', 'x/b TT..', 'y/a TT..', 'y/b DT..'],
      // x/a's datagrams reach y/b (y/b is not isolated for ingress) and y/b's answers pass as replies, though
      // x/a's address is in the except: NetworkPolicy allows the answers of an allowed exchange.
      'UDP/53': ['x/a TT..', 'x/b TT..', 'y/a TT..', 'y/b DT..'],
    });
    const refusals = drainVerdicts().filter((r) => r.hook !== PolicyHook.ingress);
    const cidrOfA = [...compiled.identities.cidrs.values()].find((cidr) => cidr.text === `${ip(`${x}/a`)}/32`)!.id;
    // The UDP probe's socket is bound (node's dgram binds before connect()); a TCP socket is not yet.
    const udpPort = refusals.find((r) => r.protocol === 17)?.srcPort ?? 0;
    assert.ok(udpPort >= 1024, `the UDP socket's own port, got ${udpPort}`);
    assert.deepEqual(
      refusals.map((r) => ({ ...r, monotonicNs: 0n })).sort((a, b) => a.dstPort - b.dstPort),
      [53, 80, 81].map((port) => ({
        monotonicNs: 0n,
        cgroupId: described.pods.get(`${y}/b`)!.cgroup.id,
        subject: identity(compiled, `${y}/b`),
        peer: identity(compiled, `${x}/a`),
        peerPrefix: cidrOfA,
        srcAddress: '0.0.0.0', // bound to no address: the kernel picks the source after connect()
        dstAddress: ip(`${x}/a`),
        srcPort: port === 53 ? udpPort : 0,
        dstPort: port,
        protocol: port === 53 ? 17 : 6,
        verdict: Verdict.deny,
        direction: PolicyDirection.egress,
        hook: PolicyHook.connect,
        generation: refusals[0]!.generation,
      })),
    );
  });

  it('UDP: a rule for UDP 53 lets datagrams into x/b and nothing else', async () => {
    const { compiled } = enforce(`${egressExcept()}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: dns-to-b, namespace: ${x}}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress: [{ports: [{protocol: UDP, port: dns}]}]
`);
    await assertMatrices(compiled, {
      'TCP/80': ['x/a TT..', 'x/b TT..', 'y/a .T..', 'y/b DT..'],
      'TCP/81': ['x/a TT..', 'x/b TT..', 'y/a TT..', 'y/b DT..'],
      'UDP/53': ['x/a T...', 'x/b T...', 'y/a T...', 'y/b D...'],
    });
  });

  it('audit mode: nothing is denied, each would-be denial is reported with both identities and the port', async () => {
    const { compiled } = enforce(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: audit-deny-y
  namespace: ${y}
  annotations: {policy.sidecarless.dev/audit: "true"}
spec:
  podSelector: {}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 81}]}]
`);
    drainVerdicts();
    await assertMatrices(compiled, { 'TCP/80': OPEN, 'TCP/81': OPEN, 'UDP/53': OPEN });
    const records = drainVerdicts();
    // Into y on 80 and 53: no rule allows, audit-deny. On 81 from y: an audit rule allows (allows are not sampled).
    const keyOf = (address: string) => [...described.pods.keys()].find((key) => ip(key) === address)!;
    const cells = new Set(records.map((r) => `${r.verdict} ${r.srcAddress}:${r.protocol} → ${r.dstAddress}:${r.dstPort} ${r.subject === identity(compiled, keyOf(r.dstAddress))} ${r.peer}`));
    const expected = new Set(
      [...described.pods.keys()].flatMap((from) =>
        [`${y}/a`, `${y}/b`].flatMap((to) =>
          [
            { port: 80, protocol: 6 },
            { port: 53, protocol: 17 },
            ...(from.startsWith(x) ? [{ port: 81, protocol: 6 }] : []),
          ].map((p) => `${Verdict.auditDeny} ${ip(from)}:${p.protocol} → ${ip(to)}:${p.port} true ${identity(compiled, from)}`),
        ),
      ),
    );
    assert.deepEqual(cells, expected);
    assert.ok(records.every((r) => r.direction === PolicyDirection.ingress && r.hook === PolicyHook.ingress));
  });
});
