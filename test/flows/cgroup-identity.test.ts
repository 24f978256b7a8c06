/**
 * Node-local identity end to end on the real kernel and broker: cgroups named as the kubelet and containerd name
 * them (below a test directory of their own, removed after), a process in one making a TCP connection, and the
 * collector (its own process) tracing the test directory. The metadata topic holds each cgroup's identity exactly
 * once, acknowledged before any flow that carries its id; a removed cgroup gets a tombstone; a restart publishes
 * only what changed while no collector ran.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
// Default import: kafkajs is CommonJS and Node cannot see ConfigResourceTypes as a named export of it.
import kafkajs, { type Admin } from 'kafkajs';
import { loadRegistry } from '../../src/common/avro.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { readToEnd, type ReadMessage } from '../../src/common/kafka/read-to-end.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { createLogger } from '../../src/common/logger.js';
import type { CgroupIdentityStats } from '../../src/collector/identity/cgroup-identities.js';
import { Cgroup } from '../../src/ebpf/cgroup.js';
import { bindCodec } from '../../src/events/contract.js';
import { FLOWS } from '../../src/events/flows.js';
import { bindMetadataCodec, cgroupKey, type CgroupState, type MetadataEvent } from '../../src/events/metadata.js';
import { topicSpecs } from '../../src/events/topics.js';
import { spawnInCgroup } from '../../src/lab/cgroup-spawn.js';
import { containerScope, newContainerId, newPodUid, podSlice } from '../../src/lab/kubelet-cgroup.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { cgroupEvent } from '../helpers/metadata.js';
import { requireStackService } from '../helpers/stack.js';

const registry = loadRegistry();
const metadataCodec = bindMetadataCodec(registry);
const flowsCodec = bindCodec(registry, FLOWS);
/** Ordering: no periodic scan in the test's time (the tree watch or the flow's own rescan publishes the new cgroup). */
const ordering = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50', SIDECARLESS_COLLECTOR_CGROUP_SCAN_MS: '600000' });
/** Lifecycle: removals are seen within a fifth of a second. */
const lifecycle = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50', SIDECARLESS_COLLECTOR_CGROUP_SCAN_MS: '200' });
/** The tree watch alone: no periodic scan in the test's time, and no flows. */
const watched = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50', SIDECARLESS_COLLECTOR_CGROUP_SCAN_MS: '600000' });
const NODE = lifecycle.config.node.name;
const logger = createLogger({ level: 'warn' });
const kafka = createKafka(kafkaOptionsFromConfig(lifecycle.config.kafka, 'test'), logger);
const admin = kafka.admin();
const TEST_ROOT = `sidecarless-test-identity-${randomBytes(4).toString('hex')}`;

/** A cgroup the test made, with what the collector publishes of it (known after it is removed too). */
interface Made {
  cgroup: Cgroup;
  id: bigint;
  /** Below the cgroup v2 mount. */
  path: string;
}

/** Every cgroup the test made, removed deepest first in after(). */
const created: Made[] = [];
let collector: CollectorProcess | undefined;
/** Every collector started, so that after() ends those a failed test left running (kill is idempotent). */
const launched: CollectorProcess[] = [];

async function startCollector(env: Record<string, string>, root: Made): Promise<CollectorProcess> {
  const started = await startCollectorProcess(env, (agent) => [root.cgroup.path, agent.path]);
  launched.push(started);
  return started;
}

function cgroup(path: string): Made {
  const made = Cgroup.create(`${TEST_ROOT}/${path}`);
  created.push({ cgroup: made, id: made.id, path: `/${TEST_ROOT}/${path}` });
  return created.at(-1)!;
}


/** A TCP connection over loopback whose both ends are sockets of a process in `where`. */
async function connectFrom({ cgroup: where }: Made): Promise<void> {
  const script = `const net = require('net');
const server = net.createServer((s) => s.on('data', (d) => s.end(d)));
server.listen(0, '127.0.0.1', () => {
  const c = net.connect(server.address().port, '127.0.0.1', () => c.write('ping'));
  c.on('data', () => c.end());
  c.on('close', () => server.close(() => console.log('done')));
});`;
  const child = spawnInCgroup(where, process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(`${code} ${out.trim()}`, '0 done');
}

async function messages(topic: string): Promise<ReadMessage[]> {
  const all: ReadMessage[] = [];
  await readToEnd(kafka, topic, (message) => all.push(message), { groupPrefix: 'sidecarless-test-identity', logger, timeoutMs: 30_000 });
  return all;
}

interface Published {
  key: string;
  /** null: a tombstone. */
  event: MetadataEvent | null;
  timestampMs: number;
}

/** The metadata topic's messages, decoded, ordered by timestamp then key (partitions interleave). */
async function metadata(prefix: string): Promise<Published[]> {
  const decoded = (await messages(`${prefix}metadata.v1`)).map((message) => {
    const change = metadataCodec.decode(message.key, message.value, message.timestamp);
    return { key: change.key, event: 'event' in change ? structuredClone(change.event) : null, timestampMs: Number(message.timestamp) };
  });
  return decoded.sort((a, b) => a.timestampMs - b.timestampMs || a.key.localeCompare(b.key));
}

async function waitForMetadata(prefix: string, count: number): Promise<Published[]> {
  let found: Published[] = [];
  await waitFor(async () => (found = await metadata(prefix)).length >= count, { timeoutMs: 30_000, what: `${count} messages on ${prefix}metadata.v1` });
  assert.equal(found.length, count, JSON.stringify(found.map((p) => p.key)));
  return found;
}

const state = (made: Made, podUid: string | null = null, container: string | null = null): CgroupState => ({
  k8s_node_name: NODE,
  cgroup_id: made.id,
  cgroup_path: made.path,
  k8s_pod_uid: podUid,
  container_id: container,
});

/** The message the collector publishes for a cgroup's identity, observed at `atMs`. */
const identity = (cgroupState: CgroupState, atMs: number): Published => ({ ...cgroupEvent(cgroupState, BigInt(atMs) * 1_000_000n), timestampMs: atMs });

/**
 * On a topic stamped with the writer's time (CreateTime), each state's message timestamp is its change time: the
 * collector sets both from the scan, and a reader of tombstones has only the timestamp.
 */
async function assertStampedByCollector(topic: string, published: readonly Published[]): Promise<void> {
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['message.timestamp.type'] }],
  });
  assert.equal(resources[0]?.configEntries[0]?.configValue, 'CreateTime', topic);
  for (const { key, event, timestampMs } of published) {
    if (event !== null) assert.equal(BigInt(timestampMs) * 1_000_000n, event.change_time_ns, `${key}: timestamp ${timestampMs}, change_time_ns ${event.change_time_ns}`);
  }
}

/** `ms` lies in `from`..`to` (wall clock, milliseconds). */
function assertWithin(ms: number, from: number, to: number, what: string): void {
  assert.ok(from <= ms && ms <= to, `${what} at ${ms}, not in ${from}..${to}`);
}

function identityStats(process: CollectorProcess): CgroupIdentityStats {
  const final = process.logs.find((entry) => entry.msg === 'collector final counts') as { cgroupIdentities: CgroupIdentityStats } | undefined;
  assert.ok(final, 'the collector logged its final counts');
  return final.cgroupIdentities;
}

/**
 * The ordering test's metadata topic: compacted like the catalog's, but stamped by the broker as it appends each
 * message (so are its flows), which orders identities and flows across the two topics.
 */
async function createOrderingTopics(admin: Admin, which: ReadonlyArray<'metadata' | 'flows'>): Promise<void> {
  const specs = topicSpecs(ordering.config.kafka.topicPrefix, { partitions: 2 });
  const appendTime = which.map((role) => ({ ...specs[role], configs: { ...specs[role].configs, 'message.timestamp.type': 'LogAppendTime' } }));
  // A topic just deleted may still be on its way out: created again once the broker lets it.
  await waitFor(async () => (await ensureTopics(admin, appendTime).then(() => true, () => false)), { timeoutMs: 30_000, what: `${which.join(', ')} created` });
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await createOrderingTopics(admin, ['metadata', 'flows']);
});

after(() =>
  cleanUpAll([
    ...launched.map((started) => [`the collector (pid ${started.pid})`, () => started.kill()] as const),
    ['the admin client', () => admin.disconnect()],
    ...[ordering, lifecycle, watched].map(({ env }) => ['the collector pins', () => uninstallCollectorPins(env)] as const),
    ...created.sort((a, b) => b.path.length - a.path.length).map((made) => [`cgroup ${made.path}`, () => made.cgroup.remove()] as const),
    ['the test root cgroup', () => created.length > 0 && Cgroup.at(TEST_ROOT).remove()],
    ...[ordering, lifecycle, watched].map(({ config }) => [`the topics ${config.kafka.topicPrefix}*`, () => dropTestData(config, undefined)] as const),
  ]),
);

describe('cgroup identities on the metadata topic', () => {
  it("a new container's identity, with its pod uid and container id, is acknowledged before the flows that carry its cgroup id, also when Kafka refuses identities for a while", async () => {
    const prefix = ordering.config.kafka.topicPrefix;
    const uid = newPodUid();
    const root = cgroup('ordering');
    const kubepods = cgroup('ordering/kubepods.slice');
    const pod = cgroup(`ordering/${podSlice({ qos: 'guaranteed', podUid: uid })}`);
    collector = await startCollector(ordering.env, root);
    const started = await waitForMetadata(prefix, 3);
    // The broker stamps each partition's batch as it appends it: compare as a set, in key order.
    assert.deepEqual(
      [...started].sort((a, b) => a.key.localeCompare(b.key)).map((published) => published.event?.cgroup),
      [state(kubepods), state(pod, uid), state(root)].sort((a, b) => cgroupKey(NODE, a.cgroup_id).localeCompare(cgroupKey(NODE, b.cgroup_id))),
    );

    // Kafka stops taking identities (their topic is gone) and goes on taking flows.
    await admin.deleteTopics({ topics: [`${prefix}metadata.v1`] });
    await waitFor(async () => !(await admin.listTopics()).includes(`${prefix}metadata.v1`), { timeoutMs: 30_000, what: 'the metadata topic gone' });
    const id = newContainerId();
    const container = cgroup(`ordering/${containerScope({ qos: 'guaranteed', podUid: uid, containerId: id })}`);
    await connectFrom(container);
    await waitFor(async () => collector!.logs.some((entry) => entry.msg === 'Kafka unavailable; cgroup identities, and the flows that need them, wait'), {
      timeoutMs: 30_000,
      what: 'the collector failing to publish the identity',
    });
    const takenAgainAt = Date.now();
    await createOrderingTopics(admin, ['metadata']);

    let carrying: Array<{ timestampMs: number; sides: string[] }> = [];
    await waitFor(
      async () => {
        carrying = (await messages(`${prefix}flows.v1`)).flatMap((message) => {
          const events = flowsCodec.decode(message.value!).filter((event) => event.cgroup_id === container.id);
          return events.length === 0 ? [] : [{ timestampMs: Number(message.timestamp), sides: events.map((event) => event.observer_side) }];
        });
        return carrying.flatMap((message) => message.sides).length >= 2;
      },
      { timeoutMs: 30_000, what: "both ends' flows from the container's cgroup" },
    );
    assert.deepEqual(carrying.flatMap((message) => message.sides).sort(), ['client', 'server']);
    // Read to the end now that the flows are there, as the enricher does: the identity is in it, and was appended
    // before any of them (none was appended while the identity could not be).
    const [published, ...more] = await metadata(prefix);
    assert.deepEqual(more, []);
    assert.deepEqual(published!.event?.cgroup, state(container, uid, id));
    const firstFlow = Math.min(...carrying.map((message) => message.timestampMs));
    assert.ok(takenAgainAt <= published!.timestampMs && published!.timestampMs <= firstFlow, `identity appended at ${published!.timestampMs}, topic back at ${takenAgainAt}, first flow at ${firstFlow}`);
    assert.ok(!started.some((message) => message.key === cgroupKey(NODE, collector!.cgroup.id)), "the collector's own cgroup is not published");

    const stats = await collector.stop();
    assert.deepEqual(stats.drops, {});
    assert.deepEqual(identityStats(collector), { states: 4, tombstones: 0, drops: {} });
    collector = undefined;
  });

  describe('the lifecycle of cgroups', () => {
    const prefix = lifecycle.config.kafka.topicPrefix;
    const uid = newPodUid();
    const ids = [newContainerId(), newContainerId(), newContainerId()];
    const scope = (containerId: string) => cgroup(`lifecycle/${containerScope({ qos: 'burstable', podUid: uid, containerId })}`);
    let tree: Made[];
    let containers: Made[];
    let firstRun: Published[];

    it('each traced cgroup once, at the time of the scan, with the pod and container its name gives', async () => {
      tree = [
        cgroup('lifecycle'),
        cgroup('lifecycle/kubepods.slice'),
        cgroup('lifecycle/kubepods.slice/kubepods-burstable.slice'),
        cgroup(`lifecycle/${podSlice({ qos: 'burstable', podUid: uid })}`),
      ];
      containers = [scope(ids[0]!), scope(ids[1]!)];
      const startedAt = Date.now();
      collector = await startCollector(lifecycle.env, tree[0]!);
      firstRun = await waitForMetadata(prefix, 6);
      await assertStampedByCollector(`${prefix}metadata.v1`, firstRun);
      const at = firstRun[0]!.timestampMs;
      assertWithin(at, startedAt, Date.now(), 'the first scan');
      const expected = [
        ...tree.slice(0, 3).map((made) => state(made)),
        state(tree[3]!, uid),
        state(containers[0]!, uid, ids[0]),
        state(containers[1]!, uid, ids[1]),
      ].map((cgroupState) => identity(cgroupState, at));
      assert.deepEqual(firstRun, expected.sort((a, b) => a.key.localeCompare(b.key)));
    });

    it('a removed cgroup is tombstoned, stamped with the scan that found it gone', async () => {
      const removedAt = Date.now();
      containers[1]!.cgroup.remove();
      const all = await waitForMetadata(prefix, 7);
      const seenAt = Date.now();
      const tombstone = all.at(-1)!;
      assert.deepEqual({ ...tombstone, timestampMs: 0 }, { key: cgroupKey(NODE, containers[1]!.id), event: null, timestampMs: 0 });
      assertWithin(tombstone.timestampMs, removedAt, seenAt, 'the tombstone');
    });

    it('a restart publishes only what changed while no collector ran, and nothing twice', async () => {
      await collector!.stop();
      assert.deepEqual(identityStats(collector!), { states: 6, tombstones: 1, drops: {} });
      const before = await metadata(prefix);
      const added = scope(ids[2]!);
      containers[0]!.cgroup.remove();
      const restartedAt = Date.now();
      collector = await startCollector(lifecycle.env, tree[0]!);
      const all = await waitForMetadata(prefix, 9);
      await assertStampedByCollector(`${prefix}metadata.v1`, all);
      assert.deepEqual(all.slice(0, 7), before);
      const at = all[7]!.timestampMs;
      // The removal happened while no collector ran: its tombstone is stamped with the first scan of the next one.
      assertWithin(at, restartedAt, Date.now(), 'the first scan after the restart');
      assert.deepEqual(all.slice(7), [identity(state(added, uid, ids[2]), at), { key: cgroupKey(NODE, containers[0]!.id), event: null, timestampMs: at }].sort((a, b) => a.key.localeCompare(b.key)));
      // Scans go on every 200 ms: none of them may publish anything again.
      await connectFrom(added);
      await collector.stop();
      assert.deepEqual(identityStats(collector), { states: 1, tombstones: 1, drops: {} });
      collector = undefined;
      assert.equal((await metadata(prefix)).length, 9);
    });
  });

  it('a cgroup tree made at once and a removal are published by the tree watch, with no periodic scan and no flow', async () => {
    const prefix = watched.config.kafka.topicPrefix;
    const root = cgroup('watched');
    collector = await startCollector(watched.env, root);
    const [first] = await waitForMetadata(prefix, 1);
    assert.deepEqual(first!.event?.cgroup, state(root));
    const uid = newPodUid();
    const id = newContainerId();
    // Four levels made within microseconds: the deeper ones exist before any watch on their parents does.
    const madeAt = Date.now();
    const tree = [
      cgroup('watched/kubepods.slice'),
      cgroup('watched/kubepods.slice/kubepods-besteffort.slice'),
      cgroup(`watched/${podSlice({ qos: 'besteffort', podUid: uid })}`),
    ];
    const container = cgroup(`watched/${containerScope({ qos: 'besteffort', podUid: uid, containerId: id })}`);
    const added = (await waitForMetadata(prefix, 5)).slice(1);
    const seenAt = Date.now();
    // The first level's event may call for a scan while the deeper levels are still being made: those are then
    // published by the next scan, the one the new watches call for. Each identity is stamped with its own scan.
    for (const published of added) assertWithin(published.timestampMs, madeAt, seenAt, `the scan that published ${published.key}`);
    const byKey = (a: { key: string }, b: { key: string }) => a.key.localeCompare(b.key);
    const expected = [state(tree[0]!), state(tree[1]!), state(tree[2]!, uid), state(container, uid, id)].map((cgroupState) => ({ key: cgroupKey(NODE, cgroupState.cgroup_id), cgroupState }));
    assert.deepEqual([...added].sort(byKey).map((published) => published.event?.cgroup), expected.sort(byKey).map(({ cgroupState }) => cgroupState));
    for (const published of added) assert.deepEqual(published, identity(published.event!.cgroup!, published.timestampMs));

    const removedAt = Date.now();
    container.cgroup.remove();
    const tombstone = (await waitForMetadata(prefix, 6)).at(-1)!;
    assert.deepEqual({ ...tombstone, timestampMs: 0 }, { key: cgroupKey(NODE, container.id), event: null, timestampMs: 0 });
    assertWithin(tombstone.timestampMs, removedAt, Date.now(), 'the tombstone');
    await collector.stop();
    assert.deepEqual(identityStats(collector), { states: 5, tombstones: 1, drops: {} });
    collector = undefined;
  });
});
