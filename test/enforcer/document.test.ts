/**
 * Policy documents: what parses (with the API server's defaults) and every kind of rejection, each with its exact
 * document index, policy name, field path and reason; a file with one bad document yields nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePolicies, PolicyDocumentError, type DocumentProblem } from '../../src/events/networkpolicy/document.js';

const HEAD = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: p, namespace: x }\n';

/** The problems of a text that must be refused. */
function problems(text: string): DocumentProblem[] {
  try {
    parsePolicies(text);
  } catch (error) {
    assert.ok(error instanceof PolicyDocumentError, String(error));
    return [...error.problems];
  }
  assert.fail('expected the text to be refused');
}

/** One document with `spec` (YAML flow text), refused with exactly one problem at `field`. */
function refusedAt(spec: string, field: string, reason: string | RegExp): void {
  const found = problems(`${HEAD}spec: ${spec}`);
  assert.equal(found.length, 1, JSON.stringify(found));
  assert.equal(found[0]!.field, field);
  assert.equal(found[0]!.document, 0);
  assert.equal(found[0]!.policy, 'x/p');
  if (typeof reason === 'string') assert.equal(found[0]!.reason, reason);
  else assert.match(found[0]!.reason, reason);
}

describe('parsePolicies: accepted documents', () => {
  it('applies the API defaults and sorts what has no order', () => {
    const [policy, second] = parsePolicies(`${HEAD}spec:
  podSelector: { matchLabels: { z: "1", a: "2" } }
  egress: [{ to: [{ ipBlock: { cidr: "2001:db8::/32", except: ["2001:db8:1::/48"] } }], ports: [{ port: 53, protocol: UDP }, { port: 80, endPort: 90 }, {}] }]
---
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: q, annotations: { policy.sidecarless.dev/audit: "true", other: x } }
spec: { podSelector: { matchExpressions: [{ key: app, operator: In, values: [b, a, b] }] }, ingress: [{}] }
`);
    assert.deepEqual(policy, {
      namespace: 'x',
      name: 'p',
      audit: false,
      spec: {
        podSelector: { matchLabels: { a: '2', z: '1' }, matchExpressions: [] },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress: [
          {
            peers: [{ podSelector: null, namespaceSelector: null, ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:1::/48'] } }],
            ports: [
              { protocol: 'UDP', port: 53, endPort: null },
              { protocol: 'TCP', port: 80, endPort: 90 },
              { protocol: 'TCP', port: null, endPort: null },
            ],
          },
        ],
      },
    });
    assert.deepEqual(second, {
      namespace: 'default',
      name: 'q',
      audit: true,
      spec: { podSelector: { matchLabels: {}, matchExpressions: [{ key: 'app', operator: 'In', values: ['a', 'b'] }] }, policyTypes: ['Ingress'], ingress: [{ ports: [], peers: [] }], egress: [] },
    });
  });

  it('an empty file is no policies', () => {
    assert.deepEqual(parsePolicies(''), []);
    assert.deepEqual(parsePolicies('---\n---\n'), []);
  });
});

describe('parsePolicies: rejections name the document, the field and the reason', () => {
  it('invalid YAML', () => {
    const found = problems(`${HEAD}spec: { podSelector: {}\n`);
    assert.equal(found.length, 1);
    assert.equal(found[0]!.field, '');
    assert.match(found[0]!.reason, /^invalid YAML: /);
  });

  it('a duplicated key is invalid YAML', () => {
    assert.match(problems(`${HEAD}spec: { podSelector: {}, podSelector: {} }`)[0]!.reason, /^invalid YAML: Map keys must be unique/);
  });

  it('unknown fields, at any depth', () => {
    refusedAt('{ podSelecter: {} }', 'spec.podSelecter', 'unknown field (known here: podSelector, policyTypes, ingress, egress)');
    refusedAt('{ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 10.0.0.0/8, exept: [] } }] }] }', 'spec.ingress[0].from[0].ipBlock.exept', /^unknown field/);
    refusedAt('{ podSelector: {}, egress: [{ from: [] }] }', 'spec.egress[0].from', 'unknown field (known here: ports, to)');
    assert.deepEqual(problems(`${HEAD}status: {}\nspec: { podSelector: {} }`).map((p) => p.field), ['status']);
  });

  it('apiVersion and kind', () => {
    const found = problems('apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { podSelector: {} }');
    assert.deepEqual(
      found.map((p) => [p.field, p.reason]),
      [
        ['apiVersion', 'string "v1" is not networking.k8s.io/v1'],
        ['kind', 'string "Pod" is not NetworkPolicy'],
      ],
    );
  });

  it('names', () => {
    assert.deepEqual(
      problems('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { namespace: x }\nspec: {}').map((p) => [p.field, p.reason]),
      [['metadata.name', 'is required']],
    );
    assert.deepEqual(
      problems('apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: Bad_Name, namespace: x.y }\nspec: {}').map((p) => p.field),
      ['metadata.name', 'metadata.namespace'],
    );
  });

  it('bad CIDRs, IPv4 and IPv6', () => {
    const at = 'spec.ingress[0].from[1].ipBlock.cidr';
    for (const cidr of ['10.0.0/8', '10.0.0.0/33', '10.0.0.0', '010.0.0.0/8', '2001:db8::/129', '2001:db8:::/32', 'fe80::1%eth0/64']) {
      refusedAt(`{ podSelector: {}, ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: "${cidr}" } }] }] }`, at, `${JSON.stringify(cidr)} is not a CIDR (a.b.c.d/n with n ≤ 32, or an IPv6 address/n with n ≤ 128)`);
    }
  });

  it('except must lie strictly inside cidr, of the same family', () => {
    const spec = (except: string) => `{ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: 10.0.0.0/16, except: ["10.0.1.0/24", "${except}"] } }] }] }`;
    for (const except of ['10.1.0.0/24', '10.0.0.0/16', '10.0.0.0/8', '::/0']) {
      refusedAt(spec(except), 'spec.egress[0].to[0].ipBlock.except[1]', `${JSON.stringify(except)} is not strictly inside cidr "10.0.0.0/16"`);
    }
    refusedAt('{ podSelector: {}, egress: [{ to: [{ ipBlock: { except: [] } }] }] }', 'spec.egress[0].to[0].ipBlock.cidr', 'is required');
  });

  it('a peer: ipBlock alone, and something in it', () => {
    refusedAt('{ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 10.0.0.0/8 }, podSelector: {} }] }] }', 'spec.ingress[0].from[0]', 'ipBlock cannot be combined with podSelector or namespaceSelector');
    refusedAt('{ podSelector: {}, ingress: [{ from: [{}] }] }', 'spec.ingress[0].from[0]', 'a peer needs podSelector, namespaceSelector or ipBlock');
  });

  it('selectors: label keys and values, operators and their values', () => {
    refusedAt('{ podSelector: { matchLabels: { "-bad": x } } }', 'spec.podSelector.matchLabels.-bad', /^"-bad" is not a label key: its name must be/);
    refusedAt('{ podSelector: { matchLabels: { "Example.com/app": x } } }', 'spec.podSelector.matchLabels.Example.com/app', /its prefix must be a lower-case DNS subdomain/);
    refusedAt('{ podSelector: { matchLabels: { app: "no spaces" } } }', 'spec.podSelector.matchLabels.app', /^"no spaces" is not a label value/);
    refusedAt(`{ podSelector: { matchLabels: { app: "${'a'.repeat(64)}" } } }`, 'spec.podSelector.matchLabels.app', /is not a label value: at most 63/);
    const expression = (text: string) => `{ podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: a, operator: Exists }, ${text}] } }] }] }`;
    const at = 'spec.ingress[0].from[0].namespaceSelector.matchExpressions[1]';
    refusedAt(expression('{ key: a, operator: Equals, values: [x] }'), `${at}.operator`, '"Equals" is not an operator (In, NotIn, Exists, DoesNotExist)');
    refusedAt(expression('{ key: a, operator: In, values: [] }'), `${at}.values`, 'must not be empty when the operator is In');
    refusedAt(expression('{ key: a, operator: NotIn }'), `${at}.values`, 'must not be empty when the operator is NotIn');
    refusedAt(expression('{ key: a, operator: DoesNotExist, values: [x] }'), `${at}.values`, 'must be empty when the operator is DoesNotExist');
    refusedAt(expression('{ key: a, operator: In, values: [ok, "not ok"] }'), `${at}.values[1]`, /^"not ok" is not a label value/);
    refusedAt(expression('{ key: "a/b/c", operator: Exists }'), `${at}.key`, /is not a label key/);
    refusedAt(expression('{ operator: Exists }'), `${at}.key`, 'is required');
    refusedAt(expression('{ key: a }'), `${at}.operator`, 'is required');
    refusedAt(expression('{ key: a, operator: In, values: [1] }'), `${at}.values[0]`, 'expected a string, got number 1');
  });

  it('ports: numbers, names, ranges and protocols', () => {
    const port = (text: string) => `{ podSelector: {}, ingress: [{ ports: [{ port: 80 }, ${text}] }] }`;
    const at = 'spec.ingress[0].ports[1]';
    refusedAt(port('{ port: 0 }'), `${at}.port`, /^number 0 is not a port/);
    refusedAt(port('{ port: 65536 }'), `${at}.port`, /^number 65536 is not a port/);
    refusedAt(port('{ port: Http }'), `${at}.port`, /^string "Http" is not a port/);
    refusedAt(port('{ port: "123" }'), `${at}.port`, /^string "123" is not a port/);
    refusedAt(port('{ port: a--b }'), `${at}.port`, /^string "a--b" is not a port/);
    refusedAt(port('{ port: abcdefghijklmnop }'), `${at}.port`, /^string "abcdefghijklmnop" is not a port/);
    refusedAt(port('{ port: http, endPort: 90 }'), `${at}.endPort`, 'needs a numeric port');
    refusedAt(port('{ endPort: 90 }'), `${at}.endPort`, 'needs a numeric port');
    refusedAt(port('{ port: 90, endPort: 80 }'), `${at}.endPort`, '80 is below port 90');
    refusedAt(port('{ port: 90, endPort: 65536 }'), `${at}.endPort`, 'number 65536 is not a port number 1-65535');
    refusedAt(port('{ port: 90, protocol: ICMP }'), `${at}.protocol`, '"ICMP" is not a protocol (TCP, UDP, SCTP)');
    refusedAt(port('{ port: 90, protocol: tcp }'), `${at}.protocol`, '"tcp" is not a protocol (TCP, UDP, SCTP)');
  });

  it('policyTypes', () => {
    refusedAt('{ podSelector: {}, policyTypes: [Ingress, Both] }', 'spec.policyTypes[1]', '"Both" is not a policy type (Ingress, Egress)');
    refusedAt('{ podSelector: {}, policyTypes: [Egress, Egress] }', 'spec.policyTypes[1]', 'Egress is listed twice');
  });

  it('wrong types', () => {
    refusedAt('{ podSelector: {}, ingress: {} }', 'spec.ingress', 'expected a list, got an object');
    refusedAt('{ podSelector: [] }', 'spec.podSelector', 'expected an object, got a list');
  });

  it('every problem of every document, and nothing from a file with one', () => {
    const good = `${HEAD}spec: { podSelector: {} }`;
    const found = problems(`${good}\n---\n${HEAD.replace('name: p', 'name: q')}spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: nope } }], ports: [{ port: 0 }] }] }\n---\n${good}`);
    assert.deepEqual(
      found.map((p) => [p.document, p.policy, p.field]),
      [
        [1, 'x/q', 'spec.ingress[0].from[0].ipBlock.cidr'],
        [1, 'x/q', 'spec.ingress[0].ports[0].port'],
        [2, 'x/p', 'metadata.name'],
      ],
    );
    assert.equal(found[2]!.reason, 'document 1 already defines x/p');
  });

  it('the error message names document, policy and field', () => {
    assert.throws(() => parsePolicies(`${HEAD}spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 1.2.3.4/40 } }] }] }`), {
      message: 'document 1 (x/p): spec.ingress[0].from[0].ipBlock.cidr: "1.2.3.4/40" is not a CIDR (a.b.c.d/n with n ≤ 32, or an IPv6 address/n with n ≤ 128)',
    });
  });
});
