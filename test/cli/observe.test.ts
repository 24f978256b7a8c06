/**
 * `sidecarless observe` as a process against the real broker: a small cluster published to metadata.v1 (two
 * Deployments' pods in two namespaces, a Service with its EndpointSlice), flow and HTTP events and a policy verdict
 * on their topics, and what the command prints: each event with both ends named at its time, narrowed by the
 * filters, as text or JSON; unknown topics and bad arguments named; SIGTERM stops it.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { loadRegistry } from '../../src/common/avro.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { KeyedKafkaSink, type KeyedMessage } from '../../src/common/kafka/sink.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../src/events/flows.js';
import { HTTP, type HttpBatch } from '../../src/events/http.js';
import { bindMetadataCodec } from '../../src/events/metadata.js';
import { topicSpecs } from '../../src/events/topics.js';
import { bindVerdictsCodec, type VerdictEvent } from '../../src/events/verdicts.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { startCommand, type RunningCommand } from '../helpers/cli.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { httpEvent } from '../helpers/http.js';
import { objectChange, observedFlow, ownerRef, podChange, sec, serviceChange, sliceChange } from '../helpers/metadata.js';
import { requireStackService } from '../helpers/stack.js';

describe('sidecarless observe', () => {
  const { config, env } = testConfig();
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 2 });
  const children: ChildProcess[] = [];
  // Ten minutes ago: the cluster, then its traffic a minute later.
  const epoch = BigInt(Date.now() - 600_000) * 1_000_000n;
  const live = epoch + sec(60);

  function observe(args: string[], extraEnv: Record<string, string> = {}): RunningCommand {
    const running = startCommand('observe', args, { ...process.env, ...env, ...extraEnv });
    children.push(running.child);
    return running;
  }
  let publishVerdict: (verdict: VerdictEvent) => Promise<void> = async () => {};
  let firstVerdict: VerdictEvent | undefined;
  const sortedLines = (text: string) => text.split('\n').filter((line) => line !== '').sort();

  before(async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' }));
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [topics.metadata, topics.flows, topics.http, topics.verdicts]);
    } finally {
      await admin.disconnect();
    }
    const registry = loadRegistry();
    const metadataCodec = bindMetadataCodec(registry);
    const deployment = (namespace: string, name: string, ip: string, uid: string) => [
      objectChange('ReplicaSet', { uid: `rs-${uid}`, name: `${name}-5d8f`, namespace, owner: ownerRef('Deployment', name, `d-${uid}`), at: epoch }),
      podChange({ uid, name: `${name}-5d8f-x${uid}`, namespace, node: 'n1', ips: [ip], owner: ownerRef('ReplicaSet', `${name}-5d8f`, `rs-${uid}`), labels: { app: name }, at: epoch + sec(1) }),
    ];
    const metadata = [
      ...deployment('shop', 'frontend', '10.70.0.1', 'p1'),
      ...deployment('billing', 'payments', '10.70.0.2', 'p2'),
      serviceChange({ uid: 'svc-payments', name: 'payments', namespace: 'billing', clusterIps: ['10.96.0.50'], at: epoch }),
      sliceChange({ uid: 'es-payments', service: 'payments', namespace: 'billing', endpoints: [{ podUid: 'p2', addresses: ['10.70.0.2'] }], ports: [9090], at: epoch + sec(2) }),
    ];
    const publish = async (topic: string, messages: KeyedMessage[]) => {
      const sink = new KeyedKafkaSink(kafka, topic);
      try {
        const sent = await sink.send(messages);
        assert.ok(sent.ok, `publishing to ${topic}: ${sent.ok ? '' : sent.error}`);
      } finally {
        await sink.shutdown();
      }
    };
    await publish(
      topics.metadata.topic,
      metadata.map((change) => ({ key: change.key, value: 'event' in change ? metadataCodec.encode(change.event) : null, timestampMs: String(Number(epoch / 1_000_000n)) })),
    );
    const counters = { bytes_client_to_server: 1200n, bytes_server_to_client: 3400n, rtt_us: 250 };
    const flows: FlowEvent[] = [
      { ...observedFlow({ side: 'client', client: '10.70.0.1', server: '10.70.0.2', serverPort: 9090, start: live }), ...counters },
      { ...observedFlow({ side: 'client', client: '10.70.0.1', server: '10.96.0.50', serverPort: 80, start: live + sec(1) }), ...counters },
      { ...observedFlow({ side: 'server', client: '203.0.113.7', server: '10.70.0.2', serverPort: 9090, start: live + sec(2) }), ...counters, started_before_tracing: true },
    ];
    const flowBytes = registry.codec<FlowBatch>(FLOWS.subject);
    const now = String(Date.now());
    await publish(topics.flows.topic, flows.map((event) => ({ key: event.connection_id, value: flowBytes.encode({ events: [event] }), timestampMs: now })));
    const exchange = httpEvent(250, live + sec(3), { client_address: '10.70.0.1', server_address: '10.70.0.2', server_port: 9090, http_route: '/api/orders/{id}', url_path: '/api/orders/7' });
    await publish(topics.http.topic, [{ key: exchange.connection_id, value: registry.codec<HttpBatch>(HTTP.subject).encode({ events: [exchange] }), timestampMs: now }]);
    const denied: VerdictEvent = {
      time_ns: live + sec(4),
      k8s_node_name: 'n1',
      verdict: 'deny',
      direction: 'egress',
      hook: 'connect',
      policies: ['billing/default-deny'],
      rules: [],
      network_transport: 'tcp',
      network_type: 'ipv4',
      source_address: '10.70.0.1',
      source_port: 41000,
      destination_address: '10.70.0.2',
      destination_port: 5432,
      cgroup_id: 0n,
      subject_identity: 7n,
      subject_k8s_namespace_name: 'shop',
      subject_k8s_pod_name: 'frontend-5d8f-xp1',
      peer_identity: 8n,
      peer_prefix: null,
      peer_k8s_namespace_name: 'billing',
      peer_k8s_pod_name: 'payments-5d8f-xp2',
      generation: 1,
    };
    publishVerdict = (verdict) => publish(topics.verdicts.topic, [{ key: 'n1', value: bindVerdictsCodec(registry).encode([verdict]), timestampMs: String(Date.now()) }]);
    await publishVerdict(denied);
    firstVerdict = denied;
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await dropTestData(config, undefined);
  });

  const iso = (ns: bigint) => `${new Date(Number(ns / 1_000_000_000n) * 1000).toISOString().slice(0, 19)}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`;
  const frontend = 'shop/frontend-5d8f-xp1';
  const payments = 'billing/payments-5d8f-xp2';

  it('prints every event with both ends named at its time', async () => {
    const run = await observe(['--from-beginning', '--count', '4']).done;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(sortedLines(run.stdout), [
      `${iso(live + 1_000_000n)} flow    ${frontend} -> ${payments} (svc payments):9090 final 1200B/3400B rtt 250us normal [client]`,
      `${iso(live + sec(1) + 1_000_000n)} flow    ${frontend} -> svc billing/payments:80 final 1200B/3400B rtt 250us normal [client]`,
      `${iso(live + sec(2) + 1_000_000n)} flow    203.0.113.7 -> ${payments} (svc payments):9090 final 1200B/3400B rtt 250us normal (open before tracing) [server]`,
      `${iso(live + sec(3))} http    ${frontend} -> ${payments} (svc payments):9090 GET /api/orders/{id} 200 1.25ms [client]`,
    ].sort());
    assert.match(run.stderr, new RegExp(`^observing ${topics.flows.topic}, ${topics.http.topic} from the beginning, named by 6 objects of ${topics.metadata.topic}; Ctrl-C stops$`, 'm'));
  });

  it('prints policy verdicts with --kind verdict, the subject as the client of an egress decision', async () => {
    const run = await observe(['--from-beginning', '--count', '1', '--kind', 'verdict']).done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${iso(live + sec(4))} verdict ${frontend} -> ${payments}:5432 deny egress [billing/default-deny] [client]\n`);
  });

  it('narrows to a namespace, a workload or Service, a pod and a server port', async () => {
    const namespace = await observe(['--from-beginning', '--count', '2', '--kind', 'flow', '--namespace', 'shop']).done;
    assert.equal(namespace.code, 0, namespace.stderr);
    assert.deepEqual(sortedLines(namespace.stdout).map((line) => line.split(/ +/).slice(2, 5).join(' ')), [`${frontend} -> ${payments}`, `${frontend} -> svc`]);
    const portAndWorkload = await observe(['--from-beginning', '--count', '3', '--workload', 'payments', '--port', '9090']).done;
    assert.equal(portAndWorkload.code, 0, portAndWorkload.stderr);
    assert.deepEqual(sortedLines(portAndWorkload.stdout).map((line) => line.split(/ +/).slice(1, 3).join(' ')), [`flow ${frontend}`, 'flow 203.0.113.7', `http ${frontend}`]);
    const pod = await observe(['--from-beginning', '--count', '1', '--kind', 'http', '--pod', 'frontend-5d8f-xp1', '--format', 'json']).done;
    assert.equal(pod.code, 0, pod.stderr);
    const [line, ...rest] = pod.stdout.split('\n').filter((text) => text !== '');
    assert.deepEqual(rest, []);
    const event = JSON.parse(line!) as Record<string, unknown> & { client: Record<string, unknown>; server: Record<string, unknown> };
    assert.deepEqual(
      [event.kind, event.http_route, event.duration_ns, event.client.k8s_workload_kind, event.client.k8s_workload_name, event.server.k8s_workload_name, event.server.k8s_service_name, event.server.labels],
      ['http', '/api/orders/{id}', '1250000', 'Deployment', 'frontend', 'payments', 'payments', { app: 'payments' }],
    );
  });

  it('stops on SIGTERM while it waits for events, exit 0', async () => {
    const { child, stderr, done } = observe([]);
    await waitFor(async () => stderr().includes('Ctrl-C stops') || child.exitCode !== null, { timeoutMs: 60_000, what: 'observe saying it observes' });
    assert.match(stderr(), /from now on/);
    child.kill('SIGTERM');
    const run = await done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '');
  });

  it('ends quietly when its reader stops early (observe | head)', async () => {
    const running = observe(['--from-beginning', '--kind', 'verdict']);
    // The reader goes after the first line; the next line written finds the pipe closed.
    running.child.stdout!.once('data', () => {
      running.child.stdout!.destroy();
      void publishVerdict({ ...firstVerdict!, time_ns: firstVerdict!.time_ns + sec(1) });
    });
    const run = await running.done;
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /^observing [^\n]*Ctrl-C stops\n$/);
  });

  it('skips a message that does not decode, counts it (decode_error) and reports it, and shows the next', async () => {
    // Topics of their own: the garbage must come before a good verdict in one partition (same key), and no other test may read it.
    const prefix = `${config.kafka.topicPrefix}garbage.`;
    const own = topicSpecs(prefix, { partitions: 1 });
    const kafka = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' }));
    const admin = kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, [own.metadata, own.verdicts]);
      const sink = new KeyedKafkaSink(kafka, own.verdicts.topic);
      try {
        const sent = await sink.send([
          { key: 'n1', value: Buffer.from('not an Avro verdict batch'), timestampMs: String(Date.now()) },
          { key: 'n1', value: bindVerdictsCodec(loadRegistry()).encode([firstVerdict!]), timestampMs: String(Date.now()) },
        ]);
        assert.ok(sent.ok);
      } finally {
        await sink.shutdown();
      }
      const run = await observe(['--from-beginning', '--count', '1', '--kind', 'verdict'], { SIDECARLESS_KAFKA_TOPIC_PREFIX: prefix }).done;
      assert.equal(run.code, 0, run.stderr);
      // No pod is known under these topics: both ends by address.
      assert.equal(run.stdout, `${iso(live + sec(4))} verdict 10.70.0.1 -> 10.70.0.2:5432 deny egress [billing/default-deny] [client]\n`);
      const reports = run.stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { drops?: Record<string, number> });
      assert.deepEqual(reports.map((report) => report.drops), [{ decode_error: 1 }]);
    } finally {
      await admin.deleteTopics({ topics: [own.metadata.topic, own.verdicts.topic] }).catch(() => {});
      await admin.disconnect();
    }
  });

  it('names the setting when the topics are not there, and refuses bad arguments', async () => {
    const missing = await observe(['--count', '1'], { SIDECARLESS_KAFKA_TOPIC_PREFIX: `${config.kafka.topicPrefix}nothing.` }).done;
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^observe: config kafka\.topicPrefix: no topic .*nothing\.metadata\.v1, .*nothing\.flows\.v1, .*nothing\.http\.v1 on the brokers/m);
    for (const [args, message] of [
      [['--kind', 'flows'], /--kind takes flow, http and verdict/],
      [['--port', '70000'], /--port takes a port/],
      [['--count', '0'], /--count takes a whole number above 0/],
      [['--format', 'yaml'], /--format takes text or json/],
      [['extra'], /Unexpected argument 'extra'/],
    ] as Array<[string[], RegExp]>) {
      const run = await observe(args).done;
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
    }
  });
});
