/**
 * The Kubernetes netpol e2e suite's cluster and policy steps, shared by the pure truth tables (truth-table.test.ts:
 * explain over the compiled maps against the oracle) and the kernel's (kernel-truth-table.test.ts: real connect()s
 * between lab pods against the same oracle): namespaces x, y, z with pods a, b, c, each serving TCP 80 and 81 and
 * UDP 80; steps are cumulative (applies, updates, deletes, relabels).
 */
import assert from 'node:assert/strict';
import type { ClusterView } from '../../src/enforcer/compile/cluster.js';
import { compilePolicies, type CompiledPolicies } from '../../src/enforcer/compile/compile.js';
import { explain, MapLookup } from '../../src/enforcer/compile/explain.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { policyKey, type NetworkPolicy, type Protocol } from '../../src/events/networkpolicy/types.js';
import type { OracleCluster, OraclePod } from './netpol-oracle.js';

export const NAMESPACES = ['x', 'y', 'z'];
export const PODS = ['a', 'b', 'c'];
export const PROBES: Array<{ port: number; protocol: 'TCP' | 'UDP' }> = [
  { port: 80, protocol: 'TCP' },
  { port: 81, protocol: 'TCP' },
  { port: 80, protocol: 'UDP' },
];

/**
 * Where the suite's pods are: every pod inside `all`, each namespace's pods alone in an aligned block of their own
 * (so that an ipBlock can name a namespace's pods, and an except carve them out), pod addresses by `ns/name`.
 */
export interface SuiteNetwork {
  all: string;
  namespaces: Record<string, string>;
  ip(namespace: number, pod: number): string;
}

/** The pure suite's: namespace n's pods in 10.0.<n+1>.0/24. */
export const PURE_NETWORK: SuiteNetwork = {
  all: '10.0.0.0/16',
  namespaces: Object.fromEntries(NAMESPACES.map((ns, n) => [ns, `10.0.${n + 1}.0/24`])),
  ip: (n, p) => `10.0.${n + 1}.${p + 1}`,
};

/** The suite's cluster. Named ports serve-<port>-<proto>, and `web`: TCP 80 everywhere except z/c, where it is 81. */
export function freshCluster(network: SuiteNetwork = PURE_NETWORK): OracleCluster {
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
      ip: network.ip(n, p),
    })),
  );
  return { namespaces: Object.fromEntries(NAMESPACES.map((ns) => [ns, { ns }])), pods };
}

export function clusterView(cluster: OracleCluster): ClusterView {
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
export function matrix(allows: (from: OraclePod, to: OraclePod) => boolean, cluster: OracleCluster): string {
  return cluster.pods.map((from) => cluster.pods.map((to) => (allows(from, to) ? '.' : 'X')).join('')).join('\n');
}

export type Side = 'egress' | 'ingress';

/** The matrix of connections, or with `side` of one side's verdicts (egress of the row, ingress of the column). */
export function explainedMatrix(compiled: CompiledPolicies, cluster: OracleCluster, port: number, protocol: Protocol, side?: Side): string {
  const lookup = new MapLookup(compiled.state);
  const end = (pod: OraclePod) => ({ identity: compiled.identities.ofPod.get(`${pod.namespace}/${pod.name}`), ip: pod.ip });
  return matrix((from, to) => {
    const explanation = explain(compiled, end(from), end(to), port, protocol, lookup);
    return side === undefined ? explanation.allowed : explanation[side].verdict !== 'deny';
  }, cluster);
}

export const rows = (...lines: string[]): string => lines.join('\n');

export interface Step {
  name: string;
  /** Policies applied (or replaced) at this step; a function of the network where a policy names addresses. */
  apply?: string | ((network: SuiteNetwork, cluster: OracleCluster) => string);
  delete?: string[];
  mutate?: (cluster: OracleCluster) => void;
  /** Hand-written matrices by probe (`80/TCP`). */
  expect?: Record<string, string>;
  check?: (compiled: CompiledPolicies, cluster: OracleCluster) => void;
}

export const pod = (cluster: OracleCluster, name: string): OraclePod => cluster.pods.find((p) => `${p.namespace}/${p.name}` === name)!;

export const STEPS: Step[] = [
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
    name: 'egress ipBlock with except: z/a reaches every pod address except those of x',
    apply: (network) => `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: egress-cidr, namespace: z }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Egress]
  egress: [{ to: [{ ipBlock: { cidr: ${network.all}, except: [${network.namespaces['x']}] } }] }]`,
  },
  {
    name: 'ingress ipBlock /32 of a pod address (y/b → x/b)',
    apply: (_network, cluster) => `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: from-yb-address, namespace: x }
spec:
  podSelector: { matchLabels: { pod: b } }
  ingress: [{ from: [{ ipBlock: { cidr: ${pod(cluster, 'y/b').ip}/32 } }] }]`,
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

/**
 * Takes one step: its policies into `policies` (by namespace/name), its deletes out, its relabels into `cluster`;
 * returns the policies compiled for the cluster as it now is.
 */
export function takeStep(step: Step, policies: Map<string, NetworkPolicy>, network: SuiteNetwork, cluster: OracleCluster): CompiledPolicies {
  const yaml = typeof step.apply === 'function' ? step.apply(network, cluster) : step.apply;
  for (const policy of yaml === undefined ? [] : parsePolicies(yaml)) policies.set(policyKey(policy), policy);
  for (const key of step.delete ?? []) assert.ok(policies.delete(key), `${step.name}: ${key} to delete`);
  step.mutate?.(cluster);
  return compilePolicies([...policies.values()], clusterView(cluster));
}
