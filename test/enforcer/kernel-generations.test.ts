/**
 * The enforcer's generations and pins on the real kernel, with lab pods x/a (a server on TCP 80 and 81) and y/a (the
 * client):
 *   - atomicity: two policies of about 1,000 rules each that both allow y/a → x/a:80 (A by pod selector, B by an
 *     ipBlock: different map entries) and neither 81, replaced by each other 100 times while y/a loops connect()s
 *     to both ports. A half-written state (A's entries gone, B's not yet there) would refuse port 80: no connect()
 *     may fail on 80 and none may succeed on 81, and the kernel's own verdicts must show both generations judging;
 *   - restarts: the process drops every handle; the pinned programs keep enforcing the last state; a policy compiled
 *     meanwhile is applied by a reopened enforcer, which finds the maps' contents equal to what it applied before;
 *   - upgrades: another layout is installed beside the running one, takes the state and is attached (from then on it
 *     alone reports verdicts, though both judge), then the old one is retired.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { PolicyApplier } from '../../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel, type PolicyKernelOptions } from '../../src/enforcer/apply/kernel.js';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { PolicyHook, Verdict, decodeVerdictRecord, type VerdictRecord } from '../../src/ebpf/records/verdict.js';
import { openRingReader } from '../../src/ebpf/ringbuf.js';
import { launch } from '../../src/lab/agent-launch.js';
import type { TcpClientParams, TcpClientResult } from '../../src/lab/agents/protocol.js';
import { describeCluster } from '../../src/lab/cluster-description.js';
import { probeMatrix, startDescribedCluster, type DescribedCluster } from '../../src/lab/reachability.js';
import { localHost, kubeApiServerPort } from '../../src/lab/stack/endpoints.js';
import { requireStackService } from '../helpers/stack.js';
import { clusterView, compileForLab, labCgroupOf, outcomeRows, removePolicyLab } from './lab-policy.js';

const id = randomBytes(3).toString('hex');
const x = `x-${id}`;
const y = `y-${id}`;
const description = describeCluster({ [x]: { ns: 'x' }, [y]: { ns: 'y' } }, [
  { namespace: x, name: 'a', ports: [80, 81] },
  { namespace: y, name: 'a' },
]);

/** Egress of y/a: port 80 of x/a through `peer`, plus 1,000 single ports (`firstFiller`, +2, ...) through it. */
function egressPolicy(name: string, peer: string, firstFiller: number): string {
  const fillers = Array.from({ length: 1000 }, (_, i) => `{port: ${firstFiller + 2 * i}}`).join(', ');
  return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: ${y}}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [${peer}]
    ports: [{port: 80}]
  - to: [${peer}]
    ports: [${fillers}]
`;
}

const OPTIONS: PolicyKernelOptions = { ...DEFAULT_POLICY_KERNEL_OPTIONS, allowSampleEvery: 1 };

describe('policy generations and pins on the real kernel', () => {
  const pins = new PinDirectory(`/sys/fs/bpf/sidecarless-test-generations-${process.pid}-${id}`);
  let described: DescribedCluster;
  let view: ClusterView;
  let kernel: PolicyKernel;
  let applier: PolicyApplier;
  let xa: string;

  before(async () => {
    await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
    described = await startDescribedCluster(description, { name: `generations-${id}`, lifetimeMs: 15 * 60_000 });
    view = clusterView(description, described);
    xa = described.pods.get(`${x}/a`)!.ip;
    kernel = PolicyKernel.open(pins, OPTIONS);
    applier = PolicyApplier.open(kernel.maps);
    kernel.attach([labCgroupOf(described)]);
  });

  after(() => removePolicyLab(kernel, pins, described));

  const rows = async (port: number) => outcomeRows(await probeMatrix(described, { port, protocol: 'TCP' })).map((row) => row.replaceAll(x, 'x').replaceAll(y, 'y'));
  const byPod = () => egressPolicy('by-pod', `{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}`, 10_000);
  const byBlock = () => egressPolicy('by-block', `{ipBlock: {cidr: ${xa}/32}}`, 10_001);

  function client(port: number) {
    const params: Omit<TcpClientParams, 'deadlineMs'> = {
      host: xa,
      port,
      connections: 10_000_000,
      durationMs: 0,
      ratePerSecond: 0,
      concurrency: 1,
      sendBytes: 0,
      chunks: 1,
      intervalMs: 0,
      expectBytes: `${x}/a\n`.length,
    };
    return launch<TcpClientResult>(described.pods.get(`${y}/a`)!, 'tcp-client', params, 120_000);
  }

  it('1,000 rules replaced 100 times: no connect() sees a state neither policy allows', async (t) => {
    const policies = [compileForLab(byPod(), view, described), compileForLab(byBlock(), view, described)];
    assert.ok(policies.every(({ node }) => node.state.policy.size === 1001), 'each policy is 1,001 map entries');
    applier.apply(policies[0]!.node);
    const ring = openRingReader(kernel.installation, 'verdict_ring');
    const ya = described.pods.get(`${y}/a`)!.cgroup.id;
    const records: VerdictRecord[] = [];
    const drain = () => ring.drain((data, offset, size) => {
      const record = decodeVerdictRecord(data, offset, size);
      if (record.cgroupId === ya) records.push(record);
    });

    const allowed = client(80);
    const refused = client(81);
    const started = Date.now();
    // Both loops run once the kernel has judged each of them (allows are reported: allowSampleEvery 1).
    while (!(records.some((r) => r.dstPort === 80) && records.some((r) => r.dstPort === 81))) {
      assert.ok(Date.now() - started < 20_000, 'the clients made no connect() within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
      drain();
    }
    const during: VerdictRecord[] = [];
    const applyMs: number[] = [];
    for (let i = 1; i <= 100; i++) {
      const begin = process.hrtime.bigint();
      applier.apply(policies[i % 2]!.node);
      applyMs.push(Number(process.hrtime.bigint() - begin) / 1e6);
      const before = records.length;
      drain();
      during.push(...records.slice(before));
      await new Promise((resolve) => setImmediate(resolve)); // lets the agents' pipes be read
    }
    allowed.stop();
    refused.stop();
    const [on80, on81] = [await allowed.result, await refused.result];
    applyMs.sort((a, b) => a - b);
    t.diagnostic(`apply of 1,001 entries each way: p50 ${applyMs[50]!.toFixed(1)} ms, max ${applyMs[99]!.toFixed(1)} ms; connect()s during the run: ${on80.connections} on 80, ${on81.connections} on 81`);

    assert.deepEqual(on80.errors, [], 'no connect() to port 80 failed');
    assert.ok(on80.completed >= on80.connections - 1, `${on80.completed} of ${on80.connections} connections on 80 completed (one may be cut by the stop)`);
    assert.deepEqual({ completed: on81.completed, errors: on81.errors }, { completed: 0, errors: [`connect EPERM ${xa}:81 - Local (0.0.0.0:0)`] });
    assert.ok(on80.connections >= 100 && on81.connections >= 100, `the loops ran throughout: ${on80.connections} and ${on81.connections} connect()s`);
    const seen = (port: number, verdict: number) => [...new Set(during.filter((r) => r.dstPort === port && r.verdict === verdict).map((r) => r.generation))].sort();
    assert.deepEqual(
      { allowedOn80: seen(80, Verdict.allow), deniedOn80: seen(80, Verdict.deny), allowedOn81: seen(81, Verdict.allow), deniedOn81: seen(81, Verdict.deny) },
      { allowedOn80: [0, 1], deniedOn80: [], allowedOn81: [], deniedOn81: [0, 1] },
      'the kernel judged connect()s with both generations while they were replaced, always as one policy or the other',
    );
    assert.ok(during.every((r) => r.hook === PolicyHook.connect));
    assert.deepEqual(applier.readBack(0), policies[0]!.node);
    assert.deepEqual(applier.readBack(1), policies[0]!.node);
  });

  it('restart: the pins keep enforcing without a process; a reopened enforcer finds its state and applies the next', async () => {
    const lastApplied = compileForLab(byPod(), view, described).node;
    applier.apply(lastApplied);
    kernel.close(); // every fd of this process: what enforces now is what is pinned
    // Columns x/a, y/a: y/a serves nothing (R: refused), and its egress allows only x/a:80.
    assert.deepEqual(await rows(80), ['x/a .R', 'y/a .D']);
    assert.deepEqual(await rows(81), ['x/a .R', 'y/a DD']);

    // A policy that arrived while no enforcer ran: y/a may connect nowhere.
    const next = compileForLab(
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: no-egress, namespace: ${y}}
spec: {podSelector: {}, policyTypes: [Egress]}
`,
      view,
      described,
    ).node;
    kernel = PolicyKernel.open(pins, OPTIONS);
    assert.equal(kernel.installation.installedNow, false, 'the pinned installation is adopted, nothing loaded');
    applier = PolicyApplier.open(kernel.maps);
    assert.deepEqual(applier.current, lastApplied, 'the maps hold what the stopped enforcer applied');
    assert.deepEqual(applier.readBack(1 - kernel.maps.activeGeneration()), lastApplied);
    assert.equal(applier.apply(lastApplied).writes, 0, 'the same state again writes nothing');
    applier.apply(next);
    assert.deepEqual(await rows(80), ['x/a .R', 'y/a DD']);
    assert.deepEqual([applier.readBack(0), applier.readBack(1)], [next, next], 'both generations equal those of an enforcer that never stopped');
  });

  it('upgrade: another layout is installed beside the running one, takes the state, reports alone once attached, then the old one is retired', async () => {
    const running = kernel.installation.directory.path;
    const state = applier.current;
    kernel.close();
    kernel = PolicyKernel.open(pins, { ...OPTIONS, allowSampleEvery: 0 }); // another setting: another layout
    assert.equal(kernel.installation.installedNow, true);
    assert.notEqual(kernel.installation.directory.path, running);
    applier = PolicyApplier.open(kernel.maps);
    assert.equal(applier.current.state.policy.size, 0, 'a new layout starts empty');
    applier.apply(state);
    kernel.attach([labCgroupOf(described)]);
    // Both attached: both judge every connect(), and only the new one reports (verdict_reporter).
    const [old] = kernel.takeOverVerdicts();
    const rings = [openRingReader(old!, 'verdict_ring'), openRingReader(kernel.installation, 'verdict_ring')];
    const denialsIn = (ring: (typeof rings)[number]) => {
      const denials: VerdictRecord[] = [];
      ring.drain((data, offset, size) => {
        const record = decodeVerdictRecord(data, offset, size);
        if (record.verdict === Verdict.deny && record.dstPort === 80) denials.push(record);
      });
      return denials;
    };
    rings.forEach(denialsIn); // what came before
    assert.deepEqual(await rows(80), ['x/a .R', 'y/a DD'], 'both enforce the state');
    const [oldDenials, newDenials] = rings.map(denialsIn);
    assert.deepEqual(
      [oldDenials!.length, newDenials!.map((record) => record.dstAddress).sort()],
      [0, [described.pods.get(`${x}/a`)!.ip, described.pods.get(`${y}/a`)!.ip].sort()],
      "each of y/a's two denied connect()s reported once, by the new layout",
    );
    rings.forEach((ring) => ring.detach());
    old!.close();
    assert.equal(kernel.retireOtherLayouts(), 1);
    assert.equal(fs.existsSync(running), false, 'the old installation is unpinned');
    assert.deepEqual(await rows(80), ['x/a .R', 'y/a DD'], 'the new installation enforces the state');
  });
});
