/**
 * `sidecarless enforcer` as it runs on a node: a separate process following the real Kafka topics, fed by the
 * metadata role watching the real API server (lab pods of a described cluster: x/a serving TCP 80, 81 and 82, y/a
 * serving 80) and by `sidecarless policy apply`, enforcing with the real kernel. Pods probe each other with real
 * connect()s from inside their network namespaces and cgroups.
 *
 *   1. a policy applied while the enforcer runs changes the matrix (y/a may reach x/a:80 only); a NetworkPolicy
 *      created through the API server (published by the metadata role's watch) isolates x/a, and its deletion lifts it;
 *   2. a policy message that does not decode and one with a bad CIDR, published between valid ones, go to the
 *      dead-letter topic with their offsets and reasons, while the valid update beside them is enforced;
 *   3. the enforcer is SIGKILLed, a policy is applied while it is down, it is started again: its pins enforce the old
 *      state until the replay has applied the new one, a probe loop throughout never sees a connection that both
 *      forbid, and its maps then equal those of an enforcer that never stopped (a second one, in this process,
 *      with its programs detached so that it cannot hide a gap of the first);
 *   4. stopped, its pins deny y/a's probes; an enforcer of another layout starts: each of those denials, which only
 *      the old layout's ring held, is published once, and the new layout reports the next ones.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadRegistry } from '../../src/common/avro.js';
import { loadConfig, type Config } from '../../src/common/config.js';
import { createKafka } from '../../src/common/kafka/client.js';
import { readToEnd } from '../../src/common/kafka/read-to-end.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { PolicyApplier, type NodeMapState } from '../../src/enforcer/apply/applier.js';
import { DEFAULT_POLICY_KERNEL_OPTIONS, PolicyKernel } from '../../src/enforcer/apply/kernel.js';
import { parsePolicies } from '../../src/events/networkpolicy/document.js';
import { policyToEvent } from '../../src/events/networkpolicy/event.js';
import { startEnforcer, type RunningEnforcer } from '../../src/enforcer/role.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { cgroup2Root } from '../../src/ebpf/preflight.js';
import { bindDeadLetterCodec, type DeadLetterEvent } from '../../src/events/deadletter.js';
import { bindPoliciesCodec } from '../../src/events/policies.js';
import { topicSpecs } from '../../src/events/topics.js';
import { bindVerdictsCodec, type VerdictEvent } from '../../src/events/verdicts.js';
import { describeCluster } from '../../src/lab/cluster-description.js';
import { launch } from '../../src/lab/agent-launch.js';
import type { ProbeParams, ProbeResult } from '../../src/lab/agents/protocol.js';
import { labNames } from '../../src/lab/names.js';
import { destroyAll } from '../../src/lab/pods.js';
import { probeMatrix, startDescribedCluster, type DescribedCluster } from '../../src/lab/reachability.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { KubeObjects } from '../helpers/kube.js';
import { startEnforcerProcess, type EnforcerProcess } from '../../src/lab/enforcer-process.js';
import { deleteMetadataTopic, metadataConfig, startRole, type StartedRole } from '../helpers/metadata-role.js';
import { policyApply } from '../helpers/policy.js';
import { requireStackService } from '../helpers/stack.js';
import { outcomeRows } from './lab-policy.js';

const id = randomBytes(3).toString('hex');
const x = `x-${id}`;
const y = `y-${id}`;
const description = describeCluster({ [x]: { ns: 'x' }, [y]: { ns: 'y' } }, [
  { namespace: x, name: 'a', ports: [80, 81, 82] },
  { namespace: y, name: 'a', ports: [80] },
]);

/** The egress of every pod of y: to x/a on `ports` only. One key (y/egress) throughout: each version replaces the last. */
const egress = (...ports: number[]) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: ${y}}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}]
    ports: [${ports.map((port) => `{port: ${port}}`).join(', ')}]
`;

/** y/a's row per port (columns x/a, y/a) under egress(...allowed): '.' reached, 'D' denied at connect(). */
const yRow = (port: number, allowed: number[]) => `y/a ${allowed.includes(port) ? '.' : 'D'}D`;
/** x/a's rows, which no policy selects: x/a serves 80-82, y/a 80 (R: refused). */
const X_ROWS: Record<number, string> = { 80: 'x/a ..', 81: 'x/a .R', 82: 'x/a .R' };
const PORTS = [80, 81, 82];

const prefix = `enforcer-${id}.`;
const pinsOf = (name: string) => `/sys/fs/bpf/sidecarless-test-enforcer-${name}-${id}`;
const logger = createLogger({ level: 'warn' });
const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, logger);
const topics = topicSpecs(prefix);
const verdictsCodec = bindVerdictsCodec(loadRegistry());

/** Every event on verdicts.v1 so far, read by a consumer group of its own. */
async function readVerdicts(groupPrefix: string): Promise<VerdictEvent[]> {
  const events: VerdictEvent[] = [];
  await readToEnd(kafka, topics.verdicts.topic, (message) => void events.push(...verdictsCodec.decode(message.value!)), { groupPrefix, logger, timeoutMs: 30_000 });
  return events;
}

/** What every process of the test (the enforcers, `policy apply`) is told of Kafka. */
const kafkaEnv = { SIDECARLESS_KAFKA_BROKERS: localKafkaBrokers.join(','), SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix, SIDECARLESS_KAFKA_PARTITIONS: '3' };

function enforcerEnv(cgroup: string, pins: string): Record<string, string> {
  return {
    ...kafkaEnv,
    SIDECARLESS_ENFORCER_CGROUPS: cgroup,
    // No periodic walk in the test's time: a container made while it runs is seen by the cgroup tree watch alone.
    SIDECARLESS_ENFORCER_CGROUP_SCAN_MS: '600000',
    SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins,
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
  };
}

/** The maps of the enforcer pinned at `pins`, read from this process (it writes none of the state when both generations agree). */
function readPinnedState(pins: string): NodeMapState[] {
  const kernel = PolicyKernel.open(new PinDirectory(pins), DEFAULT_POLICY_KERNEL_OPTIONS);
  try {
    assert.equal(kernel.installation.installedNow, false, `the enforcer's installation at ${pins} is adopted`);
    const applier = PolicyApplier.open(kernel.maps);
    return [applier.readBack(0), applier.readBack(1)];
  } finally {
    kernel.close();
  }
}

async function deadLetters(): Promise<DeadLetterEvent[]> {
  const codec = bindDeadLetterCodec(loadRegistry());
  const letters: DeadLetterEvent[] = [];
  await readToEnd(kafka, topics.deadletter.topic, (message) => void letters.push(codec.decode(message.value!)), { groupPrefix: `test-deadletters-${id}`, logger, timeoutMs: 30_000 });
  return letters.sort((a, b) => Number(a.source_offset - b.source_offset));
}

describe('sidecarless enforcer (a process on the real kernel, real Kafka, lab pods)', () => {
  let metadata: StartedRole;
  let metadataCfg: Config;
  let described: DescribedCluster;
  let enforcer: EnforcerProcess | undefined;
  let reference: { role: RunningEnforcer; telemetry: Telemetry } | undefined;
  const kube = KubeObjects.fromStack();

  const labCgroup = () => join(cgroup2Root(), labNames.cgroupDir(described.cluster.id));
  const rows = async (port: number) => outcomeRows(await probeMatrix(described, { port, protocol: 'TCP' })).map((row) => row.replaceAll(x, 'x').replaceAll(y, 'y'));
  const expected = (allowed: number[]) => (port: number) => [X_ROWS[port]!, yRow(port, allowed)];
  /** Waits until every port's matrix is the one of egress(...allowed). */
  const enforces = (allowed: number[], what: string) =>
    waitFor(async () => (await Promise.all(PORTS.map(async (port) => JSON.stringify(await rows(port)) === JSON.stringify(expected(allowed)(port))))).every(Boolean), { timeoutMs: 30_000, intervalMs: 100, what });

  before(async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    metadataCfg = metadataConfig({ SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix });
    metadata = await startRole(metadataCfg);
    described = await startDescribedCluster(description, { name: `enforcer-${id}`, lifetimeMs: 15 * 60_000 });
    enforcer = await startEnforcerProcess(enforcerEnv(labCgroup(), pinsOf('e')));
  });

  after(async () => {
    await cleanUpAll([
      ['the enforcer process', () => enforcer?.kill()],
      ['the reference enforcer', async () => {
        await reference?.role.stop();
        await reference?.telemetry.shutdown();
      }],
      ['the enforcers\' pins', () => [pinsOf('e'), pinsOf('r')].forEach((pins) => new PinDirectory(pins).remove())],
      ['the lab', async () => {
        await described?.destroy();
        destroyAll();
      }],
      ['the metadata role', () => metadata?.stop()],
      ['the API objects', () => kube.cleanup()],
      ['the topics', async () => {
        await deleteMetadataTopic(metadataCfg);
        const admin = kafka.admin();
        await admin.connect();
        await admin.deleteTopics({ topics: [topics.policies.topic, topics.deadletter.topic, topics.verdicts.topic] }).catch(() => {});
        await admin.disconnect();
      }],
    ]);
  });

  it('a policy applied while it runs changes what the pods reach', async () => {
    const open: Record<number, string> = { 80: 'y/a ..', 81: 'y/a .R', 82: 'y/a .R' };
    for (const port of PORTS) assert.deepEqual(await rows(port), [X_ROWS[port], open[port]], `port ${port} is open before any policy`);
    await policyApply(egress(80), kafkaEnv);
    await enforces([80], 'y/a to reach x/a:80 only');
  });

  it('a container started in y/a while it runs is y/a at once: its connect() to a port the policy does not allow is denied', async () => {
    const ya = described.pods.get(`${y}/a`)!;
    const xa = described.pods.get(`${x}/a`)!;
    const container = ya.addContainer();
    const probe = async (port: number) => {
      const params: Omit<ProbeParams, 'deadlineMs'> = { targets: [{ host: xa.ip, port, protocol: 'TCP' }], timeoutMs: 1_000 };
      const { answers } = await launch<ProbeResult>(ya, 'probe', params, 11_000, undefined, container).result;
      return answers[0]!.outcome;
    };
    // Known to no walk (the periodic one is 10 minutes away), the container's cgroup would be no pod's, and unguarded.
    await waitFor(async () => (await probe(81)) === 'denied', { timeoutMs: 10_000, intervalMs: 50, what: "the new container's connect() to x/a:81 denied" });
    assert.equal(await probe(80), 'connected');
  });

  it('a NetworkPolicy created and deleted through the API server (the metadata role\'s watch) is enforced and lifted', async () => {
    const isolateXa = { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { namespace: x, name: 'isolate-a' }, spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] } };
    await kube.create(isolateXa);
    // x/a takes no connection any more (T: the SYN is dropped at ingress), y/a keeps its egress policy.
    await waitFor(async () => JSON.stringify(await rows(80)) === JSON.stringify(['x/a T.', 'y/a TD']), { timeoutMs: 30_000, intervalMs: 100, what: 'x/a isolated by the API server\'s policy' });
    await kube.delete(isolateXa);
    await enforces([80], 'the API server\'s policy lifted');
  });

  it('dead-letters a policy message that does not decode and one with a bad CIDR, and enforces the valid update beside them', async () => {
    const codec = bindPoliciesCodec(loadRegistry());
    const [valid] = parsePolicies(egress(80, 82));
    const badCidr = policyToEvent({ ...valid!, name: 'bad-cidr' }, 'test', 1n);
    badCidr.egress[0]!.peers = [{ pod_selector: null, namespace_selector: null, ip_block: { cidr: '10.0.0.0/33', except: [] } }];
    const sent = [
      { key: `${y}/garbage`, value: Buffer.from('not an Avro event') },
      { key: `${y}/bad-cidr`, value: codec.encode(badCidr) },
      { key: `${y}/egress`, value: codec.encode(policyToEvent(valid!, 'test', 2n)) },
    ];
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic: topics.policies.topic, messages: sent });
    } finally {
      await producer.disconnect();
    }
    await enforces([80, 82], 'the valid update (y/a to x/a:80 and 82)');

    // Where the two bad messages are, read back from the topic.
    const where = new Map<string, { partition: number; offset: bigint }>();
    await readToEnd(kafka, topics.policies.topic, (m) => void where.set(m.key!.toString(), { partition: m.partition, offset: BigInt(m.offset) }), { groupPrefix: `test-policies-${id}`, logger, timeoutMs: 30_000 });
    let letters: DeadLetterEvent[] = [];
    await waitFor(async () => (letters = await deadLetters()).length >= 2, { timeoutMs: 30_000, intervalMs: 200, what: 'two dead letters' });
    const node = loadConfig({ argv: [], env: {} }).node.name;
    assert.equal(letters.length, 2, 'one letter per bad message, none for the valid ones');
    letters.sort((a, b) => (a.source_key!.toString() < b.source_key!.toString() ? -1 : 1));
    const [badLetter, garbageLetter] = letters;
    for (const [letter, message] of [[garbageLetter!, sent[0]!], [badLetter!, sent[1]!]] as const) {
      assert.deepEqual(
        { writer: letter.writer, topic: letter.source_topic, partition: letter.source_partition, offset: letter.source_offset, key: letter.source_key, value: letter.source_value },
        { writer: `enforcer/${node}`, topic: topics.policies.topic, ...where.get(message.key)!, key: Buffer.from(message.key), value: message.value },
      );
    }
    assert.match(garbageLetter!.reason, /^does not decode as a policies\.v1 event: .*magic byte/);
    assert.match(badLetter!.reason, /^not a valid NetworkPolicy: .*spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr/);
  });

  it('restart: the pins enforce the old state while it is down, the replay applies the new one, the maps equal a never-stopped enforcer\'s', async () => {
    // The reference: started now, never stopped, its programs detached (it must not hide a gap of the other).
    const config = loadConfig({ argv: [], env: { ...enforcerEnv(labCgroup(), pinsOf('r')), SIDECARLESS_LOG_LEVEL: 'warn' } });
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    reference = { role: await startEnforcer({ config, logger, telemetry }), telemetry };
    reference.role.kernel.attach([]);
    const referenceState = () => reference!.role.applier.readBack();
    assert.deepEqual(readPinnedState(pinsOf('e')), [referenceState(), referenceState()], 'before the kill, both enforce the same state');

    // Every probe from here on: y/a to itself is forbidden by both policies on every port, x/a is never selected.
    const seen: string[] = [];
    let probing = true;
    const loop = (async () => {
      while (probing) for (const port of PORTS) seen.push(...(await rows(port)).map((row) => `${port} ${row}`));
    })();
    try {
      await enforcer!.kill();
      const appliedBefore = reference.role.enforcer.stats.applies;
      await policyApply(egress(81), kafkaEnv);
      await waitFor(async () => reference!.role.enforcer.stats.applies > appliedBefore, { timeoutMs: 30_000, what: 'the reference to apply egress(81)' });
      for (const port of PORTS) assert.deepEqual(await rows(port), expected([80, 82])(port), `while down, the pins enforce the old state on ${port}`);
      enforcer = await startEnforcerProcess(enforcerEnv(labCgroup(), pinsOf('e')));
      assert.ok(enforcer.applies() >= 1, 'the restarted enforcer applied the replayed state before it reported running');
      await enforces([81], 'the new state after the replay');
    } finally {
      probing = false;
      await loop;
    }
    const allowed = new Set(PORTS.flatMap((port) => [...expected([80, 82])(port), ...expected([81])(port)].map((row) => `${port} ${row}`)));
    assert.deepEqual(seen.filter((row) => !allowed.has(row)), [], 'no probe saw a connection both policies forbid');
    assert.ok(seen.length >= 2 * 3 * 3, `the probe loop ran throughout: ${seen.length / 2} probe rounds`);
    assert.deepEqual(readPinnedState(pinsOf('e')), [referenceState(), referenceState()], 'both generations equal those of the enforcer that never stopped');
    // Both replayed the two bad messages of the dead-letter test; each was lettered once, in that test's run.
    assert.equal(reference.role.enforcer.stats.deadLetters, 0, 'the reference letters nothing this node lettered before');
    assert.equal((await deadLetters()).length, 2, 'the restarted enforcer letters nothing again');
  });

  it('verdicts.v1: each denial names the policy that isolates the subject, both pods and the 5-tuple', async () => {
    const [xa, ya] = [described.pods.get(`${x}/a`)!, described.pods.get(`${y}/a`)!];
    const since = BigInt(Date.now()) * 1_000_000n;
    assert.deepEqual(await rows(80), expected([81])(80));
    let denials: VerdictEvent[] = [];
    await waitFor(
      async () => {
        denials = (await readVerdicts(`test-verdicts-${id}`)).filter((event) => event.time_ns >= since && event.destination_port === 80);
        return denials.length >= 2;
      },
      { timeoutMs: 30_000, intervalMs: 300, what: 'the denials of y/a on port 80 on verdicts.v1' },
    );
    const node = loadConfig({ argv: [], env: {} }).node.name;
    const shape = (event: VerdictEvent) => ({
      node: event.k8s_node_name,
      verdict: event.verdict,
      direction: event.direction,
      hook: event.hook,
      policies: event.policies,
      rules: event.rules,
      transport: event.network_transport,
      type: event.network_type,
      destination: `${event.destination_address}:${event.destination_port}`,
      cgroup: event.cgroup_id,
      subject: `${event.subject_k8s_namespace_name}/${event.subject_k8s_pod_name}`,
      peer: `${event.peer_k8s_namespace_name}/${event.peer_k8s_pod_name}`,
    });
    const common = { node, verdict: 'deny', direction: 'egress', hook: 'connect', policies: [`${y}/egress`], rules: [], transport: 'tcp', type: 'ipv4', cgroup: ya.cgroup.id, subject: `${y}/a` };
    assert.deepEqual(
      denials.map(shape).sort((a, b) => (a.destination < b.destination ? -1 : 1)),
      [
        { ...common, destination: `${xa.ip}:80`, peer: `${x}/a` },
        { ...common, destination: `${ya.ip}:80`, peer: `${y}/a` },
      ].sort((a, b) => (a.destination < b.destination ? -1 : 1)),
      'one denial per probe of y/a on 80 (to x/a and to itself), no allow reported (allowSampleEvery 0)',
    );
  });

  it('SIGTERM: it stops in order and exits 0; the pins keep enforcing its last state', async () => {
    await enforcer!.stop();
    assert.equal(enforcer!.child.exitCode, 0, JSON.stringify(enforcer!.logs.slice(-3)));
    assert.ok(enforcer!.logs.some((entry) => entry.msg === 'enforcer final counts'));
    for (const port of PORTS) assert.deepEqual(await rows(port), expected([81])(port));
  });

  it('upgrade to another layout: what the old one decided while no enforcer ran is published once, then the new one reports', async () => {
    const since = BigInt(Date.now()) * 1_000_000n;
    // Stopped (above): the pins enforce and report into the old layout's ring. y/a's two probes on 80 are denied.
    assert.deepEqual(await rows(80), expected([81])(80));
    const layouts = () => readdirSync(join(pinsOf('e'), 'policy'));
    const [oldLayout] = layouts();
    // Another setting, another layout (src/ebpf/installation.ts); 1 in a million allows sampled, none here.
    enforcer = await startEnforcerProcess({ ...enforcerEnv(labCgroup(), pinsOf('e')), SIDECARLESS_ENFORCER_ALLOW_SAMPLE_EVERY: '1000000' });
    assert.equal(layouts().length, 1, 'the old layout was retired');
    assert.notEqual(layouts()[0], oldLayout);
    assert.deepEqual(await rows(80), expected([81])(80), 'the new layout enforces the same state');
    assert.deepEqual(await rows(82), expected([81])(82));
    let denials: VerdictEvent[] = [];
    // Published in order: once the denials on 82 (the last probe) are there, every one before them is.
    await waitFor(
      async () => {
        denials = (await readVerdicts(`test-upgrade-${id}`)).filter((event) => event.time_ns >= since && event.verdict === 'deny');
        return denials.filter((event) => event.destination_port === 82).length >= 2;
      },
      { timeoutMs: 30_000, intervalMs: 300, what: 'the denials of the last probe on verdicts.v1' },
    );
    const [xa, ya] = [described.pods.get(`${x}/a`)!, described.pods.get(`${y}/a`)!];
    const destinations = denials.map((event) => `${event.destination_address}:${event.destination_port}`).sort();
    assert.deepEqual(
      destinations,
      [`${xa.ip}:80`, `${xa.ip}:80`, `${xa.ip}:82`, `${ya.ip}:80`, `${ya.ip}:80`, `${ya.ip}:82`].sort(),
      "each probe's denial once: two on 80 decided by the old layout while down, two by the new one, and the two on 82",
    );
    assert.ok(denials.every((event) => event.policies.join() === `${y}/egress` && event.subject_k8s_pod_name === 'a'), 'named with the applied state');
  });

  it('verdicts the kernel could not put in its full ring while no enforcer ran are counted: published + counted = denied', async () => {
    await enforcer!.stop();
    const since = BigInt(Date.now()) * 1_000_000n;
    const xa = described.pods.get(`${x}/a`)!;
    // More denials than the 1 MiB ring holds (about 10,000 records): unconnected UDP sends, each refused (EPERM).
    const attempts = 12_000;
    const script = `import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ndenied = 0\nfor _ in range(${attempts}):\n    try:\n        s.sendto(b'x', (sys.argv[1], 9))\n    except PermissionError:\n        denied += 1\nprint(denied)`;
    assert.equal(Number(described.pods.get(`${y}/a`)!.exec('python3', ['-c', script, xa.ip]).trim()), attempts, 'every send was denied');
    enforcer = await startEnforcerProcess({ ...enforcerEnv(labCgroup(), pinsOf('e')), SIDECARLESS_ENFORCER_ALLOW_SAMPLE_EVERY: '1000000' });
    const counted = () => enforcer!.logs.filter((entry) => entry.component === 'enforcer.verdicts').reduce((sum, entry) => sum + Number((entry.drops as Record<string, number> | undefined)?.ringbuf_full ?? 0), 0);
    let published = 0;
    await waitFor(
      async () => {
        published = (await readVerdicts(`test-ringfull-${id}`)).filter((event) => event.time_ns >= since && event.destination_port === 9).length;
        return published + counted() >= attempts;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'every denied send published or counted' },
    );
    assert.ok(counted() > 0 && published > 0, `the ring overflowed: ${published} published, ${counted()} counted`);
    assert.equal(published + counted(), attempts);
  });
});
