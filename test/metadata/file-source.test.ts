/**
 * The file source: a YAML file of manifests publishes the same events as the API server's informers for the same
 * objects (real API server, real Kafka), follows the file's changes, and refuses a bad file whole, naming the
 * document, line and field, while the last good state stays published. Parsing alone is checked without Kafka.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { DecodeError } from '../../src/common/errors.js';
import type { MetadataEvent } from '../../src/events/metadata.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { FileSource, manifestEvents, parseManifests } from '../../src/metadata/watch/file-source.js';
import { kubeName, manifests, runningStatus, type Created } from '../helpers/kube.js';
import { labelsOf, MetadataFixture, settle, synced } from '../helpers/metadata-role.js';

const dir = mkdtempSync(join(tmpdir(), 'sidecarless-metadata-file-'));
const FILE = 'hosts.yaml';

const GOOD = `# Two hosts without Kubernetes, described as objects.
apiVersion: v1
kind: Namespace
metadata: {name: shop, uid: ns-shop}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: shop
  uid: pod-web-1
  labels: {app: web}
spec:
  nodeName: host-a
  containers: [{name: web, ports: [{containerPort: 8080}]}]
status:
  podIP: 192.168.10.5
---
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop, uid: svc-web}
  spec: {clusterIP: 10.96.0.20, selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop, uid: deploy-web}
`;

/** The parse error's message, or a failure when the text parses. */
function refusal(text: string): string {
  try {
    manifestEvents(parseManifests(text, FILE), FILE, 'file/test', () => 1n);
  } catch (error) {
    assert.ok(error instanceof DecodeError, String(error));
    return error.message;
  }
  return assert.fail('the file was accepted');
}

describe('metadata file: parsing', () => {
  it('reads every document and the items of a List, skipping empty documents, with their places', () => {
    const parsed = parseManifests(GOOD, FILE);
    assert.deepEqual(
      parsed.map(({ kind, where }) => [kind, where]),
      [
        ['Namespace', 'document 1 (line 2)'],
        ['Pod', 'document 2 (line 6)'],
        ['Service', 'document 4, items[0] (line 23)'],
        ['Deployment', 'document 4, items[1] (line 27)'],
      ],
    );
    const events = manifestEvents(parsed, FILE, 'file/test', () => 7n);
    assert.deepEqual(structuredClone(events.get('pod-web-1')?.pod), { k8s_node_name: 'host-a', phase: '', host_network: false, ips: ['192.168.10.5'], container_ids: [], ports: [{ name: '', port: 8080, protocol: 'TCP' }] });
    assert.deepEqual(structuredClone(events.get('svc-web')?.service?.cluster_ips), ['10.96.0.20']);
  });

  it('names the document, line and field of what it refuses', () => {
    assert.equal(refusal(GOOD.replace('  uid: pod-web-1\n', '')), 'hosts.yaml: document 2 (line 6): metadata.uid is required');
    assert.equal(refusal(GOOD.replace('containerPort: 8080', 'containerPort: "8080"')), 'hosts.yaml: document 2 (line 6): spec.containers[0].ports[0].containerPort: expected a number, got "8080"');
    assert.equal(refusal(GOOD.replace('kind: Deployment', 'kind: ConfigMap')), `hosts.yaml: document 4, items[1] (line 27): kind: expected one of Namespace, Node, Pod, Service, EndpointSlice, ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob, got "ConfigMap"`);
    assert.equal(refusal(GOOD.replace('apiVersion: apps/v1', 'apiVersion: v1')), 'hosts.yaml: document 4, items[1] (line 27): apiVersion: expected apps/v1 for a Deployment, got "v1"');
    assert.equal(refusal(GOOD.replace('uid: deploy-web', 'uid: svc-web')), 'hosts.yaml: document 4, items[1] (line 27): metadata.uid "svc-web" is already the uid of document 4, items[0] (line 23)');
    assert.match(refusal(GOOD.replace('labels: {app: web}', 'labels: {app: web')), /^hosts\.yaml: document 2: line 1[0-9], column \d+: /);
    assert.equal(refusal('- just\n- a list\n'), 'hosts.yaml: document 1 (line 1): expected a Kubernetes object (a mapping with kind and metadata)');
  });
});

describe('metadata file: as a source', () => {
  const fixture = new MetadataFixture();
  const { kube } = fixture;
  before(() => fixture.requireStack());
  after(async () => {
    await fixture.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(options: { file?: string } = {}) {
    const config = fixture.config();
    return { config, started: await fixture.start(config, options) };
  }

  const withoutSource = (event: MetadataEvent | null | undefined) => event && structuredClone({ ...event, source: '', change_time_ns: 0n });

  it('publishes what the informers publish for the same objects, follows changes, and keeps the last good state of a bad file', async () => {
    const ns = await kube.create(manifests.namespace(kubeName('md'), { team: 'a' }));
    const namespace = ns.metadata.name;
    const node = await kube.create(manifests.node(kubeName('md-node')));
    await kube.patch(node, { status: { addresses: [{ type: 'InternalIP', address: '192.168.60.1' }] } }, 'status');
    const app = { app: 'web' };
    const deployment = await kube.create(manifests.deployment(namespace, 'web', app));
    const replicaSet = await kube.create(manifests.replicaSet(deployment));
    const pod = await kube.create(manifests.pod(namespace, 'web-1-a', app, { owner: replicaSet, nodeName: node.metadata.name }));
    await kube.patch(pod, runningStatus('10.244.9.1', 'fade01'), 'status');
    const service = await kube.create(manifests.service(namespace, 'web', app, 80, 'http'));
    const slice = await kube.create(manifests.endpointSlice('web-a', service, [{ pod, ip: '10.244.9.1', ready: true }], 8080));
    const objects: Created[] = await Promise.all([ns, node, deployment, replicaSet, pod, service, slice].map((object) => kube.read(object)));
    const uids = objects.map((object) => object.metadata.uid);

    // The informers' view.
    const api = await start();
    await synced(api.started);
    const fromApi = await settle(api.config, api.started, (h) => uids.every((uid) => h.has(uid)));
    await api.started.stop();

    // The same objects as a file, exactly as the API server returns them (managedFields, annotations and all).
    const file = join(dir, 'cluster.yaml');
    writeFileSync(file, objects.map((object) => stringify(object)).join('---\n'));
    const { config, started } = await start({ file });
    const fromFile = await settle(config, started, (h) => uids.every((uid) => h.has(uid)));
    for (const uid of uids) {
      assert.equal(fromFile.get(uid)![0]!.source, 'file/test');
      assert.deepEqual(fromFile.get(uid)!.map(withoutSource), fromApi.get(uid)!.map(withoutSource), `${uid}: the same events from both sources`);
    }

    // A file the source cannot use: refused whole, nothing withdrawn.
    const source = started.role.source as FileSource;
    const before = started.role.publisher.stats;
    const broken = objects.map((object, i) => stringify(i === 2 ? { ...object, metadata: { ...object.metadata, uid: undefined } } : object));
    writeFileSync(file, broken.join('---\n'));
    await waitFor(async () => source.refusals === 1, { timeoutMs: 10_000, what: 'the broken file to be refused' });
    const health = started.telemetry.health().checks.source!;
    assert.equal(health.ok, false);
    assert.match(health.detail!, /cluster\.yaml: document 3 \(line \d+\): metadata\.uid is required$/);
    const after = started.role.publisher.stats;
    assert.deepEqual([after.published, after.tombstones], [before.published, before.tombstones]);

    // Fixed again, without the pod and with the Service relabeled: a tombstone and one new state.
    const fixed = objects.filter((object) => object.kind !== 'Pod').map((object) => (object.kind === 'Service' ? { ...object, metadata: { ...object.metadata, labels: { tier: 'front' } } } : object));
    writeFileSync(file, fixed.map((object) => stringify(object)).join('---\n'));
    const history = await settle(config, started, (h) => h.get(pod.metadata.uid)?.at(-1) === null && h.get(service.metadata.uid)?.length === 2);
    assert.deepEqual(labelsOf(history.get(service.metadata.uid)), ['{}', '{"tier":"front"}']);
    assert.deepEqual(labelsOf(history.get(pod.metadata.uid)), ['{"app":"web"}', 'deleted']);
    for (const uid of uids.filter((uid) => uid !== pod.metadata.uid && uid !== service.metadata.uid)) assert.equal(history.get(uid)!.length, 1, `${uid} unchanged`);
    assert.equal(started.telemetry.health().checks.source!.ok, true);
    assert.deepEqual([source.reads, source.refusals], [2, 1]);
    await started.stop();
  });

  it('refuses to start on a bad file, naming the document and field', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, GOOD.replace('uid: svc-web', 'uid: 42'));
    await assert.rejects(start({ file }), (error: unknown) => {
      assert.ok(error instanceof DecodeError);
      assert.equal(error.message, `${file}: document 4, items[0] (line 23): metadata.uid: expected a string, got 42`);
      return true;
    });
  });
});
