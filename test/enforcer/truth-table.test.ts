/**
 * The Kubernetes netpol e2e suite's truth tables, in pure form: namespaces x, y, z with pods a, b, c, each serving
 * TCP 80 and 81 (and UDP 80); after each policy step (cumulative: applies, updates, deletes, relabels), the 9×9
 * matrix of every port from `explain` over the compiled MapState must equal the one an independent oracle
 * (netpol-oracle.ts, written from the spec text) gives, and for the first steps and some single policies a literal
 * matrix written by hand.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compilePolicies } from '../../src/enforcer/compile/compile.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import type { NetworkPolicy, Protocol } from '../../src/events/networkpolicy/types.js';
import { oracleSides, type OraclePod } from './netpol-oracle.js';
import { clusterView, explainedMatrix, freshCluster, matrix, PROBES, PURE_NETWORK, rows, STEPS, takeStep } from './netpol-steps.js';

describe('NetworkPolicy truth tables (x, y, z × a, b, c)', () => {
  it('every step: the matrix explain reads from the compiled maps equals the oracle and the hand-written ones', () => {
    const cluster = freshCluster();
    const policies = new Map<string, NetworkPolicy>();
    const nonTrivial = new Set<string>();
    for (const step of STEPS) {
      const compiled = takeStep(step, policies, PURE_NETWORK, cluster);
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
