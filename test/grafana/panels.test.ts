/**
 * Every panel of every dashboard in grafana/dashboards/ against data a real pipeline run wrote: lab pods that are
 * Kubernetes objects (shop/frontend calls shop/backend and billing/payments over HTTP, backend calls payments, one
 * connection is refused), the metadata role on the real API server, the collector as its own process (flows and
 * HTTP on the real kernel), the enforcer as its own process with two policies given by `sidecarless policy apply`
 * (backend may call payments only: its one connect() to frontend is denied; an audit-mode policy on payments would
 * deny frontend's calls), reporting every decision it makes (allowSampleEvery 1), the enricher into the embedded
 * ClickHouse engine, Kafka between them.
 *
 * Each dashboard's variables are resolved by running their queries (as Grafana does when it loads it), then every
 * ClickHouse query is expanded as the plugin expands it (expand.ts) and run with the dashboard's database as the
 * connection's default (the datasource's defaultDatabase): it must return at least one row and exactly the columns
 * the panel declares (dashboards.ts). The traffic is known, so the panels that show it are checked for exact
 * values, with all variables at All and with one namespace and workload chosen. Prometheus queries name only
 * metrics the running roles export (scraped from their /metrics).
 *
 * Generic: a dashboard added to the folder is run too. One over a table this run does not fill is run by the test
 * whose own run fills it instead (panel-run.ts: `checkedByTheirOwnRun`, e.g. the runs of `bench overhead`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createDropCounter, startTelemetry, type Telemetry } from '../../src/common/telemetry.js';
import { createLogger } from '../../src/common/logger.js';
import type { RunningRole } from '../../src/common/role.js';
import { startEnricher } from '../../src/enricher/index.js';
import { startMetadata } from '../../src/metadata/role.js';
import { createClusterLab, type ClusterLab } from '../../src/lab/cluster.js';
import { startCollectorProcess, uninstallCollectorPins, type CollectorProcess } from '../../src/lab/collector-process.js';
import { startEnforcerProcess, type EnforcerProcess } from '../../src/lab/enforcer-process.js';
import { PinDirectory } from '../../src/ebpf/pins.js';
import { runHttpLoad, runTcpClient, startHttpServer } from '../../src/lab/traffic.js';
import { kafkaPort, kubeApiServerPort, localHost } from '../../src/lab/stack/endpoints.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { cleanUpAll } from '../helpers/cleanup.js';
import { queryRows } from '../helpers/clickhouse.js';
import { dropTestData, testConfig } from '../helpers/flows.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';
import { freePort } from '../helpers/telemetry.js';
import { connectFrom, policyApply } from '../helpers/policy.js';
import { dataPanels, loadDashboards } from './dashboards.js';
import { assertPanelsReturnDeclaredColumns, checkedByTheirOwnRun, pick, resolveVariables, rowsOf, runPanels, type PanelData } from './panel-run.js';

const logger = createLogger({ level: 'warn' });
const enricherMetricsPort = await freePort();
const collectorMetricsPort = await freePort();
const { config, env } = testConfig({
  SIDECARLESS_COLLECTOR_FLUSH_MS: '50',
  SIDECARLESS_HTTP_ENABLED: 'true',
  SIDECARLESS_TELEMETRY_METRICS_PORT: String(collectorMetricsPort),
  // The policies are this test's alone (`policy apply`), not whatever other tests create on the shared API server.
  SIDECARLESS_METADATA_NETWORK_POLICIES: 'false',
});
const database = config.clickhouse.database;
const suffix = uniqueName('').replace(/_/g, '-');
const shop = `shop-${suffix}`;
const billing = `billing-${suffix}`;
const BACKEND_PORT = 8080;
const PAYMENTS_PORT = 9090;
/** Nothing listens there: the connection is refused. */
const CLOSED_PORT = 9099;
/** Who calls whom, what, how often: one keep-alive connection each. */
const CALLS = [
  { from: 'frontend', to: 'backend', port: BACKEND_PORT, path: '/api/orders/1042', route: '/api/orders/{id}', requests: 30 },
  { from: 'frontend', to: 'payments', port: PAYMENTS_PORT, path: '/status/503', route: '/status/{id}', requests: 5 },
  { from: 'backend', to: 'payments', port: PAYMENTS_PORT, path: '/charge/7f3e9a2c-55aa-4c1e-9b0e-1a2b3c4d5e6f', route: '/charge/{uuid}', requests: 10 },
] as const;
const EXCHANGES = CALLS.reduce((sum, call) => sum + call.requests, 0);
/** Final rows: each HTTP connection from both ends, the refused one from its client only. */
const FINAL_ROWS = 2 * CALLS.length + 1;
/** backend's connect() to frontend on this port is denied at connect (EPERM): no packet leaves, no flow is seen. */
const DENIED_PORT = 7070;
const DENIED_SOURCE_PORT = 20_000 + Math.floor(Math.random() * 10_000);
const ENFORCING = `backend-calls-payments`;
const AUDIT = `payments-from-backend`;
/** backend may call payments only (enforced); payments would take calls from backend only (audit mode). */
const POLICIES = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${ENFORCING}, namespace: ${shop}}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {team: billing}}, podSelector: {matchLabels: {app: payments}}}]
    ports: [{port: ${PAYMENTS_PORT}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${AUDIT}, namespace: ${billing}, annotations: {policy.sidecarless.dev/audit: "true"}}
spec:
  podSelector: {matchLabels: {app: payments}}
  policyTypes: [Ingress]
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: backend}}}]
    ports: [{port: ${PAYMENTS_PORT}}]
`;
/**
 * The kernel's decisions of the run, every one reported (allowSampleEvery 1), made for pods a policy selects only:
 * backend's connect() to payments (allowed by its rule) and to frontend (denied); the SYNs payments' socket took
 * (selected by the audit policy only: frontend's would be denied, backend's is an audit allow). frontend, and
 * backend's ingress, are selected by none: what they do is not judged, so not reported.
 */
const VERDICTS = { allow: 1, audit_allow: 1, audit_deny: 1, deny: 1 };
const VERDICT_ROWS = Object.values(VERDICTS).reduce((sum, n) => sum + n, 0);
const pins = `/sys/fs/bpf/sidecarless-test-grafana-${suffix}`;

let cluster: ClusterLab | undefined;
let telemetry: Telemetry | undefined;
let metadata: RunningRole | undefined;
let enricher: RunningRole | undefined;
let collector: CollectorProcess | undefined;
let enforcer: EnforcerProcess | undefined;
let clickhouse: ClickHouseClient | undefined;
let from: Date;
let to: Date;
/** What the dashboards' panels run on, once the run's data is stored. */
let data: PanelData;

const minute = 60_000;

before(async () => {
  await requireStackService('Kafka', localHost, kafkaPort);
  await requireStackService('the Kubernetes API server', localHost, kubeApiServerPort);
  cluster = await createClusterLab({
    name: 'grafana-test',
    namespaces: [
      { name: shop, labels: { team: 'shop' } },
      { name: billing, labels: { team: 'billing' } },
    ],
    services: [
      { name: 'backend', namespace: shop, selector: { app: 'backend' }, ports: [{ name: 'http', port: BACKEND_PORT, targetPort: 'http', protocol: 'TCP' }] },
      { name: 'payments', namespace: billing, selector: { app: 'payments' }, ports: [{ name: 'http', port: PAYMENTS_PORT, targetPort: 'http', protocol: 'TCP' }] },
    ],
    pods: [
      { name: 'frontend', namespace: shop, workload: { kind: 'Deployment', name: 'frontend' }, labels: { app: 'frontend' } },
      { name: 'backend', namespace: shop, workload: { kind: 'Deployment', name: 'backend' }, labels: { app: 'backend' }, ports: [{ name: 'http', containerPort: BACKEND_PORT, protocol: 'TCP' }] },
      { name: 'payments', namespace: billing, workload: { kind: 'Deployment', name: 'payments' }, labels: { app: 'payments' }, ports: [{ name: 'http', containerPort: PAYMENTS_PORT, protocol: 'TCP' }] },
    ],
  });
  telemetry = await startTelemetry({ host: '127.0.0.1', metricsPort: enricherMetricsPort });
  clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
  metadata = await startMetadata({ config, logger, telemetry });
  enforcer = await startEnforcerProcess({
    ...env,
    SIDECARLESS_ENFORCER_CGROUPS: cluster.lab.cgroupPath,
    SIDECARLESS_ENFORCER_PIN_DIRECTORY: pins,
    SIDECARLESS_ENFORCER_ALLOW_SAMPLE_EVERY: '1',
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
  });
  await policyApply(POLICIES, env);
  const applied = () => enforcer!.logs.filter((entry) => entry.msg === 'policy state applied');
  // Two cgroups per pod: its own and its container's.
  await waitFor(async () => applied().some((entry) => entry.policies === 2 && entry.cgroups === 2 * 3), {
    timeoutMs: 30_000,
    what: "both policies in the enforcer's applied state, with the cgroups of the three pods",
  }).catch((error: unknown) => assert.fail(`${String(error)}; applied: ${JSON.stringify(applied())}; last lines: ${JSON.stringify(enforcer!.logs.slice(-5))}`));
  enricher = await startEnricher({ config, logger, telemetry });
  collector = await startCollectorProcess(env, () => [cluster!.lab.cgroupPath]);
  from = new Date(Math.floor(Date.now() / minute) * minute - minute);

  const pod = (name: string) => cluster!.pod(name);
  const servers = await Promise.all([
    startHttpServer(pod('backend'), { port: BACKEND_PORT, responseBytes: 4096 }),
    startHttpServer(pod('payments'), { port: PAYMENTS_PORT, responseBytes: 512 }),
  ]);
  for (const call of CALLS) {
    const load = await runHttpLoad(pod(call.from), `http://${pod(call.to).ip}:${call.port}${call.path}`, { requests: call.requests, concurrency: 1 });
    assert.deepEqual([load.responses, load.connections], [call.requests, 1], `${call.from} -> ${call.to}`);
  }
  const refused = await runTcpClient(pod('frontend'), { host: pod('payments').ip, port: CLOSED_PORT, connections: 1, sendBytes: 1, expectBytes: 0 });
  assert.equal(refused.completed, 0, 'nothing listens on the closed port');
  await Promise.all(servers.map((server) => server.stop()));
  assert.equal(connectFrom(pod('backend'), pod('frontend'), DENIED_PORT, DENIED_SOURCE_PORT), 'error 1', 'EPERM: denied at connect');

  let stored: Record<'flows' | 'exchanges' | 'verdicts', string> | undefined;
  await waitFor(
    async () => {
      [stored] = await queryRows<Record<'flows' | 'exchanges' | 'verdicts', string>>(
        clickhouse!,
        `SELECT (SELECT count() FROM ${database}.flows WHERE record_kind = 'final' AND server_port IN (${BACKEND_PORT}, ${PAYMENTS_PORT}, ${CLOSED_PORT})) AS flows,
                (SELECT count() FROM ${database}.http_requests) AS exchanges,
                (SELECT count() FROM ${database}.verdicts) AS verdicts`,
      );
      return Number(stored!.flows) >= FINAL_ROWS && Number(stored!.exchanges) >= 2 * EXCHANGES && Number(stored!.verdicts) >= VERDICT_ROWS;
    },
    { timeoutMs: 60_000, what: `${FINAL_ROWS} final flow rows, ${2 * EXCHANGES} exchange rows and ${VERDICT_ROWS} verdict rows` },
  ).catch((error: unknown) => assert.fail(`${String(error)}; stored: ${JSON.stringify(stored)}`));
  to = new Date(Date.now() + minute);
  // The datasource's defaultDatabase: the dashboards name tables without a database.
  await clickhouse.command({ query: `USE ${database}` });
  data = { clickhouse, from, to };
});

after(async () => {
  await cleanUpAll([
    ['the collector', () => collector?.kill()],
    ["the collector's pins", () => uninstallCollectorPins(env)],
    ['the enforcer', () => enforcer?.kill()],
    ["the enforcer's pins", () => new PinDirectory(pins).remove()],
    ['the enricher', () => enricher?.stop()],
    ['the metadata role', () => metadata?.stop()],
    ['telemetry', () => telemetry?.shutdown()],
    ['the cluster', () => cluster?.destroy()],
    ['the test data', () => dropTestData(config, clickhouse)],
  ]);
});

const dashboards = loadDashboards();
const byUid = (uid: string) => {
  const found = dashboards.find((d) => d.dashboard.uid === uid);
  assert.ok(found, `dashboard ${uid}`);
  return found.dashboard;
};

describe('Grafana dashboards on a real pipeline run', () => {
  it('the variables list what the run named: both namespaces, all three workloads', async () => {
    for (const { dashboard } of dashboards.filter((d) => (d.dashboard.templating?.list ?? []).some((v) => v.name === 'namespace'))) {
      const variables = await resolveVariables(data, dashboard);
      assert.deepEqual(variables.find((v) => v.name === 'namespace')?.options, [billing, shop], dashboard.uid);
      assert.deepEqual(variables.find((v) => v.name === 'workload')?.options, ['backend', 'frontend', 'payments'], dashboard.uid);
      const shopOnly = await resolveVariables(data, dashboard, { namespace: [shop] });
      assert.deepEqual(shopOnly.find((v) => v.name === 'workload')?.options, ['backend', 'frontend'], `${dashboard.uid}: workloads of ${shop}`);
    }
  });

  // A dashboard over a table this run does not fill is checked on the run that fills it (panel-run.ts).
  for (const { file, dashboard } of dashboards.filter((d) => !(d.file in checkedByTheirOwnRun))) {
    it(`${file}: every ClickHouse panel returns rows with exactly the columns it declares`, async () => {
      await assertPanelsReturnDeclaredColumns(data, dashboard);
    });
  }

  it('service map: the workload graph and the edges of the run, as the clients saw them', async () => {
    const results = await runPanels(data, byUid('sidecarless-service-map'), await resolveVariables(data, byUid('sidecarless-service-map')));
    const [frontend, backend, payments] = [`${shop}/frontend`, `${shop}/backend`, `${billing}/payments`];
    assert.deepEqual(pick(rowsOf(results, 'Workload map', 'nodes'), 'id', 'title', 'subtitle', 'mainstat', 'secondarystat'), [
      { id: payments, title: 'payments', subtitle: billing, mainstat: 3, secondarystat: 1 },
      { id: backend, title: 'backend', subtitle: shop, mainstat: 2, secondarystat: 0 },
      { id: frontend, title: 'frontend', subtitle: shop, mainstat: 3, secondarystat: 1 },
    ]);
    assert.deepEqual(pick(rowsOf(results, 'Workload map', 'edges'), 'id', 'source', 'target', 'mainstat'), [
      { id: `${backend} -> ${payments}`, source: backend, target: payments, mainstat: 1 },
      { id: `${frontend} -> ${payments}`, source: frontend, target: payments, mainstat: 2 },
      { id: `${frontend} -> ${backend}`, source: frontend, target: backend, mainstat: 1 },
    ]);
    const edges = pick(rowsOf(results, 'Edges'), 'client', 'server', 'service', 'port', 'connections', 'failed');
    assert.deepEqual(edges.sort((a, b) => Number(a.port) - Number(b.port) || String(a.client).localeCompare(String(b.client))), [
      { client: frontend, server: backend, service: 'backend', port: BACKEND_PORT, connections: 1, failed: 0 },
      { client: backend, server: payments, service: 'payments', port: PAYMENTS_PORT, connections: 1, failed: 0 },
      { client: frontend, server: payments, service: 'payments', port: PAYMENTS_PORT, connections: 1, failed: 0 },
      { client: frontend, server: payments, service: '', port: CLOSED_PORT, connections: 1, failed: 1 },
    ]);
  });

  it('service RED: requests, errors and duration per route as the servers answered; one namespace and workload chosen narrows it', async () => {
    const dashboard = byUid('sidecarless-service-red');
    const seconds = Math.floor(to.getTime() / 1000) - Math.floor(from.getTime() / 1000);
    const results = await runPanels(data, dashboard, await resolveVariables(data, dashboard));
    const all = rowsOf(results, 'Routes');
    assert.deepEqual(pick(all, 'workload', 'service', 'method', 'route', 'requests', 'errors', 'error_ratio', 'requests_per_second'), [
      { workload: `${shop}/backend`, service: 'backend', method: 'GET', route: '/api/orders/{id}', requests: 30, errors: 0, error_ratio: 0, requests_per_second: 30 / seconds },
      { workload: `${billing}/payments`, service: 'payments', method: 'GET', route: '/charge/{uuid}', requests: 10, errors: 0, error_ratio: 0, requests_per_second: 10 / seconds },
      { workload: `${billing}/payments`, service: 'payments', method: 'GET', route: '/status/{id}', requests: 5, errors: 5, error_ratio: 1, requests_per_second: 5 / seconds },
    ]);
    for (const row of all) {
      const [p50, p90, p99] = [row.p50_ms, row.p90_ms, row.p99_ms].map(Number);
      assert.ok(p50! > 0 && p50! <= p90! && p90! <= p99! && p99! < 1_000, `${row.route}: duration quantiles ${p50} ≤ ${p90} ≤ ${p99} ms`);
    }
    const byClass = new Map<string, number>();
    for (const row of rowsOf(results, 'Requests by status class')) {
      byClass.set(String(row.status_class), (byClass.get(String(row.status_class)) ?? 0) + Number(row.requests_per_second) * 60);
    }
    assert.deepEqual(Object.fromEntries([...byClass].map(([k, v]) => [k, Math.round(v)])), { '2xx': 40, '5xx': 5 });

    const backendOnly = rowsOf(await runPanels(data, dashboard, await resolveVariables(data, dashboard, { namespace: [shop], workload: ['backend'] })), 'Routes');
    assert.deepEqual(pick(backendOnly, 'workload', 'route', 'requests'), [{ workload: `${shop}/backend`, route: '/api/orders/{id}', requests: 30 }]);
  });

  it('TCP health and L4 flows: the refused connection, how connections ended, the top talkers', async () => {
    const tcp = await runPanels(data, byUid('sidecarless-tcp-health'), await resolveVariables(data, byUid('sidecarless-tcp-health')));
    assert.deepEqual(pick(rowsOf(tcp, 'Unhealthy edges'), 'client', 'server', 'port', 'connections', 'failed'), [
      { client: `${shop}/frontend`, server: `${billing}/payments`, port: CLOSED_PORT, connections: 1, failed: 1 },
    ]);
    const ends = new Map<string, number>();
    for (const row of rowsOf(tcp, 'How connections ended')) ends.set(String(row.close_reason), (ends.get(String(row.close_reason)) ?? 0) + Number(row.connections));
    assert.equal(ends.get('refused'), 1, JSON.stringify([...ends]));
    assert.equal([...ends.values()].reduce((sum, n) => sum + n, 0), CALLS.length + 1, 'every client-side final row, once');

    const l4 = await runPanels(data, byUid('sidecarless-l4-flows'), await resolveVariables(data, byUid('sidecarless-l4-flows')));
    const talkers = rowsOf(l4, 'Top talkers by workload');
    assert.deepEqual(talkers[0] && pick([talkers[0]], 'client', 'server', 'connections'), [{ client: `${shop}/frontend`, server: `${shop}/backend`, connections: 1 }], 'backend answered the most bytes');
    assert.ok(Number(talkers[0]!.bytes_received) > 30 * 4096, `30 responses of 4,096 body bytes: ${talkers[0]!.bytes_received}`);
    const byAddress = pick(rowsOf(l4, 'Top talkers by address'), 'client_address', 'server_address', 'server_port', 'client', 'server');
    assert.deepEqual(byAddress[0], { client_address: cluster!.pod('frontend').ip, server_address: cluster!.pod('backend').ip, server_port: BACKEND_PORT, client: `${shop}/frontend`, server: `${shop}/backend` });
  });

  it('policy verdicts: the denied connect() with its 5-tuple, pods and policy; the audit would-be denial; every decision by verdict', async () => {
    const dashboard = byUid('sidecarless-policy-verdicts');
    const results = await runPanels(data, dashboard, await resolveVariables(data, dashboard));
    /** A rate panel's rows as counts per label: each bucket's rate times the bucket's 60 s. */
    const counts = (title: string, label: string, rate: string) => {
      const sums = new Map<string, number>();
      for (const row of rowsOf(results, title)) sums.set(String(row[label]), (sums.get(String(row[label])) ?? 0) + Number(row[rate]) * 60);
      return Object.fromEntries([...sums].map(([key, n]) => [key, Math.round(n)]));
    };
    assert.deepEqual(counts('Denials per second by policy', 'policy', 'denials_per_second'), { [`${shop}/${ENFORCING}`]: 1 });
    assert.deepEqual(counts('Audit would-be denials per second by policy', 'policy', 'would_be_denials_per_second'), { [`${billing}/${AUDIT}`]: 1 });
    assert.deepEqual(counts('Decisions per second by verdict (allows sampled)', 'verdict', 'decisions_per_second'), VERDICTS);
    assert.deepEqual(rowsOf(results, 'Top denied workload edges'), [
      { source: `${shop}/backend`, destination: `${shop}/frontend`, direction: 'egress', verdict: 'deny', policy: `${shop}/${ENFORCING}`, decisions: 1 },
      { source: `${shop}/frontend`, destination: `${billing}/payments`, direction: 'ingress', verdict: 'audit_deny', policy: `${billing}/${AUDIT}`, decisions: 1 },
    ]);
    const [frontend, backend, payments] = ['frontend', 'backend', 'payments'].map((name) => cluster!.pod(name).ip);
    /** A Deployment's pod as Kubernetes names it (frontend-<hash>-<suffix>), with its namespace. */
    const podName = (name: string) => `${cluster!.object(name).metadata!.namespace}/${cluster!.object(name).metadata!.name}`;
    // The audit denial's source port is frontend's HTTP connection to payments, chosen by the kernel: as the collector saw it.
    const [call] = await queryRows<{ port: number }>(
      clickhouse!,
      `SELECT client_port AS port FROM ${database}.flows WHERE record_kind = 'final' AND observer_side = 'client' AND server_port = ${PAYMENTS_PORT} AND client_address = toIPv6({ip:String})`,
      { ip: frontend },
    );
    assert.deepEqual(pick(rowsOf(results, 'Latest denials'), 'verdict', 'direction', 'hook', 'transport', 'source_address', 'source_port', 'source_pod', 'destination_address', 'destination_port', 'destination_pod', 'deciding_policies', 'node'), [
      { verdict: 'deny', direction: 'egress', hook: 'connect', transport: 'tcp', source_address: backend, source_port: DENIED_SOURCE_PORT, source_pod: podName('backend'), destination_address: frontend, destination_port: DENIED_PORT, destination_pod: podName('frontend'), deciding_policies: `${shop}/${ENFORCING}`, node: config.node.name },
      { verdict: 'audit_deny', direction: 'ingress', hook: 'ingress', transport: 'tcp', source_address: frontend, source_port: call?.port, source_pod: podName('frontend'), destination_address: payments, destination_port: PAYMENTS_PORT, destination_pod: podName('payments'), deciding_policies: `${billing}/${AUDIT}`, node: config.node.name },
    ]);

    // billing chosen: the denial between two shop pods is left out, payments' audit denial stays.
    const billingOnly = await runPanels(data, dashboard, await resolveVariables(data, dashboard, { namespace: [billing] }));
    assert.deepEqual(pick(rowsOf(billingOnly, 'Latest denials'), 'verdict', 'source_pod', 'destination_pod'), [{ verdict: 'audit_deny', source_pod: podName('frontend'), destination_pod: podName('payments') }]);
    assert.equal(rowsOf(billingOnly, 'Denials per second by policy').length, 0);
  });

  it('pipeline health: stored positions of the three event topics, every final flow row named', async () => {
    const results = await runPanels(data, byUid('sidecarless-pipeline-health'), []);
    const topics = new Set(rowsOf(results, 'Stored position per topic partition').map((row) => row.topic));
    assert.deepEqual([...topics].sort(), [`${config.kafka.topicPrefix}flows.v1`, `${config.kafka.topicPrefix}http.v1`, `${config.kafka.topicPrefix}verdicts.v1`]);
    const enrichment = new Map<string, number>();
    for (const row of rowsOf(results, 'Enrichment of flows')) enrichment.set(String(row.server_enrichment), (enrichment.get(String(row.server_enrichment)) ?? 0) + Number(row.rows));
    assert.ok((enrichment.get('hit') ?? 0) >= FINAL_ROWS && !enrichment.has('late'), JSON.stringify([...enrichment]));
    for (const row of rowsOf(results, 'Storage delay')) assert.ok(Number(row.max_delay_s) < 60, `stored within a minute: ${JSON.stringify(row)}`);
  });

  it('Prometheus panels name only metrics the roles export', async () => {
    // A drop counter made the way every role makes them, so the drops panel's name pattern meets a real name.
    createDropCounter(telemetry!.meter('grafana-test'), logger, { name: 'collector.queue', remedies: { queue_full: 'test' } }).add('queue_full');
    const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const exported = new Set(
      [await scrape(enricherMetricsPort), await scrape(collectorMetricsPort)].flatMap((text) => [...text.matchAll(/^# TYPE (\S+)/gm)].map(([, name]) => name!)),
    );
    const expressions = dashboards.flatMap(({ dashboard }) => dataPanels(dashboard).flatMap((p) => (p.targets ?? []).flatMap((t) => (t.expr === undefined ? [] : [t.expr]))));
    assert.ok(expressions.length > 0, 'some panel queries Prometheus');
    for (const expr of expressions) {
      for (const [name] of expr.matchAll(/\bsidecarless_\w+/g)) assert.ok(exported.has(name), `${name} (in ${expr}) is not exported: ${[...exported].join(', ')}`);
      for (const [, pattern] of expr.matchAll(/__name__=~"([^"]+)"/g)) {
        assert.ok([...exported].some((name) => new RegExp(`^(?:${pattern})$`).test(name)), `${pattern} matches no exported metric`);
      }
    }
  });
});
