/**
 * `sidecarless metadata` when the API server goes away (real API server, real etcd, real Kafka). These cases
 * restart the stack's API server (kubernetesServer.down/up, always leaving it running), so they must not run
 * beside other tests that use it (npm test runs one file at a time).
 *
 * 1. The API server restarted mid-watch: every informer stops and is restarted (counted) until the server is back;
 *    no watermark claims completeness meanwhile; changes made after the restart arrive, nothing is published twice.
 * 2. A watch that resumes from a resourceVersion the server no longer has (410) relists, and the relist publishes
 *    only the differences. How the test gets there: the role reaches the API server through a relay that the test
 *    cuts, so its informers stop and keep their resourceVersions; meanwhile objects change and etcd is compacted to
 *    its current revision. The API server's watch cache keeps events past an etcd compaction (measured: a resumed
 *    watch was served from it), so the server is then restarted: its cache starts from the compacted store and
 *    neither can serve the role's resourceVersions. With the relay open again, every informer resumes, is refused
 *    with 410, and lists again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kubeApiServerPort, localEtcdUrl, localHost } from '../../src/lab/stack/endpoints.js';
import { kubernetesServer } from '../../src/lab/stack/kubernetes.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { OBJECT_KINDS } from '../../src/metadata/watch/kinds.js';
import { kubeconfigVariant, kubeName, manifests } from '../helpers/kube.js';
import { assertNoRepeats, kubeStats, labelsOf, MetadataFixture, perKind, readMetadata, settle, synced } from '../helpers/metadata-role.js';
import { TcpRelay } from '../helpers/tcp-relay.js';

const fixture = new MetadataFixture();
const { kube } = fixture;

const everyKind = (counts: Partial<Record<string, number>>, atLeast: number) => OBJECT_KINDS.every((kind) => (counts[kind] ?? 0) >= atLeast);

async function start(extra: Record<string, string> = {}) {
  const config = fixture.config(extra);
  return { config, started: await fixture.start(config) };
}

/** Restarts the API server (and its etcd), leaving it running even when the stop fails half-way. */
async function restartApiServer(): Promise<void> {
  try {
    await kubernetesServer.down();
  } finally {
    await kubernetesServer.up();
  }
}

/** Compacts etcd's history up to its current revision; returns that revision. */
async function compactEtcd(): Promise<number> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${localEtcdUrl}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!response.ok) throw new Error(`etcd ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { header: { revision: string } };
  };
  // Any range answers with the store's current revision in its header.
  const revision = Number((await post('/v3/kv/range', { key: Buffer.from('\0').toString('base64') })).header.revision);
  await post('/v3/kv/compaction', { revision, physical: true });
  return revision;
}

describe('metadata when the API server goes away', () => {
  before(() => fixture.requireStack());
  after(() => fixture.cleanup());

  it('restarts its informers through an API server restart, claims no watermark meanwhile, and publishes later changes once', async () => {
    const { config, started } = await start();
    const { role } = started;
    await synced(started);
    const ns = await kube.create(manifests.namespace(kubeName('md')));
    const pod = await kube.create(manifests.pod(ns.metadata.name, 'web', { app: 'a' }));
    await settle(config, started, (h) => h.has(pod.metadata.uid));

    let watermarkWhileDown: bigint | undefined;
    try {
      await kubernetesServer.down();
      await waitFor(async () => !role.source.ready() && everyKind(kubeStats(started).restarts, 1), { timeoutMs: 30_000, what: 'every informer to stop' });
      watermarkWhileDown = role.publisher.stats.lastWatermarkNs;
      // Another failed restart of each informer is a second and more: no watermark may come meanwhile.
      await waitFor(async () => everyKind(kubeStats(started).restarts, 2), { timeoutMs: 30_000, what: 'a second failed restart of every informer' });
      assert.equal(role.publisher.stats.lastWatermarkNs, watermarkWhileDown, 'no watermark while the API server is down');
      assert.equal(started.telemetry.health().checks.source?.ok, false);
    } finally {
      await kubernetesServer.up();
    }

    await kube.patch(pod, { metadata: { labels: { app: 'b' } } });
    const added = await kube.create(manifests.pod(ns.metadata.name, 'added', { app: 'a' }));
    const history = await settle(config, started, (h) => h.has(added.metadata.uid) && labelsOf(h.get(pod.metadata.uid)).length === 2, 60_000);
    assert.deepEqual(labelsOf(history.get(pod.metadata.uid)), ['{"app":"a"}', '{"app":"b"}']);
    assert.deepEqual(labelsOf(history.get(added.metadata.uid)), ['{"app":"a"}']);
    assertNoRepeats(history);
    assert.ok(role.publisher.stats.lastWatermarkNs > watermarkWhileDown!, 'watermarks resume');
    assert.ok(role.source.ready());
    await started.stop();
  });

  it('relists after a 410 when it resumes from a compacted resourceVersion, publishing only what changed', async () => {
    const relay = await TcpRelay.open({ host: localHost, port: kubeApiServerPort });
    fixture.defer(() => relay.cut());
    const kubeconfig = kubeconfigVariant({ port: relay.port });
    fixture.defer(kubeconfig.remove);
    const { config, started } = await start({ SIDECARLESS_METADATA_KUBECONFIG: kubeconfig.path });
    const { role } = started;
    await synced(started);
    const ns = await kube.create(manifests.namespace(kubeName('md')));
    const [kept, relabeled, deleted] = await Promise.all(['kept', 'relabeled', 'deleted'].map((name) => kube.create(manifests.pod(ns.metadata.name, name, { app: 'a' }))));
    await settle(config, started, (h) => [kept, relabeled, deleted].every((p) => h.has(p!.metadata.uid)));

    await relay.cut();
    await waitFor(async () => everyKind(kubeStats(started).restarts, 1), { timeoutMs: 30_000, what: 'every informer to stop' });
    const before = role.publisher.stats;
    await kube.patch(relabeled!, { metadata: { labels: { app: 'b' } } });
    const deletedAfterNs = BigInt(Date.now()) * 1_000_000n;
    await kube.delete(deleted!);
    const added = await kube.create(manifests.pod(ns.metadata.name, 'added', { app: 'a' }));
    const compacted = await compactEtcd();
    assert.ok(compacted > Number(added.metadata.resourceVersion) - 1);
    await restartApiServer();
    assert.deepEqual(kubeStats(started).relists, perKind(0), 'nothing relisted before the relay opens');
    await relay.resume();

    const history = await settle(config, started, (h) => h.get(deleted!.metadata.uid)?.at(-1) === null && h.has(added.metadata.uid), 60_000);
    assert.deepEqual(kubeStats(started).relists, perKind(1));
    assert.deepEqual(await started.reader.sum('sidecarless.metadata.relists', 'kind'), perKind(1));
    assert.deepEqual(labelsOf(history.get(relabeled!.metadata.uid)), ['{"app":"a"}', '{"app":"b"}']);
    assert.deepEqual(labelsOf(history.get(deleted!.metadata.uid)), ['{"app":"a"}', 'deleted']);
    assert.deepEqual(labelsOf(history.get(kept!.metadata.uid)), ['{"app":"a"}']);
    assertNoRepeats(history);
    // The relist did not see the deletion happen: it is timed just after the last watermark before the cut, not at
    // the relist (which would keep the pod's IP held until then).
    const [tombstoneNs] = (await readMetadata(config)).flatMap(({ change }) => (change.key === deleted!.metadata.uid && 'deleted' in change ? [change.time_ns] : []));
    const watermarkMs = (before.lastWatermarkNs / 1_000_000n) * 1_000_000n;
    assert.ok(tombstoneNs! < deletedAfterNs && tombstoneNs! >= watermarkMs, `tombstone at ${tombstoneNs} ns (ms), deletion after ${deletedAfterNs} ns, last watermark ${before.lastWatermarkNs} ns`);
    // What the relist published: the three changes, nothing else of the whole cluster.
    const after = role.publisher.stats;
    const delta = (a: Partial<Record<string, number>>, b: Partial<Record<string, number>>) =>
      Object.fromEntries(Object.keys(a).map((kind) => [kind, (a[kind] ?? 0) - (b[kind] ?? 0)]).filter(([, n]) => n !== 0));
    assert.deepEqual([delta(after.published, before.published), delta(after.tombstones, before.tombstones)], [{ Pod: 2 }, { Pod: 1 }]);
    await started.stop();
  });
});
