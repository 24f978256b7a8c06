/**
 * `sidecarless metadata` against the real API server and the real Kafka: objects created, relabeled and deleted
 * end as exactly their final states on the compacted topic, each state published once (per key, the sequence of
 * states has no repeat), deletions as tombstones; a restart of the role publishes nothing when nothing changed and
 * tombstones what was deleted while it was down; watermarks appear only once every informer is synced, and advance
 * while nothing changes. Each case has its own topic and namespace; objects are deleted whatever the result.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MetadataIndex } from '../../src/metadata/index/metadata-index.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { observedFlow, sec } from '../helpers/metadata.js';
import { kubeconfigVariant, kubeName, manifests, runningStatus, type Created } from '../helpers/kube.js';
import { assertNoRepeats, historyByKey, kubeStats, labelsOf, MetadataFixture, perKind, readMetadata, settle, synced } from '../helpers/metadata-role.js';

const fixture = new MetadataFixture();
const { kube } = fixture;

const createdNs = (object: Created) => BigInt(Date.parse(String(object.metadata.creationTimestamp))) * 1_000_000n;

describe('metadata from the API server', () => {
  before(() => fixture.requireStack());
  after(() => fixture.cleanup());

  it('publishes every state of pods, owners, services, slices, nodes and namespaces once, and tombstones deletions', async () => {
    const config = fixture.config();
    const started = await fixture.start(config);
    await synced(started);

    const ns = await kube.create(manifests.namespace(kubeName('md'), { team: 'a' }));
    const namespace = ns.metadata.name;
    const node = await kube.create(manifests.node(kubeName('md-node'), { zone: 'z1' }));
    await kube.patch(node, { status: { addresses: [{ type: 'Hostname', address: 'h' }, { type: 'InternalIP', address: '192.168.50.10' }] } }, 'status');
    const app = { app: 'web' };
    const deployment = await kube.create(manifests.deployment(namespace, 'web', app));
    const replicaSet = await kube.create(manifests.replicaSet(deployment));
    const pod1 = await kube.create(manifests.pod(namespace, 'web-5d8f-a', app, { owner: replicaSet, nodeName: node.metadata.name }));
    const pod2 = await kube.create(manifests.pod(namespace, 'web-5d8f-b', app, { owner: replicaSet, nodeName: node.metadata.name }));
    await kube.patch(pod1, runningStatus('10.244.7.1', 'c0ffee01'), 'status');
    await kube.patch(pod2, runningStatus('10.244.7.2', 'c0ffee02'), 'status');
    const service = await kube.create(manifests.service(namespace, 'web', app, 80, 8080));
    const slice = await kube.create(
      manifests.endpointSlice('web-x7', service, [{ pod: pod1, ip: '10.244.7.1', ready: true }, { pod: pod2, ip: '10.244.7.2', ready: true }], 8080),
    );

    const relabeled = await kube.patch(pod1, { metadata: { labels: { app: 'web', version: 'v2' } } });
    // Annotations are outside the contract: a new resourceVersion, the same state.
    await kube.patch(pod1, { metadata: { annotations: { note: 'not published' } } });
    await kube.patch(ns, { metadata: { labels: { team: 'b' } } });
    await kube.delete(pod2);
    await kube.patch(slice, { endpoints: [{ addresses: ['10.244.7.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: pod1.metadata.name, namespace, uid: pod1.metadata.uid } }] });
    await kube.delete(service);
    await kube.delete(node);

    const history = await settle(config, started, (h) => h.get(node.metadata.uid)?.at(-1) === null && h.get(slice.metadata.uid)?.length === 2);
    const mine = [ns, node, deployment, replicaSet, pod1, pod2, service, slice].map((object) => object.metadata.uid);
    assertNoRepeats(new Map([...history].filter(([key]) => mine.includes(key))));

    const nsName = { 'kubernetes.io/metadata.name': namespace };
    assert.deepEqual(labelsOf(history.get(ns.metadata.uid)), [JSON.stringify({ ...nsName, team: 'a' }), JSON.stringify({ ...nsName, team: 'b' })]);
    assert.deepEqual(history.get(node.metadata.uid)?.map((s) => s && s.node?.addresses), [[], ['192.168.50.10'], null]);
    assert.deepEqual(labelsOf(history.get(pod1.metadata.uid)), ['{"app":"web"}', '{"app":"web"}', '{"app":"web","version":"v2"}']);
    assert.deepEqual(history.get(pod2.metadata.uid)?.map((s) => s && `${s.pod?.phase} ${s.pod?.ips.join()}`), ['Pending ', 'Running 10.244.7.2', null]);
    assert.deepEqual(history.get(service.metadata.uid)?.map((s) => s && s.service?.cluster_ips), [service.spec && (service.spec as { clusterIPs: string[] }).clusterIPs, null]);
    assert.deepEqual(history.get(slice.metadata.uid)?.map((s) => s?.endpoint_slice?.endpoints.map((e) => e.pod_uid)), [[pod1.metadata.uid, pod2.metadata.uid], [pod1.metadata.uid]]);
    assert.deepEqual([history.get(deployment.metadata.uid)?.length, history.get(replicaSet.metadata.uid)?.length], [1, 1]);

    // The final state of each object, exactly (the change time: when it was observed, checked for order only).
    const final = history.get(pod1.metadata.uid)!.at(-1)!;
    assert.deepEqual(structuredClone({ ...final, change_time_ns: 0n }), {
      object_key: pod1.metadata.uid,
      kind: 'Pod',
      source: 'kubernetes/test',
      change_time_ns: 0n,
      created_time_ns: createdNs(pod1),
      resource_version: relabeled.metadata.resourceVersion,
      k8s_namespace_name: namespace,
      name: 'web-5d8f-a',
      labels: { app: 'web', version: 'v2' },
      owner: { kind: 'ReplicaSet', name: replicaSet.metadata.name, uid: replicaSet.metadata.uid },
      pod: { k8s_node_name: node.metadata.name, phase: 'Running', host_network: false, ips: ['10.244.7.1'], container_ids: ['c0ffee01'], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
      service: null,
      endpoint_slice: null,
      node: null,
      cgroup: null,
    });
    const states = history.get(pod1.metadata.uid)!.map((s) => s!.change_time_ns);
    assert.ok(states[0]! >= createdNs(pod1) && states[0]! < states[1]! && states[1]! < states[2]!, `change times in order: ${states.join(', ')}`);
    const rs = history.get(replicaSet.metadata.uid)![0]!;
    assert.deepEqual([structuredClone(rs.owner), rs.k8s_namespace_name, rs.created_time_ns], [{ kind: 'Deployment', name: 'web', uid: deployment.metadata.uid }, namespace, createdNs(replicaSet)]);
    const lastSlice = history.get(slice.metadata.uid)!.at(-1)!;
    assert.deepEqual(structuredClone(lastSlice.endpoint_slice), { service_name: 'web', address_type: 'IPv4', endpoints: [{ addresses: ['10.244.7.1'], pod_uid: pod1.metadata.uid, ready: true }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] });

    const { publisher } = started.role;
    assert.ok((publisher.stats.duplicates.Pod ?? 0) >= 1, 'the annotation-only change was suppressed');
    assert.deepEqual([kubeStats(started).restarts, kubeStats(started).relists], [perKind(0), perKind(0)]);
    assert.deepEqual(await started.reader.sum('sidecarless.metadata.events', 'kind'), publisher.stats.published);
    assert.deepEqual(await started.reader.sum('sidecarless.metadata.tombstones', 'kind'), publisher.stats.tombstones);
    // Watch lag: measured on watch events whose managedFields time advanced, at least each pod's creation (later
    // writes within the same second are not). The API server's whole seconds add up to 1 s to each value, and a
    // loaded machine more: the bound only catches a lag of another order.
    const lag = (await started.reader.histogram('sidecarless.metadata.watch_lag', 'kind')).Pod!;
    assert.ok(lag.count >= 2 && lag.max < 6, `Pod watch lag: ${lag.count} values, max ${lag.max} s`);
    const latency = await started.reader.histogram('sidecarless.metadata.publish_latency', 'kind');
    assert.equal(latency.Pod!.count, (publisher.stats.published.Pod ?? 0) + (publisher.stats.tombstones.Pod ?? 0));
    await started.stop();
  });

  it('publishes nothing on a restart when nothing changed, and after one tombstones what was deleted while it was down', async () => {
    const config = fixture.config();
    const ns = await kube.create(manifests.namespace(kubeName('md')));
    const namespace = ns.metadata.name;
    const kept = await kube.create(manifests.pod(namespace, 'kept', { app: 'a' }));
    const deleted = await kube.create(manifests.pod(namespace, 'deleted', { app: 'a' }));
    const first = await fixture.start(config);
    await synced(first);
    await settle(config, first, (h) => h.has(kept.metadata.uid) && h.has(deleted.metadata.uid));
    await first.stop();
    const before = await readMetadata(config);
    const objects = [...historyByKey(before)].filter(([key, states]) => !key.startsWith('watermark/') && states.at(-1) !== null).length;

    const second = await fixture.start(config);
    await synced(second);
    await second.stop();
    const { published, tombstones, duplicates } = second.role.publisher.stats;
    assert.deepEqual([published, tombstones], [{}, {}]);
    assert.equal(Object.values(duplicates).reduce((sum, n) => sum + n, 0), objects, 'every object was compared with what the topic holds');
    const again = await readMetadata(config);
    assert.deepEqual(
      again.filter((m) => !m.change.key.startsWith('watermark/')).length,
      before.filter((m) => !m.change.key.startsWith('watermark/')).length,
      'no message but watermarks',
    );

    // While no publisher runs: one pod deleted, one relabeled, one created.
    await kube.delete(deleted);
    const relabeled = await kube.patch(kept, { metadata: { labels: { app: 'b' } } });
    const added = await kube.create(manifests.pod(namespace, 'added', { app: 'a' }));
    const third = await fixture.start(config);
    await synced(third);
    const history = await settle(config, third, (h) => h.get(deleted.metadata.uid)?.at(-1) === null && h.has(added.metadata.uid));
    assert.deepEqual([third.role.publisher.stats.published, third.role.publisher.stats.tombstones], [{ Pod: 2 }, { Pod: 1 }]);
    assert.deepEqual(labelsOf(history.get(deleted.metadata.uid)), ['{"app":"a"}', 'deleted']);
    assert.deepEqual(labelsOf(history.get(kept.metadata.uid)), ['{"app":"a"}', '{"app":"b"}']);
    assert.equal(history.get(kept.metadata.uid)!.at(-1)!.resource_version, relabeled.metadata.resourceVersion);
    assert.deepEqual(labelsOf(history.get(added.metadata.uid)), ['{"app":"a"}']);
    assertNoRepeats(history);
    await third.stop();
  });

  it('times a deletion made while it was down just after its last watermark, so a pod that took over the IP meanwhile is named from its creation', async () => {
    const config = fixture.config();
    const ns = await kube.create(manifests.namespace(kubeName('md')));
    const namespace = ns.metadata.name;
    const [rs1, rs2] = await Promise.all(
      ['w1', 'w2'].map(async (name) => kube.create(manifests.replicaSet(await kube.create(manifests.deployment(namespace, name, { app: name }))))),
    );
    const ip = `10.251.${randomInt(256)}.${randomInt(1, 255)}`;
    const p1 = await kube.create(manifests.pod(namespace, 'p1', { app: 'w1' }, { owner: rs1 }));
    await kube.patch(p1, runningStatus(ip, 'c0ffee11'), 'status');
    const first = await fixture.start(config);
    await synced(first);
    const seen = await settle(config, first, (h) => h.get(p1.metadata.uid)?.at(-1)?.pod?.ips[0] === ip);
    await first.stop();
    const p1Seen = seen.get(p1.metadata.uid)!.at(-1)!.change_time_ns;
    // creationTimestamp is truncated to the second: p2's must be later than the stop to tell the times apart.
    const stoppedSecond = Math.floor(Date.now() / 1000);
    await waitFor(async () => Math.floor(Date.now() / 1000) > stoppedSecond, { timeoutMs: 2000, what: 'the next second' });

    // While no publisher runs: p1 is deleted, p2 (another workload) is created and gets the same IP.
    await kube.delete(p1);
    const p2 = await kube.create(manifests.pod(namespace, 'p2', { app: 'w2' }, { owner: rs2 }));
    await kube.patch(p2, runningStatus(ip, 'c0ffee12'), 'status');
    const second = await fixture.start(config);
    await synced(second);
    await settle(config, second, (h) => h.get(p1.metadata.uid)?.at(-1) === null && h.get(p2.metadata.uid)?.at(-1)?.pod?.ips[0] === ip);
    await second.stop();

    const messages = await readMetadata(config);
    const [p1End] = messages.flatMap(({ change }) => (change.key === p1.metadata.uid && 'deleted' in change ? [change.time_ns] : []));
    assert.ok(p1End! <= createdNs(p2), `p1's tombstone at ${p1End} ns, p2 created at ${createdNs(p2)} ns`);
    const index = new MetadataIndex({ labels: [], historyNs: sec(3600) });
    for (const { change } of messages) index.apply(change);
    const holder = (start: bigint) => {
      const { client } = index.joinFlow(observedFlow({ side: 'server', node: 'elsewhere', client: ip, server: '203.0.113.1', start }));
      return `${client.status} ${client.k8s_pod_name} ${client.k8s_workload_kind}/${client.k8s_workload_name}`;
    };
    assert.equal(holder(p1Seen), 'hit p1 Deployment/w1');
    assert.equal(holder(createdNs(p2) + 1_000_000n), 'hit p2 Deployment/w2');
  });

  it('publishes watermarks only once every informer has listed, and advances them while nothing changes', async () => {
    // A service account that may list and watch every kind but CronJobs: that informer cannot sync until granted.
    const ns = await kube.create(manifests.namespace(kubeName('md')));
    const account = kubeName('md-reader');
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const rule = (resources: string[]) => [
      { apiGroups: [''], resources: ['namespaces', 'nodes', 'pods', 'services'], verbs: ['list', 'watch'] },
      { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
      { apiGroups: ['apps'], resources: ['replicasets', 'deployments', 'statefulsets', 'daemonsets'], verbs: ['list', 'watch'] },
      { apiGroups: ['batch'], resources, verbs: ['list', 'watch'] },
    ];
    await kube.post(`/api/v1/namespaces/${ns.metadata.name}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: account } });
    await kube.post(`${rbac}/clusterroles`, { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: account }, rules: rule(['jobs']) });
    await kube.post(`${rbac}/clusterrolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: account },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: account },
      subjects: [{ kind: 'ServiceAccount', name: account, namespace: ns.metadata.name }],
    });
    const token = await kube.post(
      `/api/v1/namespaces/${ns.metadata.name}/serviceaccounts/${account}/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
      false,
    );
    const kubeconfig = kubeconfigVariant({ token: (token.status as { token: string }).token });
    fixture.defer(kubeconfig.remove);

    const config = fixture.config({ SIDECARLESS_METADATA_KUBECONFIG: kubeconfig.path });
    const started = await fixture.start(config);
    const { role } = started;
    await waitFor(async () => (kubeStats(started).restarts.CronJob ?? 0) >= 2 && (role.publisher.stats.published.Namespace ?? 0) > 0, {
      timeoutMs: 20_000,
      what: 'the CronJob informer to be refused twice while the others publish',
    });
    assert.deepEqual(structuredClone(started.telemetry.health().checks.source), { ok: false, detail: 'CronJob: down' });
    const topic = await readMetadata(config);
    assert.ok(topic.some((m) => m.change.key === ns.metadata.uid), 'objects are published meanwhile');
    assert.equal(topic.filter((m) => m.change.key.startsWith('watermark/')).length, 0, 'no watermark while an informer has not listed');
    assert.equal(role.publisher.stats.watermarks, 0);

    const granted = BigInt(Date.now()) * 1_000_000n;
    await kube.patch({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: account } }, { rules: rule(['jobs', 'cronjobs']) });
    await waitFor(async () => role.source.ready() && role.publisher.stats.watermarks >= 4, { timeoutMs: 40_000, what: 'the CronJob informer to list after the grant, and watermarks' });
    const cronJobWatching = BigInt(kubeStats(started).watchingSince.CronJob!) * 1_000_000n;
    await started.stop();
    const watermarks = (await readMetadata(config)).filter((m) => m.change.key === 'watermark/kubernetes/test').map((m) => ('event' in m.change ? m.change.event.change_time_ns : -1n));
    assert.ok(watermarks.length >= 4, `${watermarks.length} watermarks`);
    assert.ok(watermarks[0]! > granted, 'the first watermark follows the grant');
    // Claimed metadata.watermarkLagMs (2 s) behind the clock, and not before the CronJob informer watched for as long.
    assert.ok(watermarks[0]! >= cronJobWatching, `the first watermark (${watermarks[0]} ns) is not earlier than the CronJob informer's watch (${cronJobWatching} ns)`);
    assert.ok(watermarks.at(-1)! > watermarks.at(-2)!, 'the stop\'s watermark is the latest');
    // Idle: one every metadata.watermarkMs (200 ms), each later than the one before; the last one is the stop's.
    for (let i = 1; i < watermarks.length - 1; i++) {
      assert.ok(watermarks[i]! - watermarks[i - 1]! >= 150_000_000n, `watermark ${i} is ${watermarks[i]! - watermarks[i - 1]!} ns after the one before`);
    }
    assert.equal(role.publisher.stats.lastWatermarkNs, watermarks.at(-1));
  });
});
