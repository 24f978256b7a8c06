/**
 * The enforcer's pure steps: the policy ledger (decode, validate, keep the last valid version of a key, hand each
 * bad message out once as a letter; a tombstone removes) and the desired state (pods' cgroups by the uid their
 * kubelet path names, only this node's; policies that do not fit the maps left out in publication order, with the
 * capacity named, the same whatever order the enforcer read them in), and verdicts named with it (an allow by the
 * rules that allow it, a denial by the policies that isolate the subject).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadRegistry } from '../../src/common/avro.js';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import { capacityProblem, desiredState, type Capacities } from '../../src/enforcer/desired-state.js';
import { PolicyLedger, type PolicyMessage } from '../../src/enforcer/policy-ledger.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { policyToEvent } from '../../src/events/networkpolicy/event.js';
import { bindPoliciesCodec } from '../../src/events/policies.js';
import { VerdictNamer, type Decision } from '../../src/enforcer/verdict-naming.js';

const codec = bindPoliciesCodec(loadRegistry());

const policyYaml = (name: string, ports: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${name}, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [${ports}]}]
`;

let offset = 0;
function message(key: string, value: Buffer | null): PolicyMessage {
  return { topic: 'p.policies.v1', partition: 0, offset: String(offset++), key: Buffer.from(key), value };
}
const encoded = (yaml: string, timeNs: bigint) => codec.encode(policyToEvent(parsePolicies(yaml)[0]!, 'test', timeNs));

const WEB_UID = '0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
const OTHER_UID = '11111111-2222-4333-8444-555555555555';
const cluster: ClusterView = {
  namespaces: new Map([['x', {}]]),
  pods: [
    { namespace: 'x', name: 'web', labels: { app: 'web' }, namedPorts: [], ips: ['10.0.0.1'] },
    { namespace: 'x', name: 'other', labels: { app: 'other' }, namedPorts: [], ips: ['10.0.0.2'] },
  ],
};
const slice = (uid: string) => `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid.replaceAll('-', '_')}.slice`;
const local = {
  cgroups: new Map([
    [101n, slice(WEB_UID)],
    [102n, `${slice(WEB_UID)}/cri-containerd-${'a'.repeat(64)}.scope`],
    [103n, `${slice(OTHER_UID)}/cri-containerd-${'b'.repeat(64)}.scope`],
    [104n, '/system.slice/kubelet.service'],
  ]),
  // `other` runs on another node: its cgroup here (a leftover) maps to nothing.
  pods: new Map([[WEB_UID, 'x/web']]),
};
const ROOMY: Capacities = { maxPods: 100, maxEndpoints: 100, maxPrefixes: 100, maxPolicyEntries: 1000 };

describe('policy ledger', () => {
  it('keeps the last valid version of a key, letters each bad message once, removes on a tombstone', () => {
    const ledger = new PolicyLedger(codec);
    assert.equal(ledger.take(message('x/web', encoded(policyYaml('web', '{port: 80}'), 1n))), true);
    const garbage = message('x/web', Buffer.from('garbage'));
    assert.equal(ledger.take(garbage), false);
    const event = policyToEvent(parsePolicies(policyYaml('web', '{port: 80}'))[0]!, 'test', 2n);
    event.ingress[0]!.ports[0]!.port = 70_000;
    const outOfRange = message('x/web', codec.encode(event));
    assert.equal(ledger.take(outOfRange), false);
    assert.deepEqual(ledger.policies().map((live) => [live.policy.name, live.policy.spec.ingress[0]!.ports[0]!.port]), [['web', 80]], 'the last valid version stays');
    const letters = ledger.takeLetters();
    assert.deepEqual(letters.map((letter) => [letter.offset, letter.value]), [[garbage.offset, garbage.value], [outOfRange.offset, outOfRange.value]]);
    assert.match(letters[0]!.reason, /^does not decode as a policies\.v1 event: bad magic byte/);
    assert.match(letters[1]!.reason, /^not a valid NetworkPolicy: .*spec\.ingress\[0\]\.ports\[0\]\.port/);
    assert.deepEqual(ledger.takeLetters(), [], 'each letter once');
    assert.equal(ledger.take(message('x/web', null)), true);
    assert.deepEqual(ledger.policies(), []);
  });
});

describe('desired state', () => {
  it('maps every cgroup of this node\'s pods (pod slice and containers) to the pod\'s identity, nothing else', () => {
    const desired = desiredState([], cluster, local, ROOMY);
    const web = desired.compiled.identities.ofPod.get('x/web')!;
    assert.deepEqual(desired.node.cgroups, new Map([[101n, web], [102n, web]]));
    assert.deepEqual(desired.cgroupPods, new Map([[101n, 'x/web'], [102n, 'x/web']]));
  });

  it('leaves out the policies that do not fit, in publication order, naming the capacity; any read order gives the same', () => {
    const ledgerIn = (order: Array<[string, string, bigint]>) => {
      const ledger = new PolicyLedger(codec);
      for (const [name, ports, time] of order) ledger.take(message(`x/${name}`, encoded(policyYaml(name, ports), time)));
      return ledger.policies();
    };
    // 1-1023 is 10 LPM blocks (portRangeBlocks), 2000-2999 is 8, 5000 is 1.
    const first: [string, string, bigint] = ['first', '{port: 1, endPort: 1023}', 1n];
    const second: [string, string, bigint] = ['second', '{port: 2000, endPort: 2999}', 2n];
    const third: [string, string, bigint] = ['third', '{port: 5000}', 3n];
    const tight = { ...ROOMY, maxPolicyEntries: 14 };
    for (const order of [[first, second, third], [third, second, first]]) {
      const desired = desiredState(ledgerIn(order), cluster, local, tight);
      assert.deepEqual(desired.applied, ['x/first', 'x/third']);
      assert.deepEqual(desired.rejected.map(({ policy, reason }) => [policy.policy.name, reason]), [
        ['second', 'does not fit the policy maps with the policies published before it: 18 policy entries (port blocks) exceed the maps\' 14 (raise maxPolicyEntries)'],
      ]);
    }
    assert.equal(capacityProblem(desiredState(ledgerIn([first, second]), cluster, local, ROOMY).node.state, 2, tight), '18 policy entries (port blocks) exceed the maps\' 14 (raise maxPolicyEntries)');
  });

  it('throws when the node\'s pods alone do not fit: nothing to leave out', () => {
    assert.throws(() => desiredState([], cluster, local, { ...ROOMY, maxPods: 1 }), /the node's pods alone do not fit the policy maps: 2 container cgroups exceed the maps' 1 \(raise maxPods\)/);
  });
});

describe('verdict naming', () => {
  it('names an allow by its rules and a denial by the isolating policies, with both pods', () => {
    const ledger = new PolicyLedger(codec);
    ledger.take(message('x/web', encoded(policyYaml('web', '{port: 80}'), 1n)));
    ledger.take(message('x/web-too', encoded(policyYaml('web-too', '{port: 81}'), 2n)));
    const state = desiredState(ledger.policies(), cluster, local, ROOMY);
    const web = state.compiled.identities.ofPod.get('x/web')!;
    const other = state.compiled.identities.ofPod.get('x/other')!;
    const decision = (port: number, verdict: Decision['verdict']): Decision => ({
      timeNs: 5n, cgroupId: 102n, subject: web, peer: other, sourceAddress: '10.0.0.2', sourcePort: 40000, destinationAddress: '10.0.0.1',
      destinationPort: port, protocol: 6, verdict, direction: 'ingress', hook: 'ingress', generation: 1,
    });
    const namer = new VerdictNamer('node-1');
    const allowed = namer.name(decision(80, 'allow'), state);
    assert.deepEqual(
      { policies: allowed.policies, rules: allowed.rules, subject: [allowed.subject_k8s_namespace_name, allowed.subject_k8s_pod_name], peer: [allowed.peer_k8s_namespace_name, allowed.peer_k8s_pod_name] },
      { policies: ['x/web'], rules: ['x/web ingress[0]'], subject: ['x', 'web'], peer: ['x', 'other'] },
    );
    const denied = namer.name(decision(82, 'deny'), state);
    assert.deepEqual({ policies: denied.policies, rules: denied.rules, transport: denied.network_transport, type: denied.network_type }, { policies: ['x/web', 'x/web-too'], rules: [], transport: 'tcp', type: 'ipv4' });
    assert.deepEqual(namer.name(decision(82, 'deny'), undefined).policies, [], 'before any state is applied nothing is named');
  });
});
