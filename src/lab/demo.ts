/**
 * The demo (`sidecarless demo`): the pipeline on this node with embedded defaults, end to end, in one process.
 *
 *   1. Start the local stack (Kafka, the Kubernetes API server; ClickHouse's embedded engine needs no server).
 *   2. Create the demo's cluster: two namespaces, three Deployments (one pod each, cgroups named as the kubelet
 *      names them) and two Services with their EndpointSlices, as real API objects; HTTP servers in two pods.
 *   3. Run the metadata role (the API server's objects → metadata.v1), the enricher and the collector (tracing the
 *      pods' cgroups, HTTP capture on), then HTTP traffic between the pods, some of it answered with errors.
 *   4. Wait until every connection and every exchange is stored, then print the workload → workload (Service) edges
 *      from ClickHouse's per-minute edge rollup, the requests/s, error % and p50/p99 latency per Service from the
 *      RED rollup (as the servers answered them), and the counts.
 *   5. Stop the roles and remove the pods and their objects; Ctrl-C at any point does the same.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { loadConfig } from '../common/config.js';
import { createClickHouse } from '../common/clickhouse/client.js';
import { describeError } from '../common/errors.js';
import { textTable } from '../common/text-table.js';
import { createLogger } from '../common/logger.js';
import { startTelemetry } from '../common/telemetry.js';
import { startCollector, uninstallCollector } from '../collector/index.js';
import { startEnricher } from '../enricher/index.js';
import { startMetadata } from '../metadata/role.js';
import { createClusterLab, type ClusterLab } from './cluster.js';
import { newLabId } from './names.js';
import type { Pod } from './pods.js';
import { runHttpLoad, startHttpServer } from './traffic.js';
import { kafkaServer } from './stack/kafka-server.js';
import { kubeCredentials } from './stack/kube-credentials.js';
import { kubernetesServer } from './stack/kubernetes.js';
import { waitFor } from './stack/processes.js';

/** One Service's requests as its servers answered them (http_red_1m, observer side server). */
interface ServiceRed {
  service: string;
  requests: string;
  errors: string;
  p50_ms: number;
  p99_ms: number;
}

interface Edge {
  client: string;
  server: string;
  service: string;
  server_port: number;
  connections: string;
  sent: string;
  received: string;
  rtt_p50_us: number;
  rtt_p99_us: number;
}

/** Who calls whom, what, how much (the servers answer /status/<code> with that status: known errors). */
const calls = [
  { from: 'frontend', to: 'backend', path: '/api/orders/1042', requests: 300, concurrency: 3 },
  { from: 'frontend', to: 'payments', path: '/charge/7f3e9a2c-55aa-4c1e-9b0e-1a2b3c4d5e6f', requests: 100, concurrency: 2 },
  { from: 'frontend', to: 'payments', path: '/status/503', requests: 20, concurrency: 1 },
  { from: 'backend', to: 'payments', path: '/status/404', requests: 60, concurrency: 1 },
] as const;
const servers = { backend: { port: 8080, responseBytes: 4096 }, payments: { port: 9090, responseBytes: 512 } } as const;
/** Which namespace each Deployment runs in; a suffix keeps one run's objects apart from another's (or a killed run's). */
const namespaceOf = { frontend: 'shop', backend: 'shop', payments: 'billing' } as const;

async function buildCluster(): Promise<ClusterLab> {
  const suffix = newLabId().slice(0, 4);
  const ns = (name: keyof typeof namespaceOf) => `${namespaceOf[name]}-${suffix}`;
  return createClusterLab({
    name: 'demo',
    namespaces: [
      { name: `shop-${suffix}`, labels: { team: 'shop' } },
      { name: `billing-${suffix}`, labels: { team: 'billing' } },
    ],
    services: Object.entries(servers).map(([name, { port }]) => ({
      name,
      namespace: ns(name as keyof typeof servers),
      selector: { app: name },
      ports: [{ name: 'http', port, targetPort: 'http', protocol: 'TCP' }],
    })),
    pods: (Object.keys(namespaceOf) as Array<keyof typeof namespaceOf>).map((name) => ({
      name,
      namespace: ns(name),
      workload: { kind: 'Deployment', name },
      labels: { app: name },
      ports: name in servers ? [{ name: 'http', containerPort: servers[name as keyof typeof servers].port, protocol: 'TCP' }] : [],
    })),
  });
}

/** Connections that ended since `since`, per client workload → server workload (Service), as the clients saw them. */
async function edges(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<Edge[]> {
  const result = await clickhouse.query({
    query: `SELECT concat(client_k8s_namespace_name, '/', client_k8s_workload_name) AS client,
                   concat(server_k8s_namespace_name, '/', server_k8s_workload_name) AS server,
                   server_k8s_service_name AS service, server_port,
                   toString(sum(connections)) AS connections,
                   toString(sum(bytes_client_to_server)) AS sent, toString(sum(bytes_server_to_client)) AS received,
                   round(exp(quantilesTimingMerge(0.5, 0.99)(rtt_code)[1] / 56)) AS rtt_p50_us,
                   round(exp(quantilesTimingMerge(0.5, 0.99)(rtt_code)[2] / 56)) AS rtt_p99_us
            FROM ${database}.flow_edges_1m
            WHERE observer_side = 'client' AND minute >= toStartOfMinute(fromUnixTimestamp64Nano({since:Int64}))
            GROUP BY client, server, service, server_port
            ORDER BY toUInt64(sent) + toUInt64(received) DESC`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  return result.json<Edge>();
}

async function storedFinalRows(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<{ rows: number; named: number }> {
  const result = await clickhouse.query({
    query: `SELECT count() AS rows, countIf(client_enrichment = 'hit' AND server_enrichment = 'hit') AS named
            FROM ${database}.flows WHERE record_kind = 'final' AND time >= fromUnixTimestamp64Nano({since:Int64})`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  const row = (await result.json<{ rows: string; named: string }>())[0];
  return { rows: Number(row?.rows ?? 0), named: Number(row?.named ?? 0) };
}

/** Per Service (namespace/name) since `sinceNs`: requests, errors and latency quantiles, as the servers answered. */
async function serviceRed(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<ServiceRed[]> {
  const result = await clickhouse.query({
    query: `SELECT concat(server_k8s_namespace_name, '/', server_k8s_service_name) AS service,
                   toString(sum(requests)) AS requests, toString(sum(errors)) AS errors,
                   round(exp(quantilesTimingMerge(0.5, 0.99)(duration_code)[1] / 56) / 1000, 2) AS p50_ms,
                   round(exp(quantilesTimingMerge(0.5, 0.99)(duration_code)[2] / 56) / 1000, 2) AS p99_ms
            FROM ${database}.http_red_1m
            WHERE observer_side = 'server' AND minute >= toStartOfMinute(fromUnixTimestamp64Nano({since:Int64}))
            GROUP BY service ORDER BY service`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  return result.json<ServiceRed>();
}

async function storedExchanges(clickhouse: ClickHouseClient, database: string, sinceNs: bigint): Promise<number> {
  const result = await clickhouse.query({
    query: `SELECT count() AS rows FROM ${database}.http_requests WHERE start_time >= fromUnixTimestamp64Nano({since:Int64})`,
    query_params: { since: sinceNs.toString() },
    format: 'JSONEachRow',
  });
  return Number((await result.json<{ rows: string }>())[0]?.rows ?? 0);
}

/** Columns from `numericFrom` on are right-aligned. */
function printTable(header: string[], lines: string[][], numericFrom: number): void {
  for (const line of textTable(header, lines, header.map((_, i) => i >= numericFrom))) console.log(line);
}

/** Runs the demo; resolves to the process exit code (130 when interrupted). */
export async function runDemo(): Promise<number> {
  const logger = createLogger({ level: process.env.SIDECARLESS_LOG_LEVEL ?? 'warn' });
  console.log('starting Kafka and the Kubernetes API server (local stack)...');
  await Promise.all([kafkaServer.up(), kubernetesServer.up()]);
  const cluster = await buildCluster();
  const stops: Array<() => Promise<void>> = [];
  const interrupted = new Promise<void>((resolve) => process.once('SIGINT', resolve));
  try {
    const pod = (name: string): Pod => cluster.pod(name);
    console.log(`pods: ${cluster.pods.map((p) => `${p.kubernetes!.namespace}/${p.kubernetes!.name} ${p.ip}`).join(', ')}`);
    const config = loadConfig({
      argv: [],
      env: {
        ...process.env,
        SIDECARLESS_COLLECTOR_CGROUPS: cluster.pods.map((p) => p.cgroup.path).join(','),
        SIDECARLESS_HTTP_ENABLED: 'true',
        // The demo's programs apart from a collector this node may run, and removed at the end.
        SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-demo-${process.pid}`,
        SIDECARLESS_METADATA_KUBECONFIG: kubeCredentials.kubeconfigFile,
        SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
      },
    });
    const telemetry = await startTelemetry({ host: config.telemetry.host, metricsPort: 0 });
    stops.push(() => telemetry.shutdown());
    const metadata = await startMetadata({ config, logger, telemetry });
    stops.push(() => metadata.stop());
    const enricher = await startEnricher({ config, logger, telemetry });
    stops.push(() => enricher.stop());
    stops.push(async () => void uninstallCollector(config));
    const collector = await startCollector({ config, logger, telemetry });
    stops.push(() => collector.stop());
    const sinceNs = BigInt(Date.now()) * 1_000_000n;

    const running = await Promise.all(Object.entries(servers).map(([name, options]) => startHttpServer(pod(name), options)));
    console.log(`traffic: ${calls.map((c) => `${c.from} -> ${c.to} ${c.path} ${c.requests} requests`).join(', ')}`);
    const trafficStarted = Date.now();
    const loads = await Promise.race([
      Promise.all(calls.map((c) => runHttpLoad(pod(c.from), `http://${pod(c.to).ip}:${servers[c.to].port}${c.path}`, { requests: c.requests, concurrency: c.concurrency }))),
      interrupted.then(() => undefined),
    ]);
    const trafficSeconds = (Date.now() - trafficStarted) / 1000;
    await Promise.all(running.map((server) => server.stop()));
    if (!loads) return 130;
    const connections = loads.reduce((sum, load) => sum + load.connections, 0);

    const clickhouse = await createClickHouse({ ...config.clickhouse, database: undefined });
    stops.push(() => clickhouse.close());
    // Each connection closes on both ends, both traced: one final row per side.
    const wanted = 2 * connections;
    // Each exchange is seen by its client and by its server: two rows.
    const responses = loads.reduce((sum, load) => sum + load.responses, 0);
    const database = config.clickhouse.database;
    const stored = await Promise.race([
      waitFor(async () => (await storedFinalRows(clickhouse, database, sinceNs)).rows >= wanted && (await storedExchanges(clickhouse, database, sinceNs)) >= 2 * responses, {
        timeoutMs: 60_000,
        what: `${wanted} connection sides and ${2 * responses} exchange sides in ClickHouse`,
      }).then(() => true),
      interrupted.then(() => false),
    ]);
    if (!stored) return 130;
    console.log(`\nworkload -> workload edges (ClickHouse ${database}.flow_edges_1m, as the clients saw them):`);
    printTable(
      ['client workload', 'server workload', 'service', 'port', 'connections', 'bytes c->s', 'bytes s->c', 'rtt p50 µs', 'rtt p99 µs'],
      (await edges(clickhouse, database, sinceNs)).map((r) => [r.client, r.server, r.service, String(r.server_port), r.connections, r.sent, r.received, String(r.rtt_p50_us), String(r.rtt_p99_us)]),
      3,
    );
    console.log(`\nHTTP per Service (ClickHouse ${database}.http_red_1m, as the servers answered; rate over the ${trafficSeconds.toFixed(1)} s of traffic):`);
    printTable(
      ['service', 'requests', 'requests/s', 'error %', 'p50 ms', 'p99 ms'],
      (await serviceRed(clickhouse, database, sinceNs)).map((r) => [
        r.service,
        r.requests,
        (Number(r.requests) / trafficSeconds).toFixed(1),
        ((100 * Number(r.errors)) / Number(r.requests)).toFixed(1),
        String(r.p50_ms),
        String(r.p99_ms),
      ]),
      1,
    );
    const flows = collector.collectors.get('flows')!.stats;
    const http = collector.collectors.get('http')!.stats;
    const final = await storedFinalRows(clickhouse, database, sinceNs);
    console.log(
      `\n${responses} HTTP responses over ${connections} connections; ` +
        `collector read ${flows.recordsRead} flow records and ${http.recordsRead} HTTP chunk records, Kafka acknowledged ${flows.eventsProduced} flow events and ${http.eventsProduced} exchanges, ` +
        `${final.rows} final rows stored (${final.named} with both ends named), ${await storedExchanges(clickhouse, database, sinceNs)} exchange rows; ` +
        `drops: flows ${JSON.stringify(flows.drops)}, http ${JSON.stringify(http.drops)}`,
    );
    return 0;
  } catch (error) {
    console.error(`demo failed: ${describeError(error)}`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch((error) => console.error(`stopping: ${describeError(error)}`));
    cluster.destroy();
    console.log('pods and their objects removed; the local stack keeps running (`sidecarless stack down` stops it)');
  }
}
