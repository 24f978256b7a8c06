/**
 * `sidecarless policy apply | list | delete` as a user runs it (the built command in a child process) against the
 * real Kafka, on a topic prefix of its own: apply publishes exactly the validated documents (read back from the
 * topic with the contract's codec), list prints the live ones, delete publishes a tombstone; a file with invalid
 * YAML, an unknown field or a bad CIDR is refused with the field path and publishes nothing (the topic's end
 * offsets do not move).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadRegistry } from '../../src/common/avro.js';
import { createKafka } from '../../src/common/kafka/client.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { policyFromEvent } from '../../src/events/networkpolicy/event.js';
import { podIdentityId, podIdentityKey } from '../../src/enforcer/compile/identities.js';
import { bindMetadataCodec, METADATA, metadataEvent, type MetadataEvent } from '../../src/events/metadata.js';
import { bindPoliciesCodec, POLICIES, type PolicyChange } from '../../src/events/policies.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const BIN = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));
const prefix = `${uniqueName('policy-cli-')}.`;
const topic = `${prefix}${POLICIES.topic}`;
const metadataTopic = `${prefix}${METADATA.topic}`;
const logger = createLogger({ level: 'warn' });
const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, logger);
const admin = kafka.admin();
const codec = bindPoliciesCodec(loadRegistry());
const codecMetadata = bindMetadataCodec(loadRegistry());
const dir = mkdtempSync(join(tmpdir(), 'policy-cli-'));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function sidecarless(...args: string[]): Promise<Run> {
  const env = { ...process.env, SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix, SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','), SIDECARLESS_KAFKA_PARTITIONS: '3' };
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, 'policy', ...args], { env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout: string; stderr: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Every message of the topic, decoded, in partition then offset order. */
async function messages(): Promise<PolicyChange[]> {
  const read: Array<{ partition: number; offset: bigint; change: PolicyChange }> = [];
  await readToEnd(kafka, topic, (m) => void read.push({ partition: m.partition, offset: BigInt(m.offset), change: codec.decode(m.key, m.value) }), { groupPrefix: uniqueName('policy-cli-read-'), logger, timeoutMs: 30_000 });
  return read.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset)).map((r) => r.change);
}

async function endOffsets(): Promise<string> {
  return JSON.stringify((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p.high]).sort());
}

const TWO = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-all, namespace: shop }
spec: { podSelector: {}, policyTypes: [Ingress, Egress] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: shop, annotations: { policy.sidecarless.dev/audit: "true" } }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress:
  - from: [{ namespaceSelector: { matchLabels: { team: a } }, podSelector: { matchExpressions: [{ key: tier, operator: In, values: [front] }] } }, { ipBlock: { cidr: 10.0.0.0/8, except: [10.1.0.0/16] } }]
    ports: [{ port: 8080, endPort: 8090 }, { port: http, protocol: TCP }, { protocol: UDP }]
  egress: [{ to: [{ ipBlock: { cidr: "2001:db8::/32" } }] }]
`;

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
});

after(async () => {
  await cleanUpAll([
    ['delete topics', () => admin.deleteTopics({ topics: [topic, metadataTopic] })],
    ['admin', () => admin.disconnect()],
    ['temporary files', () => rmSync(dir, { recursive: true, force: true })],
  ]);
});

describe('sidecarless policy', () => {
  it('apply, list and delete round-trip the exact documents', async () => {
    const applied = await sidecarless('apply', '-f', file('two.yaml', TWO));
    assert.deepEqual([applied.code, applied.stdout], [0, 'shop/deny-all published\nshop/web published\n'], applied.stderr);

    const published = await messages();
    assert.deepEqual(published.map((m) => m.key).sort(), ['shop/deny-all', 'shop/web']);
    const expected = parsePolicies(TWO);
    for (const change of published) {
      assert.ok('event' in change);
      assert.deepEqual(policyFromEvent(change.event), expected.find((p) => `${p.namespace}/${p.name}` === change.key));
      assert.match(change.event.source, /^cli\/.+@.+$/);
    }

    const listed = await sidecarless('list', '-o', 'yaml');
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(parsePolicies(listed.stdout), expected);
    const table = await sidecarless('list');
    assert.deepEqual(
      table.stdout.trim().split('\n').map((line) => line.split('\t').slice(0, 3)),
      [
        ['shop/deny-all', 'Ingress,Egress', 'enforce'],
        ['shop/web', 'Ingress,Egress', 'audit'],
      ],
    );

    const deleted = await sidecarless('delete', 'shop/web');
    assert.deepEqual([deleted.code, deleted.stdout], [0, 'shop/web deleted\n']);
    const after = await messages();
    assert.deepEqual(after.filter((m) => m.key === 'shop/web').map((m) => 'deleted' in m), [false, true]);
    const remaining = await sidecarless('list', '-o', 'yaml');
    assert.deepEqual(parsePolicies(remaining.stdout), [expected[0]]);
  });

  it('refuses invalid YAML, an unknown field and a bad CIDR with the field path, and publishes nothing', async () => {
    await sidecarless('apply', '-f', file('seed.yaml', TWO)); // the topic exists and holds something
    const before = await endOffsets();
    const [good, web] = TWO.split('---') as [string, string];
    const cases: Array<[string, string, string]> = [
      ['invalid YAML', `${good}---\nspec: { podSelector: {\n`, 'document 2: invalid YAML: '],
      ['unknown field', `${good}---\n${good.replace('podSelector: {}', 'podSelector: {}, ingres: []').replace('deny-all', 'other')}`, 'document 2 (shop/other): spec.ingres: unknown field (known here: podSelector, policyTypes, ingress, egress)'],
      ['bad CIDR', `${good}---\n${web.replace('10.0.0.0/8', '10.0.0.0/33')}`, 'document 2 (shop/web): spec.ingress[0].from[1].ipBlock.cidr: "10.0.0.0/33" is not a CIDR'],
    ];
    for (const [what, text, message] of cases) {
      const refused = await sidecarless('apply', '-f', file(`${what}.yaml`, text));
      assert.equal(refused.code, 1, what);
      assert.equal(refused.stdout, '', what);
      assert.ok(refused.stderr.includes('is refused, nothing was published'), refused.stderr);
      assert.ok(refused.stderr.includes(message), `${what}: ${refused.stderr}`);
    }
    assert.equal(await endOffsets(), before);
  });

  it('explain reads both topics to their ends and names the rules that decide', async () => {
    const at = BigInt(Date.now()) * 1_000_000n;
    const object = (kind: 'Namespace' | 'Pod', uid: string, namespace: string, name: string, labels: Record<string, string>, pod: MetadataEvent['pod'] = null) =>
      codecMetadata.encode(metadataEvent({ object_key: uid, kind, source: 'kubernetes/test', change_time_ns: at, k8s_namespace_name: namespace, name, labels, pod }));
    const podState = (ip: string, ports: Array<{ name: string; port: number; protocol: string }>) => ({ k8s_node_name: 'n1', phase: 'Running', host_network: false, ips: [ip], container_ids: [], ports });
    const producer = kafka.producer();
    await producer.connect();
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: metadataTopic, numPartitions: 3, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] });
    await producer.send({
      topic: metadataTopic,
      acks: -1,
      messages: [
        { key: 'ns-shop', value: object('Namespace', 'ns-shop', '', 'shop', { team: 'a' }) },
        { key: 'web-1', value: object('Pod', 'web-1', 'shop', 'web-1', { app: 'web' }, podState('10.9.0.1', [{ name: 'http', port: 8443, protocol: 'TCP' }])) },
        { key: 'client', value: object('Pod', 'client', 'shop', 'client', { tier: 'front' }, podState('10.9.0.2', [])) },
      ],
    });
    await producer.disconnect();
    const allow = await sidecarless('apply', '-f', file('allow.yaml', `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-web, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: a } } }], ports: [{ port: 8443 }] }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: client-out, namespace: shop }
spec:
  podSelector: { matchLabels: { tier: front } }
  egress: [{ to: [{ podSelector: { matchLabels: { app: web } } }], ports: [{ port: http }] }]
`));
    assert.equal(allow.code, 0, allow.stderr);
    const web = podIdentityId(podIdentityKey('shop', { app: 'web' }, [{ name: 'http', protocol: 'TCP', port: 8443 }]));
    const client = podIdentityId(podIdentityKey('shop', { tier: 'front' }, []));

    const allowed = await sidecarless('explain', '--from', 'shop/client', '--to', 'shop/web-1', '--port', '8443/tcp');
    assert.equal(allowed.code, 0, allowed.stderr);
    const lines = allowed.stdout.trim().split('\n');
    assert.equal(lines[0], 'shop/client → shop/web-1 8443/TCP: ALLOWED');
    assert.equal(lines[1], `egress of shop/client (identity ${client}): allowed`);
    assert.ok(lines.includes(`  entry TCP 8443-8443 peer ${web}: shop/client-out egress[0]`), allowed.stdout);
    assert.ok(lines.includes(`  entry TCP 8443-8443 peer ${client}: shop/allow-web ingress[0]`), allowed.stdout);

    const denied = await sidecarless('explain', '--from', 'shop/web-1', '--to', 'shop/client', '--port', '80');
    // shop/deny-all (the first test's) selects every pod of shop both ways, without rules; shop/web (audit) selects
    // web-1 both ways; client-out has egress rules and no policyTypes, so it isolates the client's ingress too.
    assert.equal(
      denied.stdout,
      [
        'shop/web-1 → shop/client 80/TCP: DENIED',
        `egress of shop/web-1 (identity ${web}): denied: no rule of the policies that select it allows this`,
        '  selected by: shop/deny-all, shop/web',
        `  peer: pod identity ${client}, prefix 10.0.0.0/8`,
        `ingress of shop/client (identity ${client}): denied: no rule of the policies that select it allows this`,
        '  selected by: shop/client-out, shop/deny-all',
        `  peer: pod identity ${web}, prefix 10.0.0.0/8`,
        '',
      ].join('\n'),
    );

    const missing = await sidecarless('explain', '--from', 'shop/nobody', '--to', 'shop/web-1', '--port', '80');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /shop\/nobody: no such running pod/);
  });

  it('usage errors exit 2', async () => {
    assert.equal((await sidecarless('apply')).code, 2);
    assert.equal((await sidecarless('delete', 'no-slash')).code, 2);
    assert.equal((await sidecarless('list', 'extra')).code, 2);
    assert.equal((await sidecarless('frobnicate')).code, 2);
    assert.equal((await sidecarless('explain', '--from', 'a/b', '--to', 'c/d', '--port', '70000')).code, 2);
  });
});
