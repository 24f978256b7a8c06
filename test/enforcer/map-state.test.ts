/**
 * Identities (stable, deterministic, order-free), the MapState's shape for chosen policies (exact entries), the diff
 * between two states (minimal: only what changed; applied to the old state it gives the new one), and port ranges
 * as LPM blocks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterPod, ClusterView } from '../../src/enforcer/compile/cluster.js';
import { compilePolicies } from '../../src/enforcer/compile/compile.js';
import { explain } from '../../src/enforcer/compile/explain.js';
import { allocateIdentities, ANY_PEER, podIdentityId, podIdentityKey } from '../../src/enforcer/compile/identities.js';
import { diffMapStates, EMPTY_MAP_STATE, portRangeBlocks, type MapChanges, type MapState, type PolicyEntry } from '../../src/enforcer/compile/map-state.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';

const pod = (namespace: string, name: string, labels: Record<string, string>, ip: string, namedPorts: ClusterPod['namedPorts'] = []): ClusterPod => ({ namespace, name, labels, namedPorts, ips: [ip] });

const cluster = (pods: ClusterPod[], namespaces: Record<string, Record<string, string>> = { x: { ns: 'x' }, y: { ns: 'y' } }): ClusterView => ({ namespaces: new Map(Object.entries(namespaces)), pods });

const POLICY = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: x }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress:
  - from: [{ podSelector: { matchLabels: { app: client } } }, { ipBlock: { cidr: 192.168.0.0/16, except: [192.168.1.0/24] } }]
    ports: [{ port: 80 }, { port: 81 }, { port: 8000, endPort: 8080 }, { port: http }]
`;

function applyDiff<V>(map: ReadonlyMap<string, V>, changes: MapChanges<V>): Map<string, V> {
  const out = new Map(map);
  for (const key of changes.deletes) out.delete(key);
  for (const [key, value] of changes.puts) out.set(key, value);
  return out;
}

function applyStateDiff(state: MapState, after: MapState): MapState {
  const diff = diffMapStates(state, after);
  return {
    endpoints: applyDiff(state.endpoints, diff.endpoints),
    prefixes: applyDiff(state.prefixes, diff.prefixes),
    isolation: applyDiff(state.isolation, diff.isolation),
    policy: applyDiff(state.policy, diff.policy),
  };
}

describe('identities', () => {
  it('equal (namespace, labels, named ports) share an id whatever the order; any difference splits', () => {
    const a = podIdentityKey('x', { app: 'web', tier: 'f' }, [{ name: 'http', protocol: 'TCP', port: 80 }, { name: 'm', protocol: 'UDP', port: 9 }]);
    const b = podIdentityKey('x', { tier: 'f', app: 'web' }, [{ name: 'm', protocol: 'UDP', port: 9 }, { name: 'http', protocol: 'TCP', port: 80 }]);
    assert.equal(a, b);
    const ids = new Set([
      podIdentityId(a),
      podIdentityId(podIdentityKey('y', { app: 'web', tier: 'f' }, [])),
      podIdentityId(podIdentityKey('x', { app: 'web' }, [])),
      podIdentityId(podIdentityKey('x', { app: 'web', tier: 'f' }, [{ name: 'http', protocol: 'TCP', port: 81 }])),
    ]);
    assert.equal(ids.size, 4);
    // Fixed by the hash alone: the same number on every enforcer and after every restart.
    assert.equal(podIdentityId(podIdentityKey('x', { app: 'web' }, [])), podIdentityId(JSON.stringify(['pod', 'x', [['app', 'web']], []])));
    for (const id of ids) assert.equal(id >> 62n, 1n, 'pod identities have kind bits 01');
  });

  it('allocation does not depend on the order of pods or on other pods', () => {
    const pods = [pod('x', 'a', { app: 'web' }, '10.0.0.1'), pod('x', 'b', { app: 'web' }, '10.0.0.2'), pod('y', 'c', { app: 'web' }, '10.0.0.3')];
    const one = allocateIdentities(cluster(pods), []);
    const other = allocateIdentities(cluster([...pods].reverse()), []);
    assert.deepEqual([...one.ofPod].sort(), [...other.ofPod].sort());
    assert.equal(one.pods.size, 2);
    assert.deepEqual(one.pods.get(one.ofPod.get('x/a')!)!.pods, ['x/a', 'x/b']);
    const alone = allocateIdentities(cluster([pods[2]!]), []);
    assert.equal(alone.ofPod.get('y/c'), one.ofPod.get('y/c'));
  });
});

describe('compiled MapState', () => {
  it('holds exactly the entries of a policy: merged port ranges, named ports per pod, CIDR identities with except', () => {
    const pods = [
      pod('x', 'web-1', { app: 'web' }, '10.0.0.1', [{ name: 'http', protocol: 'TCP', port: 8443 }]),
      pod('x', 'client', { app: 'client' }, '10.0.0.2'),
      pod('y', 'client', { app: 'client' }, '10.0.0.3'),
    ];
    const compiled = compilePolicies(parsePolicies(POLICY), cluster(pods));
    const web = compiled.identities.ofPod.get('x/web-1')!;
    const client = compiled.identities.ofPod.get('x/client')!;
    const wide = compiled.state.prefixes.get('192.168.0.0/16')!;
    assert.deepEqual([...compiled.state.prefixes.keys()].sort(), ['192.168.0.0/16', '192.168.1.0/24']);
    assert.deepEqual([...compiled.state.endpoints].sort(), [['10.0.0.1', web], ['10.0.0.2', client], ['10.0.0.3', compiled.identities.ofPod.get('y/client')]]);
    assert.deepEqual([...compiled.state.isolation.values()], [{ subject: web, direction: 'ingress', audit: false }]);
    const entries = (peer: bigint) => [...compiled.state.policy.values()].filter((e) => e.peer === peer).map((e) => [e.protocol, e.portFirst, e.portLast, e.audit]);
    // 80 and 81 merge; 8000-8080 stays; the named port is web-1's 8443. The except prefix gets no entry.
    const expected = [
      ['TCP', 80, 81, false],
      ['TCP', 8000, 8080, false],
      ['TCP', 8443, 8443, false],
    ];
    assert.deepEqual(entries(client), expected);
    assert.deepEqual(entries(wide), expected);
    assert.equal(compiled.state.policy.size, 6);
    assert.deepEqual(compiled.isolatedBy.get(`${web}/ingress`), ['x/web']);
  });

  it('audit entries only where no enforcing entry covers the port', () => {
    const yaml = (name: string, audit: boolean, ports: string) => `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ${name}, namespace: x, annotations: { policy.sidecarless.dev/audit: "${audit}" } }
spec: { podSelector: {}, ingress: [{ ports: ${ports} }] }
`;
    const compiled = compilePolicies(parsePolicies(`${yaml('enforce', false, '[{ port: 80, endPort: 90 }]')}---${yaml('audit', true, '[{ port: 70, endPort: 100 }]')}`), cluster([pod('x', 'a', {}, '10.0.0.1')]));
    const entries = [...compiled.state.policy.values()].map((e: PolicyEntry) => [e.peer, e.portFirst, e.portLast, e.audit]);
    assert.deepEqual(entries, [
      [ANY_PEER, 80, 90, false],
      [ANY_PEER, 70, 79, true],
      [ANY_PEER, 91, 100, true],
    ]);
    assert.equal([...compiled.state.isolation.values()][0]!.audit, false);
  });
});

describe('IPv6', () => {
  it('a v6 ipBlock matches v6 addresses only, a v4 one v4 only', () => {
    const pods = [pod('x', 'v6', { a: 'v6' }, '2001:db8::5'), pod('x', 'v4', { a: 'v4' }, '10.0.0.5'), pod('x', 'server', { app: 'server' }, '10.0.0.6')];
    const compiled = compilePolicies(
      parsePolicies(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: p, namespace: x }
spec:
  podSelector: { matchLabels: { app: server } }
  ingress: [{ from: [{ ipBlock: { cidr: "2001:db8::/64", except: ["2001:db8::4/126"] } }], ports: [{ port: 80 }] }, { from: [{ ipBlock: { cidr: 0.0.0.0/0 } }], ports: [{ port: 81 }] }]
`),
      cluster(pods),
    );
    const end = (name: string, ip: string) => ({ identity: compiled.identities.ofPod.get(name), ip });
    const server = end('x/server', '10.0.0.6');
    const allowed = (from: { identity: bigint | undefined; ip: string }, port: number) => explain(compiled, from, server, port, 'TCP').allowed;
    assert.deepEqual(
      [allowed(end('x/v6', '2001:db8::5'), 80), allowed(end('x/v6', '2001:db8::5'), 81), allowed(end('x/v4', '10.0.0.5'), 80), allowed(end('x/v4', '10.0.0.5'), 81)],
      [false, false, false, true],
    );
    // 2001:db8::5 lies in the except (::4/126); 2001:db8::9 does not.
    assert.equal(allowed({ identity: undefined, ip: '2001:db8::9' }, 80), true);
    assert.deepEqual([...compiled.state.prefixes.keys()].sort(), ['0.0.0.0/0', '2001:db8::/64', '2001:db8::4/126']);
  });
});

describe('diffMapStates', () => {
  const base = [pod('x', 'web-1', { app: 'web' }, '10.0.0.1', [{ name: 'http', protocol: 'TCP', port: 8443 }]), pod('x', 'client', { app: 'client' }, '10.0.0.2')];
  const policies = parsePolicies(POLICY);

  it('equal states: no change at all', () => {
    const diff = diffMapStates(compilePolicies(policies, cluster(base)).state, compilePolicies(policies, cluster([...base].reverse())).state);
    for (const map of Object.values(diff)) {
      assert.equal(map.puts.size, 0);
      assert.deepEqual(map.deletes, []);
    }
  });

  it('a new pod of an existing identity: one endpoint put, nothing else', () => {
    const before = compilePolicies(policies, cluster(base)).state;
    const after = compilePolicies(policies, cluster([...base, pod('x', 'web-2', { app: 'web' }, '10.0.0.9', [{ name: 'http', protocol: 'TCP', port: 8443 }])])).state;
    const diff = diffMapStates(before, after);
    assert.deepEqual([...diff.endpoints.puts.keys()], ['10.0.0.9']);
    assert.deepEqual([diff.endpoints.deletes, diff.policy.puts.size, diff.policy.deletes, diff.isolation.puts.size, diff.prefixes.puts.size], [[], 0, [], 0, 0]);
  });

  it('a relabeled client: its endpoint moves to the new identity, entries naming the old one go', () => {
    const before = compilePolicies(policies, cluster(base));
    const after = compilePolicies(policies, cluster([base[0]!, pod('x', 'client', { app: 'other' }, '10.0.0.2')]));
    const diff = diffMapStates(before.state, after.state);
    const oldClient = before.identities.ofPod.get('x/client')!;
    assert.deepEqual([...diff.endpoints.puts], [['10.0.0.2', after.identities.ofPod.get('x/client')]]);
    assert.equal(diff.policy.puts.size, 0);
    assert.deepEqual(diff.policy.deletes.sort(), [...before.state.policy.keys()].filter((key) => before.state.policy.get(key)!.peer === oldClient).sort());
    assert.equal(diff.policy.deletes.length, 3);
    assert.deepEqual(applyStateDiff(before.state, after.state), after.state);
  });

  it('from nothing, and back to nothing', () => {
    const state = compilePolicies(policies, cluster(base)).state;
    const up = diffMapStates(EMPTY_MAP_STATE, state);
    assert.equal(up.policy.puts.size, state.policy.size);
    const down = diffMapStates(state, EMPTY_MAP_STATE);
    assert.deepEqual(down.policy.deletes.length, state.policy.size);
    assert.deepEqual(applyStateDiff(state, EMPTY_MAP_STATE), EMPTY_MAP_STATE);
  });

  it('an audit flag flip is one put of the same key', () => {
    const before = compilePolicies(policies, cluster(base)).state;
    const after = compilePolicies(parsePolicies(POLICY.replace('namespace: x }', 'namespace: x, annotations: { policy.sidecarless.dev/audit: "true" } }')), cluster(base)).state;
    const diff = diffMapStates(before, after);
    assert.deepEqual([...diff.policy.puts.keys()].sort(), [...before.policy.keys()].sort());
    assert.deepEqual([...diff.isolation.puts.values()].map((e) => e.audit), [true]);
    assert.deepEqual([diff.policy.deletes, diff.isolation.deletes], [[], []]);
  });
});

describe('portRangeBlocks', () => {
  it('covers exactly the range with the fewest prefix blocks', () => {
    assert.deepEqual(portRangeBlocks(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(portRangeBlocks(0, 65535), [{ port: 0, bits: 0 }]);
    assert.deepEqual(portRangeBlocks(8000, 8080), [
      { port: 8000, bits: 10 },
      { port: 8064, bits: 12 },
      { port: 8080, bits: 16 },
    ]);
    assert.equal(portRangeBlocks(1, 65534).length, 30);
    for (const [first, last] of [[1, 65535], [79, 80], [1000, 1999], [32768, 60999]] as const) {
      const blocks = portRangeBlocks(first, last);
      const covered = blocks.reduce((sum, b) => sum + 2 ** (16 - b.bits), 0);
      assert.equal(covered, last - first + 1);
      for (const b of blocks) assert.equal(b.port % 2 ** (16 - b.bits), 0, 'aligned');
    }
  });
});
