/**
 * The metadata role's NetworkPolicy watch (src/metadata/watch/policy-watch.ts) against the real API server and
 * Kafka: policies written with the API (as `kubectl apply` would) reach the policies topic with exactly their
 * content, once per change; deletions become tombstones, also those made while no role ran; a policy the API server
 * accepts but sidecarless's checks refuse is counted and not published; a policy another writer published (the
 * CLI) is left alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadRegistry } from '../../src/common/avro.js';
import type { Config } from '../../src/common/config.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { KeyedKafkaSink } from '../../src/common/kafka/sink.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { policyFromEvent, policyToEvent } from '../../src/events/networkpolicy/event.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { bindPoliciesCodec, type PolicyChange } from '../../src/events/policies.js';
import { topicSpecs } from '../../src/events/topics.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { kubeName, manifests } from '../helpers/kube.js';
import { kafkaOf, MetadataFixture } from '../helpers/metadata-role.js';

const fixture = new MetadataFixture();
const { kube } = fixture;
const codec = bindPoliciesCodec(loadRegistry());

/** Every message of the policies topic, in offset order per key. */
async function policyMessages(config: Config): Promise<Map<string, PolicyChange[]>> {
  const byKey = new Map<string, PolicyChange[]>();
  await readToEnd(kafkaOf(config), topicSpecs(config.kafka.topicPrefix).policies.topic, ({ key, value }) => {
    const change = codec.decode(key, value);
    byKey.set(change.key, [...(byKey.get(change.key) ?? []), change]);
  }, { groupPrefix: 'test-policies', logger: createLogger({ level: 'warn' }) });
  return byKey;
}

const networkPolicy = (namespace: string, name: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace, name, annotations },
  spec,
});

/** What `policy apply` would publish for the same document (as read back): the watch must publish the same content. */
const expectedContent = (yaml: string) => JSON.stringify(policyFromEvent(policyToEvent(parsePolicies(yaml)[0]!, 'cli/test', 0n)));
const contentOf = (change: PolicyChange | undefined) => (change === undefined || 'deleted' in change ? 'deleted' : JSON.stringify(policyFromEvent(change.event)));

describe('the metadata role publishes NetworkPolicies to the policies topic', () => {
  before(() => fixture.requireStack());
  after(() => fixture.cleanup());

  it('publishes each change once, tombstones deletions (also while down), refuses what fails the checks, leaves other writers alone', async () => {
    const config = fixture.config();
    const namespace = (await kube.create(manifests.namespace(kubeName('np')))).metadata.name;
    const key = (name: string) => `${namespace}/${name}`;
    const webSpec = (port: number) => ({ podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'shop' } } }], ports: [{ port }] }] });
    const webYaml = (port: number) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: ${namespace}}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: shop}}}], ports: [{port: ${port}}]}]}`;
    const web = await kube.create(networkPolicy(namespace, 'web', webSpec(80)));
    await kube.create(
      networkPolicy(namespace, 'egress-audit', { podSelector: {}, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }] }, { 'policy.sidecarless.dev/audit': 'true' }),
    );
    await kube.create(networkPolicy(namespace, 'odd', { podSelector: {} }, { 'policy.sidecarless.dev/audit': 'yes' }));
    // Another writer's policy under this namespace: the CLI's (which creates the topic as the role would).
    const admin = kafkaOf(config).admin();
    await admin.connect();
    await ensureTopics(admin, [topicSpecs(config.kafka.topicPrefix).policies]).finally(() => admin.disconnect());
    const sink = new KeyedKafkaSink(kafkaOf(config), topicSpecs(config.kafka.topicPrefix).policies.topic);
    const cliPolicy = parsePolicies(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: from-cli, namespace: ${namespace}}\nspec: {podSelector: {}}`)[0]!;
    assert.deepEqual(await sink.send([{ key: key('from-cli'), value: codec.encode(policyToEvent(cliPolicy, 'cli/test', 1n)), timestampMs: String(Date.now()) }]), { ok: true });
    await sink.shutdown();

    let started = await fixture.start(config);
    const settled = (want: (messages: Map<string, PolicyChange[]>) => boolean) =>
      waitFor(async () => want(await policyMessages(config)), { timeoutMs: 20_000, what: 'the policies topic to settle' });
    await settled((m) => m.has(key('web')) && m.has(key('egress-audit')));
    let messages = await policyMessages(config);
    assert.equal(contentOf(messages.get(key('web'))!.at(-1)), expectedContent(webYaml(80)));
    const audit = messages.get(key('egress-audit'))!.at(-1)!;
    assert.deepEqual('deleted' in audit ? audit : { audit: audit.event.audit, source: audit.event.source }, { audit: true, source: 'kubernetes/test' });
    assert.equal(messages.has(key('odd')), false, 'an audit annotation that is not "true" or "false" is refused');
    assert.equal(started.role.policies!.stats.rejected, 1);

    // A change of content is published; a change of labels only (same content) is not.
    await kube.patch(web, { spec: { ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'shop' } } }], ports: [{ port: 8080 }] }] } });
    await kube.patch(web, { metadata: { labels: { owner: 'sre' } } });
    await settled((m) => contentOf(m.get(key('web'))?.at(-1)) === expectedContent(webYaml(8080)));
    await kube.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name: 'egress-audit' } });
    await settled((m) => contentOf(m.get(key('egress-audit'))?.at(-1)) === 'deleted');
    // web twice (the label-only patch is no news), egress-audit once and its tombstone; odd refused.
    assert.deepEqual(started.role.policies!.stats, { published: 3, tombstones: 1, rejected: 1 });
    await started.stop();

    // While no role runs: web is deleted, late is created.
    await kube.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace, name: 'web' } });
    await kube.create(networkPolicy(namespace, 'late', { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'] }));
    started = await fixture.start(config);
    await settled((m) => contentOf(m.get(key('web'))?.at(-1)) === 'deleted' && m.has(key('late')));
    // The restarted watch sent exactly late and web's tombstone (and refused odd again): nothing twice.
    await waitFor(async () => started.role.policies!.stats.rejected === 1, { timeoutMs: 20_000, what: 'odd refused again' });
    assert.deepEqual(started.role.policies!.stats, { published: 1, tombstones: 1, rejected: 1 });
    messages = await policyMessages(config);
    const history = Object.fromEntries([...messages].filter(([k]) => k.startsWith(`${namespace}/`)).map(([k, changes]) => [k.slice(namespace.length + 1), changes.map(contentOf).map((c) => (c === 'deleted' ? c : 'state'))]));
    assert.deepEqual(history, {
      'from-cli': ['state'],
      web: ['state', 'state', 'deleted'],
      'egress-audit': ['state', 'deleted'],
      late: ['state'],
    });
  });
});
