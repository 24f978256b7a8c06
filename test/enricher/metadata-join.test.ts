/**
 * The enricher joining flows with Kubernetes metadata at event time, against the real broker and the embedded
 * ClickHouse engine: metadata.v1 and flows.v1 messages published here as the metadata role and the collectors
 * write them, the enricher role run in this process, its rows and metrics read back. Each case has its own topics,
 * consumer groups and database, removed whatever the result; the embedded store is shared (one per process).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import kafkajs from 'kafkajs';
import type { ClickHouseClient } from '@clickhouse/client';
import { startEnricher } from '../../src/enricher/index.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { loadRegistry } from '../../src/common/avro.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import type { Config } from '../../src/common/config.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { ensureTopics } from '../../src/common/kafka/topics.js';
import { createLogger } from '../../src/common/logger.js';
import { startTelemetry } from '../../src/common/telemetry.js';
import { FLOWS, type FlowBatch, type FlowEvent } from '../../src/events/flows.js';
import type { MetadataChange } from '../../src/events/metadata.js';
import { topicSpecs } from '../../src/events/topics.js';
import { kafkaPort, localHost } from '../../src/lab/stack/endpoints.js';
import { queryRows } from '../helpers/clickhouse.js';
import { testConfig } from '../helpers/flows.js';
import { cgroupChange, objectChange, observedFlow as flowEvent, ownerRef, podChange, sec, serviceChange, sliceChange, tombstone, type FlowSpec } from '../helpers/metadata.js';
import { deploymentPod, nowNs, publishMetadata, watermarkChange } from '../helpers/metadata-topic.js';
import { requireStackService } from '../helpers/stack.js';
import { TestReader } from '../helpers/telemetry.js';

const flowsCodec = loadRegistry().codec<FlowBatch>(FLOWS.subject);
const logger = createLogger({ level: 'warn' });
const { config: shared } = testConfig({ SIDECARLESS_KAFKA_PARTITIONS: '2' });
const kafka = createKafka(kafkaOptionsFromConfig(shared.kafka, 'test'), logger);
const admin = kafka.admin();
const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
let clickhouse: ClickHouseClient;
const cleanups: Array<() => Promise<unknown>> = [];

/** Topics, consumer group and database of one case; `name` also tells the replay of a case's topics apart. */
function caseConfig(name: string, enricher: Partial<Config['enricher']> = {}, topicsOf = name): Config {
  const config: Config = {
    ...shared,
    kafka: { ...shared.kafka, topicPrefix: `${shared.kafka.topicPrefix}${topicsOf}.` },
    clickhouse: { ...shared.clickhouse, database: `${shared.clickhouse.database}_${name}` },
    enricher: { ...shared.enricher, groupId: `${shared.enricher.groupId}-${name}`, ...enricher },
  };
  const topics = topicSpecs(config.kafka.topicPrefix, { partitions: 2 });
  cleanups.push(
    () => admin.deleteTopics({ topics: [topics.flows.topic, topics.http.topic, topics.verdicts.topic, topics.metadata.topic, topics.deadletter.topic] }),
    () => admin.deleteGroups([config.enricher.groupId]),
    () => clickhouse.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouse.database}` }),
  );
  return config;
}

function topicsOf(config: Config) {
  return topicSpecs(config.kafka.topicPrefix, { partitions: 2 });
}

async function createTopics(config: Config): Promise<void> {
  const topics = topicsOf(config);
  await ensureTopics(admin, [topics.flows, topics.metadata, topics.deadletter]);
}

async function publishFlows(config: Config, events: FlowEvent[]): Promise<void> {
  await producer.send({ topic: topicsOf(config).flows.topic, messages: [{ key: events[0]!.k8s_node_name, value: flowsCodec.encode({ events }) }] });
}

/** The enricher role on the case's configuration until `done`, with its metrics readable. */
async function withEnricher(config: Config, run: (reader: TestReader) => Promise<void>): Promise<void> {
  const reader = new TestReader();
  const telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0, readers: [reader] });
  const role = await startEnricher({ config, logger, telemetry });
  try {
    await run(reader);
  } finally {
    await role.stop();
    await telemetry.shutdown();
  }
}

async function rowCount(config: Config): Promise<number> {
  const [row] = await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${config.clickhouse.database}.flows`);
  return Number(row!.n);
}

/** One end's identity columns as the table holds them. */
interface EndColumns {
  namespace: string;
  pod: string;
  uid: string;
  workload: string;
  service: string;
  node: string;
  kind: string;
  labels: Record<string, string>;
  status: string;
}

/** One end's identity columns as a named tuple (its names: EndColumns). */
const END = (end: 'client' | 'server') =>
  `CAST(tuple(${end}_k8s_namespace_name, ${end}_k8s_pod_name, ${end}_k8s_pod_uid, concat(${end}_k8s_workload_kind, '/', ${end}_k8s_workload_name),
              ${end}_k8s_service_name, ${end}_k8s_node_name, toString(${end}_endpoint_kind), ${end}_labels, toString(${end}_enrichment)),
        'Tuple(namespace String, pod String, uid String, workload String, service String, node String, kind String, labels Map(String, String), status String)')`;

/** Every row's observing side, start (seconds from `zeroNs`) and both ends' identity columns, in start order. */
async function identities(config: Config, zeroNs: bigint): Promise<Array<{ side: string; start: number; client: EndColumns; server: EndColumns }>> {
  return queryRows(
    clickhouse,
    `SELECT toString(observer_side) AS side, toInt32(intDiv(toUnixTimestamp64Nano(start_time) - {zero:Int64}, 1000000000)) AS start,
            ${END('client')} AS client, ${END('server')} AS server
     FROM ${config.clickhouse.database}.flows ORDER BY start_time, observer_side`,
    { zero: zeroNs.toString() },
  );
}

const nobody = (status: string, kind = 'unknown'): EndColumns => ({ namespace: '', pod: '', uid: '', workload: '/', service: '', node: '', kind, labels: {}, status });

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await admin.connect();
  await producer.connect();
  clickhouse = await createClickHouse({ embeddedPath: shared.clickhouse.embeddedPath });
});

after(async () => {
  for (const cleanup of cleanups) await cleanup().catch(() => {});
  await producer.disconnect();
  await admin.disconnect();
  await clickhouse?.close();
  rmSync(shared.clickhouse.embeddedPath, { recursive: true, force: true });
});

describe('enricher metadata join', () => {
  // Case A and B share topics and a database; the replay case reads the same topics into a fresh database.
  const labelled = caseConfig('labelled');
  const zero = nowNs();
  const at = (seconds: number) => zero + sec(seconds);

  it('names both ends of a flow between two pods at its start (namespaces, Deployments through ReplicaSets, the Service), and an IP reused by another pod after a deletion by its holder at each time', async () => {
    await createTopics(labelled);
    const checkout = deploymentPod({ namespace: 'shop', deployment: 'checkout', suffix: 'abc', ip: '10.1.0.5', node: 'n1', cgroupId: 101n, labels: { app: 'checkout', version: 'v1', team: 'red' }, at: at(-300) });
    const payments = deploymentPod({ namespace: 'pay', deployment: 'payments', suffix: 'xyz', ip: '10.1.0.9', node: 'n2', cgroupId: 202n, labels: { 'app.kubernetes.io/name': 'payments', tier: 'backend' }, at: at(-300) });
    // IP reuse: w1's pod holds 10.2.0.7, is deleted at -60 s; w2's pod gets 10.2.0.7 at -50 s. The server, db-0
    // (a StatefulSet pod on n1), sees their connections and names them by address.
    const w1 = deploymentPod({ namespace: 'shop', deployment: 'w1', suffix: 'a', ip: '10.2.0.7', node: 'n3', cgroupId: 301n, at: at(-100) });
    const w2 = deploymentPod({ namespace: 'shop', deployment: 'w2', suffix: 'b', ip: '10.2.0.7', node: 'n3', cgroupId: 302n, at: at(-50) });
    const db: MetadataChange[] = [
      objectChange('StatefulSet', { uid: 'sts-db', name: 'db', namespace: 'shop', at: at(-300) }),
      podChange({ uid: 'pod-db-0', name: 'db-0', namespace: 'shop', node: 'n1', ips: ['10.2.0.100'], owner: ownerRef('StatefulSet', 'db', 'sts-db'), labels: { app: 'db' }, at: at(-300) }),
      cgroupChange({ node: 'n1', id: 303n, podUid: 'pod-db-0', at: at(-300) }),
    ];
    const topics = topicsOf(labelled);
    await publishMetadata(producer, topics.metadata.topic, [
      objectChange('Namespace', { uid: 'ns-shop', name: 'shop', at: at(-300) }),
      objectChange('Namespace', { uid: 'ns-pay', name: 'pay', at: at(-300) }),
      ...checkout.changes,
      ...payments.changes,
      serviceChange({ uid: 'svc-payments', name: 'payments', namespace: 'pay', clusterIps: ['10.96.0.10'], at: at(-300) }),
      sliceChange({ uid: 'slice-payments', service: 'payments', namespace: 'pay', endpoints: [{ podUid: payments.uid, addresses: ['10.1.0.9'] }], ports: [8080], at: at(-300) }),
      ...db,
      ...w1.changes,
      tombstone(w1.uid, at(-60)),
      ...w2.changes,
    ]);
    // One connection checkout -> payments (through the ClusterIP, so its client sees that) seen from both sides.
    const toPayments = (spec: Pick<FlowSpec, 'side' | 'node' | 'cgroup' | 'server'>) => flowEvent({ ...spec, client: '10.1.0.5', serverPort: 8080, start: at(-30) });
    await publishFlows(labelled, [
      toPayments({ side: 'client', node: 'n1', cgroup: 101n, server: '10.96.0.10' }),
      toPayments({ side: 'server', node: 'n2', cgroup: 202n, server: '10.1.0.9' }),
    ]);
    const toDb = (start: number) => flowEvent({ side: 'server', node: 'n1', cgroup: 303n, client: '10.2.0.7', server: '10.2.0.100', serverPort: 5432, start: at(start) });
    await publishFlows(labelled, [-95, -80, -65, -55, -45, -20].map(toDb));
    // Everything above is published: the watermark says so (and is newer than every message's timestamp).
    await publishMetadata(producer, topics.metadata.topic, [watermarkChange(nowNs())]);

    await withEnricher(labelled, async (reader) => {
      await waitFor(async () => (await rowCount(labelled)) === 8, { timeoutMs: 60_000, what: '8 rows' });
      assert.deepEqual(await reader.sum('sidecarless.enricher.late.drops', 'reason'), {});
    });

    const checkoutEnd = (status = 'hit'): EndColumns => ({
      namespace: 'shop',
      pod: checkout.name,
      uid: checkout.uid,
      workload: 'Deployment/checkout',
      service: '',
      node: 'n1',
      kind: 'pod',
      labels: { app: 'checkout', version: 'v1' },
      status,
    });
    const paymentsEnd: EndColumns = {
      namespace: 'pay',
      pod: payments.name,
      uid: payments.uid,
      workload: 'Deployment/payments',
      service: 'payments',
      node: 'n2',
      kind: 'pod',
      labels: { 'app.kubernetes.io/name': 'payments' },
      status: 'hit',
    };
    const dbEnd: EndColumns = { namespace: 'shop', pod: 'db-0', uid: 'pod-db-0', workload: 'StatefulSet/db', service: '', node: 'n1', kind: 'pod', labels: { app: 'db' }, status: 'hit' };
    const reused = (pod: typeof w1, workload: string): EndColumns => ({ namespace: 'shop', pod: pod.name, uid: pod.uid, workload: `Deployment/${workload}`, service: '', node: 'n3', kind: 'pod', labels: {}, status: 'hit' });
    assert.deepEqual(await identities(labelled, zero), [
      { side: 'server', start: -95, client: reused(w1, 'w1'), server: dbEnd },
      { side: 'server', start: -80, client: reused(w1, 'w1'), server: dbEnd },
      { side: 'server', start: -65, client: reused(w1, 'w1'), server: dbEnd },
      // Between the deletion and the new pod, nobody held the address (a private one: kind unknown).
      { side: 'server', start: -55, client: nobody('miss'), server: dbEnd },
      { side: 'server', start: -45, client: reused(w2, 'w2'), server: dbEnd },
      { side: 'client', start: -30, client: checkoutEnd(), server: { ...nobody('hit', 'service'), namespace: 'pay', service: 'payments' } },
      { side: 'server', start: -30, client: checkoutEnd(), server: paymentsEnd },
      { side: 'server', start: -20, client: reused(w2, 'w2'), server: dbEnd },
    ]);
    // The rollup names the same edges: client workload -> server workload (Service), per observing side.
    assert.deepEqual(
      await queryRows(
        clickhouse,
        `SELECT toString(observer_side) AS side, client_k8s_workload_name AS client, server_k8s_workload_name AS server, server_k8s_service_name AS service,
                toString(sum(connections)) AS connections
         FROM ${labelled.clickhouse.database}.flow_edges_1m GROUP BY side, client, server, service ORDER BY side, client, server, service`,
      ),
      [
        { side: 'client', client: 'checkout', server: '', service: 'payments', connections: '1' },
        { side: 'server', client: '', server: 'db', service: '', connections: '1' },
        { side: 'server', client: 'checkout', server: 'payments', service: 'payments', connections: '1' },
        { side: 'server', client: 'w1', server: 'db', service: '', connections: '3' },
        { side: 'server', client: 'w2', server: 'db', service: '', connections: '2' },
      ],
    );
  });

  it('replays both topics from the beginning into a fresh database: identical rows, labels and rollup', async () => {
    const replay = caseConfig('replayed', {}, 'labelled');
    await withEnricher(replay, async () => {
      await waitFor(async () => (await rowCount(replay)) === 8, { timeoutMs: 60_000, what: '8 replayed rows' });
    });
    const [first, second] = [labelled, replay].map((config) => `${config.clickhouse.database}.flows`);
    const differing = await queryRows<{ n: string }>(
      clickhouse,
      `SELECT (SELECT count() FROM (SELECT * FROM ${first} EXCEPT SELECT * FROM ${second})) + (SELECT count() FROM (SELECT * FROM ${second} EXCEPT SELECT * FROM ${first})) AS n`,
    );
    assert.deepEqual(differing, [{ n: '0' }]);
    assert.deepEqual(await identities(replay, zero), await identities(labelled, zero));
    const rollup = (config: Config) =>
      queryRows<{ connections: string }>(
        clickhouse,
        `SELECT minute, observer_side, client_k8s_namespace_name, client_k8s_workload_kind, client_k8s_workload_name, server_k8s_namespace_name,
                server_k8s_workload_kind, server_k8s_workload_name, server_k8s_service_name, server_port, sum(connections) AS connections,
                sum(failed_connections) AS failed, sum(bytes_client_to_server) AS sent, sum(bytes_server_to_client) AS received,
                sum(retransmits) AS retransmits, quantilesTimingMerge(0.5, 0.99)(rtt_code) AS rtt
         FROM ${config.clickhouse.database}.flow_edges_1m GROUP BY ALL ORDER BY ALL`,
      );
    const replayed = await rollup(replay);
    assert.equal(replayed.reduce((sum, row) => sum + Number(row.connections), 0), 8);
    assert.deepEqual(replayed, await rollup(labelled));
  });

  /**
   * A source that is alive (it publishes a watermark every 200 ms) but has not yet observed the pod that opened a
   * connection: it repeats its last watermark, from before the flow, until `publishPod`.
   */
  /**
   * A flow whose pod's metadata is published late: `after` a delay (the flow waits meanwhile), or once the row is
   * written (the hold expired first).
   */
  async function lateMetadataCase(
    config: Config,
    after: { delayMs: number } | 'the row is written',
  ): Promise<{ rows: Array<Record<string, unknown>>; late: Record<string, number>; rowsWhenPublished: number }> {
    await createTopics(config);
    const topics = topicsOf(config);
    const before = nowNs();
    await publishMetadata(producer, topics.metadata.topic, [watermarkChange(before)]);
    let ticking = true;
    const ticker = (async () => {
      while (ticking) {
        await publishMetadata(producer, topics.metadata.topic, [watermarkChange(before)]);
        await sleep(200);
      }
    })();
    const pod = deploymentPod({ namespace: 'shop', deployment: 'late', suffix: 'q', ip: '10.3.0.5', node: 'n1', cgroupId: 111n, labels: { app: 'late' }, at: before - sec(10) });
    let result: { late: Record<string, number>; rowsWhenPublished: number } | undefined;
    try {
      await withEnricher(config, async (reader) => {
        await publishFlows(config, [flowEvent({ side: 'client', node: 'n1', cgroup: 111n, client: '10.3.0.5', server: '198.51.100.7', serverPort: 443, start: nowNs() })]);
        if (after === 'the row is written') {
          await waitFor(async () => (await rowCount(config)) === 1, { timeoutMs: 30_000, what: 'the row, written when the hold expired' });
        } else {
          // The metadata source is this late (the flow waits meanwhile: nothing is stored).
          await sleep(after.delayMs);
        }
        const rowsWhenPublished = await rowCount(config);
        ticking = false;
        await ticker;
        await publishMetadata(producer, topics.metadata.topic, [...pod.changes, watermarkChange(nowNs())]);
        await waitFor(async () => (await rowCount(config)) === 1, { timeoutMs: 30_000, what: 'the row' });
        result = { late: await reader.sum('sidecarless.enricher.late.drops', 'reason'), rowsWhenPublished };
      });
    } finally {
      ticking = false;
      await ticker;
    }
    const rows = await queryRows(
      clickhouse,
      `SELECT client_k8s_workload_name AS workload, client_labels AS labels, toString(client_enrichment) AS client, toString(server_enrichment) AS server,
              toString(server_endpoint_kind) AS server_kind
       FROM ${config.clickhouse.database}.flows`,
    );
    return { rows, ...result! };
  }

  it('holds a flow whose metadata arrives 2 s after it, and labels it', async () => {
    const outcome = await lateMetadataCase(caseConfig('held', { metadataHoldMs: 10_000 }), { delayMs: 2000 });
    assert.deepEqual(outcome, {
      rows: [{ workload: 'late', labels: { app: 'late' }, client: 'hit', server: 'miss', server_kind: 'external' }],
      late: {},
      rowsWhenPublished: 0,
    });
  });

  it('after the hold, writes the flow with what is known: late, counted by reason', async () => {
    const outcome = await lateMetadataCase(caseConfig('expired', { metadataHoldMs: 1000 }), 'the row is written');
    assert.deepEqual(outcome, {
      rows: [{ workload: '', labels: {}, client: 'late', server: 'late', server_kind: 'external' }],
      late: { metadata_behind: 1 },
      rowsWhenPublished: 1,
    });
  });

  it('holds nothing without a watermark source: rows are written at once, misses as misses', async () => {
    const config = caseConfig('unwatched', { metadataHoldMs: 60_000 });
    await createTopics(config);
    await withEnricher(config, async (reader) => {
      const sent = Date.now();
      await publishFlows(config, [flowEvent({ side: 'client', node: 'n1', cgroup: 5n, client: '10.4.0.5', server: '10.4.0.6', start: nowNs() })]);
      await waitFor(async () => (await rowCount(config)) === 1, { timeoutMs: 55_000, intervalMs: 50, what: 'the row' });
      // The hold is 60 s: a row written in well under half of it was not held.
      assert.ok(Date.now() - sent < 25_000, `written after ${Date.now() - sent} ms`);
      assert.deepEqual(await reader.sum('sidecarless.enricher.late.drops', 'reason'), {});
    });
    assert.deepEqual(
      await queryRows(clickhouse, `SELECT toString(client_enrichment) AS client, toString(server_enrichment) AS server FROM ${config.clickhouse.database}.flows`),
      [{ client: 'miss', server: 'miss' }],
    );
  });
});
