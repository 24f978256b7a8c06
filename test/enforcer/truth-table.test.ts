/**
 * The Kubernetes netpol e2e suite's truth tables, in pure form: namespaces x, y, z with pods a, b, c, each serving
 * TCP 80 and 81 (and UDP 80); after each policy step (cumulative: applies, updates, deletes, relabels), the 9×9
 * matrix of every port from `explain` over the compiled MapState must equal the one an independent oracle
 * (netpol-oracle.ts, written from the spec text) gives, and for the first steps and some single policies a literal
 * matrix written by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import { compilePolicies, type CompiledPolicies } from '../../src/enforcer/compile/compile.js';
import { explain, MapLookup } from '../../src/enforcer/compile/explain.js';
import { parsePolicies } from '../../src/enforcer/policy/document.js';
import { policyKey, type NetworkPolicy, type Protocol } from '../../src/enforcer/policy/types.js';
import { oracleSides, type OracleCluster, type OraclePod } from './netpol-oracle.js';

const NAMESPACES = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const PROBES: Array<{ port: number; protocol: Protocol }> = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
];

/** The suite's cluster. Named ports serve-<port>-<proto>, and `web`: TCP 80 everywhere except z/c, where it is 81. */
function freshCluster(): OracleCluster {
  const pods: OraclePod[] = NAMESPACES.flatMap((namespace, n) =>
    PODS.map((name, p) => ({
      namespace,
      name,
      labels: { pod: name },
      ports: [
        { name: 'serve-80-tcp', protocol: 'TCP', port: 80 },
        { name: 'serve-81-tcp', protocol: 'TCP', port: 81 },
        { name: 'serve-80-udp', protocol: 'UDP', port: 80 },
        { name: 'web', protocol: 'TCP', port: namespace === 'z' && name === 'c' ? 81 : 80 },
      ],
      ip: `10.0.${n + 1}.${p + 1}`,
    })),
  );
  return { namespaces: Object.fromEntries(NAMESPACES.map((ns) => [ns, { ns }])), pods };
}

function clusterView(cluster: OracleCluster): ClusterView {
  return {
    namespaces: new Map(Object.entries(cluster.namespaces)),
    pods: cluster.pods.map((pod) => ({
      namespace: pod.namespace,
      name: pod.name,
      labels: { ...pod.labels },
      namedPorts: pod.ports.map((p) => ({ name: p.name, protocol: p.protocol as Protocol, port: p.port })),
      ips: [pod.ip],
    })),
  };
}

/** Rows: from x/a … z/c; columns: to x/a … z/c; '.' connects, 'X' does not (the e2e suite's print-out). */
function matrix(allows: (from: OraclePod, to: OraclePod) => boolean, cluster: OracleCluster): string {
  return cluster.pods.map((from) => cluster.pods.map((to) => (allows(from, to) ? '.' : 'X')).join('')).join('\n');
}

type Side = 'egress' | 'ingress';

/** The matrix of connections, or with `side` of one side's verdicts (egress of the row, ingress of the column). */
function explainedMatrix(compiled: CompiledPolicies, cluster: OracleCluster, port: number, protocol: Protocol, side?: Side): string {
  const lookup = new MapLookup(compiled.state);
  const end = (pod: OraclePod) => ({ identity: compiled.identities.ofPod.get(`${pod.namespace}/${pod.name}`), ip: pod.ip });
  return matrix((from, to) => {
    const explanation = explain(compiled, end(from), end(to), port, protocol, lookup);
    return side === undefined ? explanation.allowed : explanation[side].verdict !== 'deny';
  }, cluster);
}

const rows = (...lines: string[]): string => lines.join('\n');

interface Step {
  name: string;
  apply?: string;
  delete?: string[];
  mutate?: (cluster: OracleCluster) => void;
  /** Hand-written matrices by probe (`80/TCP`). */
  expect?: Record<string, string>;
  check?: (compiled: CompiledPolicies, cluster: OracleCluster) => void;
}

const pod = (cluster: OracleCluster, name: string): OraclePod => cluster.pods.find((p) => `${p.namespace}/${p.name}` === name)!;

const STEPS: Step[] = [
  {
    name: 'no policy: everything connects',
    expect: { '80/TCP': rows(...Array<string>(9).fill('.........')) },
  },
  {
    name: 'default deny ingress in x',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-ingress, namespace: x }
spec: { podSelector: {}, policyTypes: [Ingress] }`,
    expect: { '80/TCP': rows(...Array<string>(9).fill('XXX......')), '81/TCP': rows(...Array<string>(9).fill('XXX......')) },
  },
  {
    name: 'x/a admits its own namespace (empty podSelector peer)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-x-internal, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress: [{ from: [{ podSelector: {} }] }]`,
    expect: {
      '80/TCP': rows('.XX......', '.XX......', '.XX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......'),
    },
  },
  {
    name: 'x/a admits namespace y on TCP 80 only',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-y-80, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: y } } }], ports: [{ port: 80 }] }]`,
    expect: {
      '80/TCP': rows('.XX......', '.XX......', '.XX......', '.XX......', '.XX......', '.XX......', 'XXX......', 'XXX......', 'XXX......'),
      '81/TCP': rows('.XX......', '.XX......', '.XX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......', 'XXX......'),
    },
  },
  {
    name: 'namespaceSelector and podSelector in one peer (AND) and as two peers (OR)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: and-peer, namespace: x }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: z } }, podSelector: { matchLabels: { pod: b } } }] }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: or-peers, namespace: x }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: z } } }, { podSelector: { matchLabels: { pod: b } } }] }]`,
  },
  {
    name: 'matchExpressions: In, NotIn, Exists, DoesNotExist',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: expressions, namespace: y }
spec:
  podSelector: { matchExpressions: [{ key: pod, operator: NotIn, values: [a] }] }
  ingress:
  - from:
    - namespaceSelector: { matchExpressions: [{ key: ns, operator: In, values: [x] }] }
      podSelector: { matchExpressions: [{ key: pod, operator: In, values: [a, b] }, { key: pod, operator: Exists }] }
    ports: [{ port: 80 }]
  - from: [{ podSelector: { matchExpressions: [{ key: team, operator: DoesNotExist }] } }]
    ports: [{ port: 81 }]`,
  },
  {
    name: 'named ports resolve on the destination pod (web is 81 on z/c)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: named-81, namespace: z }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress: [{ ports: [{ port: serve-81-tcp }] }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: named-web, namespace: z }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{ ports: [{ port: web, protocol: TCP }] }]`,
  },
  {
    name: 'endPort: z/b admits 79-80 from every namespace',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: range, namespace: z }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: TCP, port: 79, endPort: 80 }] }]`,
  },
  {
    name: 'egress rules without policyTypes: Ingress and Egress (y/a isolated both ways)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-to-x, namespace: y }
spec:
  podSelector: { matchLabels: { pod: a } }
  egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: x } } }], ports: [{ port: 80 }] }]`,
  },
  {
    name: 'egress ipBlock with except: z/a reaches 10.0.0.0/16 except x (10.0.1.0/24)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-cidr, namespace: z }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Egress]
  egress: [{ to: [{ ipBlock: { cidr: 10.0.0.0/16, except: [10.0.1.0/24] } }] }]`,
  },
  {
    name: 'ingress ipBlock /32 of a pod address (y/b → x/b)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-yb-address, namespace: x }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress: [{ from: [{ ipBlock: { cidr: 10.0.2.2/32 } }] }]`,
  },
  {
    name: 'policyTypes [Egress] ignores the ingress rules it carries',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-only, namespace: y }
spec:
  podSelector: { matchLabels: { pod: b } }
  policyTypes: [Egress]
  ingress: [{}]
  egress: [{}]`,
  },
  {
    name: 'an empty ingress rule admits everything (x/c)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-all, namespace: x }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{}]`,
  },
  {
    name: 'relabels: z/b becomes pod=bb, namespace y becomes ns=yy, y/c gets team=blue',
    mutate(cluster) {
      pod(cluster, 'z/b').labels = { pod: 'bb' };
      cluster.namespaces['y'] = { ns: 'yy' };
      pod(cluster, 'y/c').labels = { pod: 'c', team: 'blue' };
    },
  },
  { name: 'delete the default deny of x', delete: ['x/deny-ingress'] },
  {
    name: 'update allow-x-internal: only pods c of x',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-x-internal, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress: [{ from: [{ podSelector: { matchLabels: { pod: c } } }] }]`,
  },
  {
    name: 'an audit-mode default deny of z changes nothing that passes',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: zz-audit-deny-all, namespace: z, annotations: { policy.sidecarless.dev/audit: "true" } }
spec: { podSelector: {}, policyTypes: [Ingress, Egress] }`,
    check(compiled, cluster) {
      const end = (name: string) => ({ identity: compiled.identities.ofPod.get(name), ip: pod(cluster, name).ip });
      // z/b's egress is selected by the audit policy alone: it passes, reported as would-be denied.
      const verdict = explain(compiled, end('z/b'), end('y/a'), 80, 'TCP');
      assert.equal(verdict.egress.verdict, 'audit-deny');
      assert.deepEqual(verdict.egress.isolatedBy, ['z/zz-audit-deny-all']);
      // z/a's egress is selected by an enforcing policy too: the audit policy changes nothing there.
      assert.equal(explain(compiled, end('z/a'), end('x/a'), 80, 'TCP').egress.verdict, 'deny');
    },
  },
  {
    name: 'egress to a named port of any peer (x/a → web: 80, but 81 on z/c)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-web, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Egress]
  egress: [{ ports: [{ port: web }] }]`,
  },
  {
    name: 'a UDP rule allows no TCP (y/c admits UDP 80 from all)',
    apply: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: udp-80, namespace: y }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{ ports: [{ protocol: UDP, port: 80 }] }]`,
  },
  { name: 'delete everything', delete: ['x/allow-x-internal', 'x/allow-y-80', 'x/and-peer', 'x/or-peers', 'y/expressions', 'z/named-81', 'z/named-web', 'z/range', 'y/egress-to-x', 'z/egress-cidr', 'x/from-yb-address', 'y/egress-only', 'x/allow-all', 'z/zz-audit-deny-all', 'x/egress-web', 'y/udp-80'], expect: { '80/TCP': rows(...Array<string>(9).fill('.........')) } },
];

describe('NetworkPolicy truth tables (x, y, z × a, b, c)', () => {
  it('every step: the matrix explain reads from the compiled maps equals the oracle and the hand-written ones', () => {
    const cluster = freshCluster();
    const policies = new Map<string, NetworkPolicy>();
    const nonTrivial = new Set<string>();
    for (const step of STEPS) {
      for (const policy of step.apply === undefined ? [] : parsePolicies(step.apply)) policies.set(policyKey(policy), policy);
      for (const key of step.delete ?? []) assert.ok(policies.delete(key), `${step.name}: ${key} to delete`);
      step.mutate?.(cluster);
      const compiled = compilePolicies([...policies.values()], clusterView(cluster));
      for (const { port, protocol } of PROBES) {
        const probe = `${port}/${protocol}`;
        const sides = (from: OraclePod, to: OraclePod) => oracleSides(from, to, port, protocol, [...policies.values()], cluster);
        const got = explainedMatrix(compiled, cluster, port, protocol);
        const oracle = matrix((from, to) => sides(from, to).egress && sides(from, to).ingress, cluster);
        assert.equal(got, oracle, `step "${step.name}", ${probe}: compiled (left) vs oracle (right)`);
        for (const side of ['egress', 'ingress'] as const) {
          const oracleSide = matrix((from, to) => sides(from, to)[side], cluster);
          assert.equal(explainedMatrix(compiled, cluster, port, protocol, side), oracleSide, `step "${step.name}", ${probe}, ${side} side`);
        }
        const literal = step.expect?.[probe];
        if (literal !== undefined) assert.equal(got, literal, `step "${step.name}", ${probe}: hand-written matrix`);
        nonTrivial.add(got);
      }
      step.check?.(compiled, cluster);
    }
    // The steps must exercise the tables: many distinct matrices, not all-open or all-closed ones.
    assert.ok(nonTrivial.size >= 15, `only ${nonTrivial.size} distinct matrices`);
  });
});

describe('hand-written tables of single policies', () => {
  const cases: Array<{ name: string; yaml: string; probe: { port: number; protocol: Protocol }; expect: string }> = [
    {
      name: 'egress rules without policyTypes isolate ingress too',
      yaml: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: p, namespace: y }
spec:
  podSelector: { matchLabels: { pod: a } }
  egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: x } } }] }]`,
      probe: { port: 80, protocol: 'TCP' },
      // y/a reaches only x; nobody reaches y/a.
      expect: rows('...X.....', '...X.....', '...X.....', '...XXXXXX', '...X.....', '...X.....', '...X.....', '...X.....', '...X.....'),
    },
    {
      name: 'ipBlock except carves pod addresses out',
      yaml: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: p, namespace: z }
spec:
  podSelector: { matchLabels: { pod: c } }
  ingress: [{ from: [{ ipBlock: { cidr: 10.0.0.0/8, except: [10.0.2.0/24, 10.0.3.3/32] } }] }]`,
      probe: { port: 81, protocol: 'TCP' },
      expect: rows('.........', '.........', '.........', '........X', '........X', '........X', '.........', '.........', '........X'),
    },
    {
      name: 'endPort range 81-81 with named ports elsewhere',
      yaml: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: p, namespace: x }
spec:
  podSelector: {}
  ingress: [{ ports: [{ port: 81, endPort: 81 }, { port: serve-80-udp, protocol: UDP }] }]`,
      probe: { port: 80, protocol: 'TCP' },
      expect: rows(...Array<string>(9).fill('XXX......')),
    },
  ];
  for (const { name, yaml, probe, expect } of cases) {
    it(name, () => {
      const cluster = freshCluster();
      const compiled = compilePolicies(parsePolicies(yaml), clusterView(cluster));
      assert.equal(explainedMatrix(compiled, cluster, probe.port, probe.protocol), expect);
    });
  }
});
