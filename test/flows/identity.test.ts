/**
 * Kubernetes identity on both ends of real flows, end to end: lab pods that are API objects of every workload kind
 * (Deployment via ReplicaSet, StatefulSet, DaemonSet, CronJob via Job, a bare pod) in two namespaces call a Service's
 * pod; the metadata role watches the real API server, the collector (its own process) publishes its cgroups'
 * identities and the flows, and the enricher joins them at event time. Every final row of both sides must name
 * both ends exactly, also when a deleted pod's address is reused by a pod of another workload.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createLogger } from '../../src/common/logger.js';
import type { RunningRole } from '../../src/common/role.js';
import { startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { startEnricher } from '../../src/enricher/index.js';
import { startMetadata } from '../../src/metadata/role.js';
import { createClusterLab, type ClusterLab } from '../../src/lab/cluster.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { runTcpClient, startTcpServer } from '../../src/lab/traffic.js';
import { kafkaPort, kubeApiServerPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { queryRows } from '../helpers/clickhouse.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const logger = createLogger({ level: 'warn' });
const { config, env } = testConfig({ SIDECARLESS_COLLECTOR_FLUSH_MS: '50' });
const PORT = 7301;
const SEND = 3000;
const REPLY = 41_000;
const suffix = uniqueName('').replace(/_/g, '-');
const clients = `clients-${suffix}`;
const servers = `servers-${suffix}`;

/** The client pods, the workload each must be named by, and the pod name prefix the controller gives it. */
const callers = [
  { name: 'web', workload: { kind: 'Deployment', name: 'web' }, expected: { kind: 'Deployment', name: 'web' } },
  { name: 'db', workload: { kind: 'StatefulSet', name: 'db' }, expected: { kind: 'StatefulSet', name: 'db' } },
  { name: 'agent', workload: { kind: 'DaemonSet', name: 'agent' }, expected: { kind: 'DaemonSet', name: 'agent' } },
  { name: 'report', workload: { kind: 'CronJob', name: 'report' }, expected: { kind: 'CronJob', name: 'report' } },
  { name: 'tool', workload: undefined, expected: { kind: 'Pod', name: 'tool' } },
] as const;

let cluster: ClusterLab;
let telemetry: Telemetry;
let metadata: RunningRole;
let enricher: RunningRole;
let collector: CollectorProcess;
let clickhouse: ClickHouseClient;

interface Row {
  observer_side: string;
  client: string;
  client_ns: string;
  client_pod: string;
  client_pod_uid: string;
  client_kind: string;
  client_workload: string;
  client_endpoint: string;
  client_app: string;
  client_enrichment: string;
  server_ns: string;
  server_pod: string;
  server_kind: string;
  server_workload: string;
  server_service: string;
  server_endpoint: string;
  server_enrichment: string;
  c2s: string;
  s2c: string;
}

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
  cluster = await createClusterLab({
    name: 'identity-test',
    namespaces: [
      { name: clients, labels: { team: 'clients' } },
      { name: servers, labels: { team: 'servers' } },
    ],
    services: [{ name: 'api', namespace: servers, selector: { app: 'api' }, ports: [{ name: 'tcp', port: 80, targetPort: 'tcp', protocol: 'TCP' }] }],
    pods: [
      { name: 'api', namespace: servers, workload: { kind: 'Deployment', name: 'api' }, labels: { app: 'api' }, ports: [{ name: 'tcp', containerPort: PORT, protocol: 'TCP' }] },
      ...callers.map((c) => ({ name: c.name, namespace: clients, ...(c.workload ? { workload: c.workload } : {}), labels: { app: c.name } })),
    ],
  });
  telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: 0 });
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  metadata = await startMetadata({ config, logger, telemetry });
  enricher = await startEnricher({ config, logger, telemetry });
  // The lab's cgroup: every pod below it is traced, also those the IP-reuse test adds later.
  collector = await startCollectorProcess(env, () => [cluster.lab.cgroupPath]);
});

after(async () => {
  await collector?.kill();
  uninstallCollectorPins(env);
  await enricher?.stop();
  await metadata?.stop();
  await telemetry?.shutdown();
  cluster?.destroy();
  await dropTestData(config, clickhouse);
});

describe('Kubernetes identity on flows', () => {
  it('names both ends of every connection: namespaces, pods, workloads of every kind, and the Service the server backs', async () => {
    const api = cluster.pod('api');
    const server = await startTcpServer(api, { port: PORT, expectBytes: SEND, replyBytes: REPLY });
    for (const caller of callers) {
      const result = await runTcpClient(cluster.pod(caller.name), { host: api.ip, port: PORT, connections: 1, sendBytes: SEND, expectBytes: REPLY });
      assert.equal(result.completed, 1, `${caller.name}: ${JSON.stringify(result.errors)}`);
    }
    await server.stop();
    const table = `${config.clickhouse.database}.flows`;
    const wanted = 2 * callers.length;
    await waitFor(
      async () => Number((await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${table} WHERE server_port = ${PORT} AND record_kind = 'final'`))[0]!.n) >= wanted,
      { timeoutMs: 60_000, what: `${wanted} final rows` },
    );
    const rows = await queryRows<Row>(
      clickhouse,
      `SELECT toString(observer_side) AS observer_side, replaceOne(toString(client_address), '::ffff:', '') AS client,
              client_k8s_namespace_name AS client_ns, client_k8s_pod_name AS client_pod, client_k8s_pod_uid AS client_pod_uid,
              client_k8s_workload_kind AS client_kind, client_k8s_workload_name AS client_workload,
              toString(client_endpoint_kind) AS client_endpoint, client_labels['app'] AS client_app, toString(client_enrichment) AS client_enrichment,
              server_k8s_namespace_name AS server_ns, server_k8s_pod_name AS server_pod,
              server_k8s_workload_kind AS server_kind, server_k8s_workload_name AS server_workload, server_k8s_service_name AS server_service,
              toString(server_endpoint_kind) AS server_endpoint, toString(server_enrichment) AS server_enrichment,
              toString(bytes_client_to_server) AS c2s, toString(bytes_server_to_client) AS s2c
       FROM ${table} WHERE server_port = ${PORT} AND record_kind = 'final' ORDER BY client, observer_side`,
    );
    assert.equal(rows.length, wanted);
    const apiObject = cluster.object('api');
    for (const caller of callers) {
      const pod = cluster.pod(caller.name);
      const object = cluster.object(caller.name);
      const expected = {
        client: pod.ip,
        client_ns: clients,
        client_pod: object.metadata!.name!,
        client_pod_uid: object.metadata!.uid!,
        client_kind: caller.expected.kind,
        client_workload: caller.expected.name,
        client_endpoint: 'pod',
        client_app: caller.name,
        client_enrichment: 'hit',
        server_ns: servers,
        server_pod: apiObject.metadata!.name!,
        server_kind: 'Deployment',
        server_workload: 'api',
        server_service: 'api',
        server_endpoint: 'pod',
        server_enrichment: 'hit',
        c2s: String(SEND),
        s2c: String(REPLY),
      };
      const sides = rows.filter((row) => row.client === pod.ip);
      assert.deepEqual(sides, [
        { observer_side: 'client', ...expected },
        { observer_side: 'server', ...expected },
      ], caller.name);
    }
  });
  it('an address reused by a pod of another workload: rows before the switch name the first, rows after the second', async () => {
    const api = cluster.pod('api');
    const port = PORT + 1;
    const server = await startTcpServer(api, { port, expectBytes: SEND, replyBytes: REPLY });
    const first = cluster.pod('tool');
    const firstObject = cluster.object('tool');
    const address = first.ip;
    const call = async (from: string) => {
      const result = await runTcpClient(cluster.pod(from), { host: api.ip, port, connections: 2, sendBytes: SEND, expectBytes: REPLY });
      assert.equal(result.completed, 2, `${from}: ${JSON.stringify(result.errors)}`);
    };
    await call('tool');
    await cluster.deletePod('tool');
    const second = await cluster.addPod({ name: 'reuser', namespace: clients, workload: { kind: 'Deployment', name: 'reuser' }, labels: { app: 'reuser' }, index: first.index });
    assert.equal(second.ip, address, 'the new pod took the deleted pod\'s address');
    const secondObject = cluster.object('reuser');
    await call('reuser');
    await server.stop();

    const table = `${config.clickhouse.database}.flows`;
    await waitFor(
      async () => Number((await queryRows<{ n: string }>(clickhouse, `SELECT count() AS n FROM ${table} WHERE server_port = ${port} AND record_kind = 'final'`))[0]!.n) >= 8,
      { timeoutMs: 60_000, what: '8 final rows' },
    );
    const rows = await queryRows<{ side: string; pod: string; uid: string; kind: string; workload: string; enrichment: string }>(
      clickhouse,
      `SELECT toString(observer_side) AS side, client_k8s_pod_name AS pod, client_k8s_pod_uid AS uid, client_k8s_workload_kind AS kind,
              client_k8s_workload_name AS workload, toString(client_enrichment) AS enrichment
       FROM ${table} WHERE server_port = ${port} AND record_kind = 'final' AND client_address = toIPv6({address:String})
       ORDER BY start_time, side`,
      { address: `::ffff:${address}` },
    );
    const named = (object: typeof firstObject, kind: string, workload: string) => ({ pod: object.metadata!.name!, uid: object.metadata!.uid!, kind, workload, enrichment: 'hit' });
    const before = named(firstObject, 'Pod', 'tool');
    const after = named(secondObject, 'Deployment', 'reuser');
    assert.deepEqual(rows, [
      ...[before, before].flatMap((r) => [{ side: 'client', ...r }, { side: 'server', ...r }]),
      ...[after, after].flatMap((r) => [{ side: 'client', ...r }, { side: 'server', ...r }]),
    ]);
  });
});
