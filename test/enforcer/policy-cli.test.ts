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
import { parsePolicies } from '../../src/enforcer/policy/document.js';
import { policyFromEvent } from '../../src/enforcer/policy/event.js';
import { bindPoliciesCodec, POLICIES, type PolicyChange } from '../../src/events/policies.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const BIN = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));
const prefix = `${uniqueName('policy-cli-')}.`;
const topic = `${prefix}${POLICIES.topic}`;
const logger = createLogger({ level: 'warn' });
const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, logger);
const admin = kafka.admin();
const codec = bindPoliciesCodec(loadRegistry());
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
    ['delete topic', () => admin.deleteTopics({ topics: [topic] })],
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
      ['invalid YAML', `${good}---\nspec: { podSelector: {\n`, 'document 1: invalid YAML: '],
      ['unknown field', `${good}---\n${good.replace('podSelector: {}', 'podSelector: {}, ingres: []').replace('deny-all', 'other')}`, 'document 1 (shop/other): spec.ingres: unknown field (known here: podSelector, policyTypes, ingress, egress)'],
      ['bad CIDR', `${good}---\n${web.replace('10.0.0.0/8', '10.0.0.0/33')}`, 'document 1 (shop/web): spec.ingress[0].from[1].ipBlock.cidr: "10.0.0.0/33" is not a CIDR'],
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

  it('usage errors exit 2', async () => {
    assert.equal((await sidecarless('apply')).code, 2);
    assert.equal((await sidecarless('delete', 'no-slash')).code, 2);
    assert.equal((await sidecarless('list', 'extra')).code, 2);
    assert.equal((await sidecarless('frobnicate')).code, 2);
  });
});
