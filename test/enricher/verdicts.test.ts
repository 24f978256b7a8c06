/**
 * The enricher on the verdicts topic against the real broker and the embedded ClickHouse engine: verdicts.v1 events
 * as the enforcer names them (an ingress denial, an egress denial at connect() on a socket not bound yet, an audit
 * would-be denial naming two policies, a sampled allow with its rule) and metadata.v1 events for their pods are
 * published, the enricher role runs in this process, and `verdicts` holds each decision once, the source and
 * destination joined at the decision's time (the unbound source by its cgroup). The rollup `policy_verdicts_1m`
 * counts decisions per verdict, direction, policy and workload edge, and a replayed insert adds nothing to either.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { ClickHouseSink } from '../../src/enricher/clickhouse-sink.js';
import { VERDICTS_TABLE } from '../../src/enricher/verdict-row.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { bindVerdictsCodec, type VerdictEvent } from '../../src/events/verdicts.js';
import { topicSpecs } from '../../src/events/topics.js';
import { queryRows } from '../helpers/clickhouse.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { topicClients } from '../helpers/topic-clients.js';
import { podIdentity, sec } from '../helpers/metadata.js';
import { deploymentPod, publishMetadata } from '../helpers/metadata-topic.js';

const logger = createLogger({ level: 'warn' });
const { config } = testConfig({ SIDECARLESS_KAFKA_PARTITIONS: '1' });
const database = config.clickhouse.database;
const codec = bindVerdictsCodec(loadRegistry());
let clickhouse: ClickHouseClient | undefined;
const { admin, producer, topics } = topicClients(config, logger, ['verdicts', 'metadata', 'deadletter'], () => clickhouse);

/** A whole minute an hour ago (ns): every decision below falls in it. */
const minute = (BigInt(Date.now() - 3_600_000) / 60_000n) * 60_000_000_000n;

const decision = (overrides: Partial<VerdictEvent>): VerdictEvent => ({
  time_ns: minute,
  k8s_node_name: 'n1',
  verdict: 'deny',
  direction: 'ingress',
  hook: 'ingress',
  policies: [],
  rules: [],
  network_transport: 'tcp',
  network_type: 'ipv4',
  source_address: '10.7.0.5',
  source_port: 40001,
  destination_address: '10.7.0.9',
  destination_port: 8080,
  cgroup_id: 72n,
  subject_identity: 902n,
  subject_k8s_namespace_name: 'shop',
  subject_k8s_pod_name: 'orders-rs-b',
  peer_identity: 901n,
  peer_prefix: null,
  peer_k8s_namespace_name: 'shop',
  peer_k8s_pod_name: 'frontend-rs-a',
  generation: 1,
  ...overrides,
});

/** frontend-rs-a (10.7.0.5, cgroup 71) calls orders-rs-b (10.7.0.9:8080, cgroup 72); a resolver outside the cluster. */
const EVENTS: VerdictEvent[] = [
  decision({ time_ns: minute + sec(1), policies: ['shop/orders-ingress'] }),
  decision({ time_ns: minute + sec(2), policies: ['shop/orders-ingress'], source_port: 40003 }),
  decision({
    time_ns: minute + sec(3),
    direction: 'egress',
    hook: 'connect',
    policies: ['shop/frontend-egress'],
    source_address: '0.0.0.0',
    source_port: 0,
    cgroup_id: 71n,
    subject_identity: 901n,
    subject_k8s_pod_name: 'frontend-rs-a',
    peer_identity: 902n,
    peer_k8s_pod_name: 'orders-rs-b',
    generation: 0,
  }),
  decision({
    time_ns: minute + sec(4),
    verdict: 'audit_deny',
    direction: 'egress',
    hook: 'sendmsg',
    policies: ['shop/audit-a', 'shop/audit-b'],
    network_transport: 'udp',
    source_port: 5353,
    destination_address: '203.0.113.7',
    destination_port: 53,
    cgroup_id: 71n,
    subject_identity: 901n,
    subject_k8s_pod_name: 'frontend-rs-a',
    peer_identity: 0n,
    peer_prefix: '203.0.113.0/24',
    peer_k8s_namespace_name: null,
    peer_k8s_pod_name: null,
  }),
  decision({ time_ns: minute + sec(5), verdict: 'allow', policies: ['shop/orders-ingress'], rules: ['shop/orders-ingress ingress[1]'], source_port: 40005 }),
];

describe('enricher: verdicts.v1 into verdicts', () => {
  it('leaves the verdicts topic alone with enricher.verdicts off', async () => {
    const off = testConfig({ SIDECARLESS_KAFKA_PARTITIONS: '1', SIDECARLESS_ENRICHER_VERDICTS: 'false' }).config;
    const offTopics = topicSpecs(off.kafka.topicPrefix);
    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    try {
      const role = await startEnricher({ config: off, logger, telemetry });
      await role.stop();
      const existing = new Set(await admin.listTopics());
      assert.deepEqual(
        [offTopics.flows, offTopics.http, offTopics.verdicts].map(({ topic }) => existing.has(topic)),
        [true, true, false],
        'the flows and http topics were made and subscribed to, not the verdicts topic',
      );
    } finally {
      await telemetry.shutdown();
      await admin.deleteGroups([off.enricher.groupId]).catch(() => {});
      await dropTestData(off, undefined);
    }
  });


  it('stores each decision once with its policy, 5-tuple and both ends named at its time, and rolls them up per minute and policy', async () => {
    const client = deploymentPod({ namespace: 'shop', deployment: 'frontend', suffix: 'a', ip: '10.7.0.5', node: 'n1', cgroupId: 71n, at: minute - sec(600) });
    const server = deploymentPod({ namespace: 'shop', deployment: 'orders', suffix: 'b', ip: '10.7.0.9', node: 'n1', cgroupId: 72n, at: minute - sec(600) });
    await publishMetadata(producer, topics.metadata.topic, [...client.changes, ...server.changes]);
    await producer.send({ topic: topics.verdicts.topic, messages: [{ key: 'n1', value: codec.encode(EVENTS) }] });

    const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
    const role = await startEnricher({ config, logger, telemetry });
    try {
      clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
      await waitFor(async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT count() AS n FROM ${database}.verdicts`))[0]?.n === String(EVENTS.length), {
        timeoutMs: 60_000,
        what: `${EVENTS.length} rows in verdicts`,
      });
    } finally {
      await role.stop();
      await telemetry.shutdown();
    }

    const rows = await queryRows(
      clickhouse!,
      `SELECT toString(toUnixTimestamp64Nano(time) - {minute:Int64}) AS at, k8s_node_name AS node, toString(verdict) AS verdict,
              toString(direction) AS direction, toString(hook) AS hook, policies, rules, network_transport AS transport,
              concat(toString(source_address), ' ', toString(source_port), ' ', toString(destination_address), ' ', toString(destination_port)) AS tuple,
              cgroup_id, subject_identity, concat(subject_k8s_namespace_name, '/', subject_k8s_pod_name) AS subject,
              peer_identity, peer_prefix, concat(peer_k8s_namespace_name, '/', peer_k8s_pod_name) AS peer, generation,
              concat(source_k8s_namespace_name, '/', source_k8s_workload_kind, '/', source_k8s_workload_name, '/', source_k8s_pod_name, '/', toString(source_endpoint_kind), '/', toString(source_enrichment)) AS source,
              concat(destination_k8s_namespace_name, '/', destination_k8s_workload_kind, '/', destination_k8s_workload_name, '/', destination_k8s_pod_name, '/', toString(destination_endpoint_kind), '/', toString(destination_enrichment)) AS destination,
              kafka_offset
       FROM ${database}.verdicts ORDER BY time`,
      { minute: minute.toString() },
    );
    const frontend = `shop/Deployment/frontend/${client.name}/pod/hit`;
    const orders = `shop/Deployment/orders/${server.name}/pod/hit`;
    const ingress = { node: 'n1', direction: 'ingress', hook: 'ingress', transport: 'tcp', cgroup_id: '72', subject_identity: '902', subject: 'shop/orders-rs-b', peer_identity: '901', peer_prefix: '', peer: 'shop/frontend-rs-a', generation: 1, source: frontend, destination: orders, kafka_offset: '0' };
    const fromFrontend = { node: 'n1', direction: 'egress', cgroup_id: '71', subject_identity: '901', subject: 'shop/frontend-rs-a', source: frontend, kafka_offset: '0' };
    assert.deepEqual(rows, [
      { at: String(sec(1)), verdict: 'deny', policies: ['shop/orders-ingress'], rules: [], tuple: '::ffff:10.7.0.5 40001 ::ffff:10.7.0.9 8080', ...ingress },
      { at: String(sec(2)), verdict: 'deny', policies: ['shop/orders-ingress'], rules: [], tuple: '::ffff:10.7.0.5 40003 ::ffff:10.7.0.9 8080', ...ingress },
      {
        at: String(sec(3)),
        verdict: 'deny',
        hook: 'connect',
        policies: ['shop/frontend-egress'],
        rules: [],
        transport: 'tcp',
        tuple: '::ffff:0.0.0.0 0 ::ffff:10.7.0.9 8080',
        peer_identity: '902',
        peer_prefix: '',
        peer: 'shop/orders-rs-b',
        generation: 0,
        destination: orders,
        ...fromFrontend,
      },
      {
        at: String(sec(4)),
        verdict: 'audit_deny',
        hook: 'sendmsg',
        policies: ['shop/audit-a', 'shop/audit-b'],
        rules: [],
        transport: 'udp',
        tuple: '::ffff:10.7.0.5 5353 ::ffff:203.0.113.7 53',
        peer_identity: '0',
        peer_prefix: '203.0.113.0/24',
        peer: '/',
        generation: 1,
        destination: '////external/miss',
        ...fromFrontend,
      },
      { at: String(sec(5)), verdict: 'allow', policies: ['shop/orders-ingress'], rules: ['shop/orders-ingress ingress[1]'], tuple: '::ffff:10.7.0.5 40005 ::ffff:10.7.0.9 8080', ...ingress },
    ]);

    const rollup = () =>
      queryRows(
        clickhouse!,
        `SELECT toString(toUnixTimestamp(minute) - {minute:Int64}) AS second, toString(verdict) AS verdict, toString(direction) AS direction, policy,
                concat(source_k8s_namespace_name, '/', source_k8s_workload_kind, '/', source_k8s_workload_name) AS source,
                concat(destination_k8s_namespace_name, '/', destination_k8s_workload_kind, '/', destination_k8s_workload_name) AS destination,
                toString(sum(decisions)) AS decisions
         FROM ${database}.policy_verdicts_1m GROUP BY ALL ORDER BY verdict, direction, policy`,
        { minute: (minute / 1_000_000_000n).toString() },
      );
    const edge = { second: '0', source: 'shop/Deployment/frontend' };
    const expected = [
      { ...edge, verdict: 'allow', direction: 'ingress', policy: 'shop/orders-ingress', destination: 'shop/Deployment/orders', decisions: '1' },
      { ...edge, verdict: 'audit_deny', direction: 'egress', policy: 'shop/audit-a', destination: '//', decisions: '1' },
      { ...edge, verdict: 'audit_deny', direction: 'egress', policy: 'shop/audit-b', destination: '//', decisions: '1' },
      { ...edge, verdict: 'deny', direction: 'egress', policy: 'shop/frontend-egress', destination: 'shop/Deployment/orders', decisions: '1' },
      { ...edge, verdict: 'deny', direction: 'ingress', policy: 'shop/orders-ingress', destination: 'shop/Deployment/orders', decisions: '2' },
    ];
    assert.deepEqual(await rollup(), expected);

    // The same insert again (a crash before the commit, then the replay): nothing added, in the table or the rollup.
    const replayed = VERDICTS_TABLE.rows(64 * 1024);
    const named = { client: podIdentity('shop', 'frontend'), server: podIdentity('shop', 'orders') };
    EVENTS.forEach((event, i) => replayed.add(event, named, { topic: 'replay', partition: 0, offset: String(i) }));
    const sink = new ClickHouseSink(clickhouse!, `${database}.verdicts`, VERDICTS_TABLE.columns);
    assert.deepEqual(await sink.insert(replayed, 'replay/0/0/0-4'), { ok: true });
    assert.deepEqual(await sink.insert(replayed, 'replay/0/0/0-4'), { ok: true });
    assert.deepEqual(await queryRows(clickhouse!, `SELECT count() AS n FROM ${database}.verdicts WHERE kafka_topic = 'replay'`), [{ n: String(EVENTS.length) }]);
    const total = async () => (await queryRows<{ n: string }>(clickhouse!, `SELECT toString(sum(decisions)) AS n FROM ${database}.policy_verdicts_1m`))[0]!.n;
    assert.equal(await total(), '12', 'each insert counts 6 (the audit denial once per policy), the replayed one once');
  });
});
