/**
 * `sidecarless bench overhead` at a small rate and a short window, as CI runs it: every mode measured with sane
 * values and exact counts (the load generator's requests = nginx's access log lines; in the proxy modes = the access
 * log lines and request counters of the client's outbound and the server's inbound listener, so the traffic went
 * through both; in ebpf mode two http.v1 events per request), its rows in ClickHouse `overhead_runs`, its JSON file
 * and line; and nothing left behind, neither after a run nor after one stopped by SIGTERM half way (netns, cgroups,
 * processes, pins, topics).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ISTIO_SIDECAR } from '../../bench/overhead-report.js';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createKafka } from '../../src/common/kafka/client.js';
import { createLogger } from '../../src/common/logger.js';
import type { HostConditions } from '../../src/lab/host-conditions.js';
import { labNames } from '../../src/lab/names.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { queryRows } from '../helpers/clickhouse.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';
import { dataPanels, loadDashboards } from '../grafana/dashboards.js';
import { assertPanelsReturnDeclaredColumns, pick, resolveVariables, rowsOf, runPanels } from '../grafana/panel-run.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sidecarless-test-overhead-'));
const database = uniqueName('test_overhead').replaceAll('-', '_');
const RATE = 300;
const SECONDS = 2;
const WARM_SECONDS = 1;
const SETTLE_SECONDS = 1;
/** The load generator sends exactly rate × seconds requests per window, the warm-up's before each, the settling load's before the first. */
const WINDOW_REQUESTS = RATE * SECONDS;
const MODE_REQUESTS = RATE * (SETTLE_SECONDS + SECONDS + WARM_SECONDS);
/** Every request passes the client's outbound listener and the server's inbound one, and no other. */
const throughProxies = {
  proxy_requests: { outbound_client: MODE_REQUESTS, inbound_client: 0, outbound_server: 0, inbound_server: MODE_REQUESTS },
};

/**
 * A proxy mode's access logs: a line per request on each listener on the way, but for lines HAProxy itself counted
 * as dropped (2.6 drops one now and then when both its threads write at once: seen once in four runs at 300/s).
 */
function assertLoggedByProxies(counts: Record<string, unknown>, mode: string): Record<string, unknown> {
  const { proxy_access_log, proxy_dropped_logs, ...rest } = counts as { proxy_access_log: Record<string, number>; proxy_dropped_logs: number };
  assert.deepEqual(Object.keys(proxy_access_log).sort(), ['inbound_server', 'outbound_client'], `${mode}: only the listeners on the way log`);
  const logged = proxy_access_log.outbound_client! + proxy_access_log.inbound_server!;
  assert.equal(logged + proxy_dropped_logs, 2 * MODE_REQUESTS, `${mode}: each request in both proxies' logs, or counted as dropped`);
  assert.ok(proxy_dropped_logs <= MODE_REQUESTS / 100, `${mode}: at most 1 % of the lines dropped: ${proxy_dropped_logs}`);
  return rest;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The bench as CI runs it; `stopWhen`: SIGTERM once stderr matches it. */
function bench(json: string, stopWhen?: RegExp, extraArgs: string[] = []): Promise<Run> {
  const env = { ...process.env, SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: join(dir, 'chdb'), SIDECARLESS_CLICKHOUSE_DATABASE: database };
  const args = ['bench', 'overhead', '--rates', String(RATE), '--seconds', String(SECONDS), '--warm', String(WARM_SECONDS), '--settle', String(SETTLE_SECONDS), '--json', json, ...extraArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stopWhen?.test(stderr) && child.exitCode === null) child.kill('SIGTERM');
    });
    // Bounds a hang; SIGTERM lets it undo what it started.
    const timer = setTimeout(() => child.kill('SIGTERM'), 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** What a run said it made: its id, its lab, each component's cgroup. */
function made(stderr: string) {
  const [, id, lab] = /overhead: run overhead-(\w+), lab (\w+)/.exec(stderr) ?? [];
  assert.ok(id && lab, `the run names its id and lab:\n${stderr}`);
  const cgroups = [...stderr.matchAll(/^overhead: \w+ cgroups: (.*)$/gm)].flatMap((match) => match[1]!.split(' ').map((entry) => entry.split('=')[1]!));
  return { id, lab, cgroups };
}

/** Every process whose cgroup is below the lab's, or whose environment names the run's topic prefix. */
function processesOf(labId: string, runId: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      if (cgroup.includes(labNames.cgroupDir(labId)) || environ.includes(`=bench-overhead-${runId}.`)) found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')}`);
    } catch {
      // ended meanwhile
    }
  }
  return found;
}

async function assertNothingLeft(stderr: string): Promise<void> {
  const { id, lab, cgroups } = made(stderr);
  assert.ok(cgroups.length >= 2, `the run names its components' cgroups:\n${stderr}`);
  const netns = readdirSync('/run/netns').filter((name) => name.startsWith(`sl${lab}-`));
  assert.deepEqual(netns, [], 'no netns of the lab');
  assert.deepEqual(cgroups.filter((path) => existsSync(path)), [], 'no component cgroup');
  assert.equal(existsSync(join('/sys/fs/cgroup/unified', labNames.cgroupDir(lab))), false, 'no lab cgroup');
  assert.deepEqual(processesOf(lab, id), [], 'no process of the run');
  assert.deepEqual(readdirSync('/sys/fs/bpf').filter((name) => name.endsWith(`-${id}`)), [], 'no pins of the run');
  const admin = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-test' }, createLogger({ level: 'warn' })).admin();
  await admin.connect();
  try {
    assert.deepEqual((await admin.listTopics()).filter((topic) => topic.startsWith(`bench-overhead-${id}.`)), [], 'no topic of the run');
  } finally {
    await admin.disconnect();
  }
}

interface Summary {
  mode: string;
  rate: string;
  offered_per_s: number;
  achieved_per_s: number;
  requests: number;
  latency_us: Record<string, number>;
  added_latency_us: Record<string, number> | null;
  cores: Record<string, number>;
  cores_per_1000_rps: Record<string, number>;
  mesh_cores_per_1000_rps: number;
  bpf_ns_per_request: Record<string, number> | null;
  lost_while_measured: number | null;
  thread_cores_per_1000_rps: Record<string, Record<string, number>>;
  memory_mb: Record<string, number>;
  mesh_memory_mb: number;
  exact: boolean;
}

interface Ratio {
  against: string;
  rate: string;
  added_p99: number | null;
  mesh_cores_per_1000_rps: number | null;
  mesh_memory_mb: number | null;
  achieved_per_s: number | null;
}

/** The first test's run, which the dashboard's test reads back: its result line and the range around it. */
let measured: { runId: string; host: string; rates: Summary[]; ratios: Ratio[]; from: Date; to: Date } | undefined;
const minute = 60_000;

const COMPONENTS: Record<string, string[]> = {
  baseline: ['load generator', 'server'],
  ebpf: ['load generator', 'server', 'collector', 'enforcer', 'enricher', 'bpf programs'],
  sidecar: ['load generator', 'server', 'client proxy', 'server proxy'],
  'node-proxy': ['load generator', 'server', 'node proxy'],
};

describe('sidecarless bench overhead (lab pods, the real kernel, Kafka, the API server, HAProxy)', { timeout: 180_000 }, () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('measures every mode with exact counts, writes its JSON, its line and its overhead_runs rows, and leaves nothing behind', async () => {
    await requireStackService('Kafka', localHost, kafkaPort);
    const json = join(dir, 'overhead.json');
    const startedMs = Date.now();
    const run = await bench(json);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    const line = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> & { rates: Summary[]; ratios: Ratio[]; counts: Record<string, Record<string, unknown>> };
    const { json_file: file, clickhouse_table: table, ...result } = line;
    // The dashboard's range as a person would pick it: from the minute before the run to a minute after it (the
    // dashboard's test reads the run whatever this test finds wrong with it).
    const from = new Date(Math.floor(startedMs / minute) * minute - minute);
    measured = { runId: String(result.run_id), host: String(result.host), rates: line.rates, ratios: line.ratios, from, to: new Date(Date.now() + minute) };
    assert.equal(file, json);
    assert.equal(table, `${database}.overhead_runs`);
    assert.deepEqual(JSON.parse(readFileSync(json, 'utf8')), result, 'the JSON file holds what the line says');
    assert.equal(result.bench, 'overhead');
    assert.match(String(result.proxy), /^HAProxy 2\.6\.\S+ stands in for Envoy: /);
    assert.deepEqual(result.istio_published, { istio_version: '1.24', vcpu_per_1000_rps: 0.2, memory_mb: 60, proxy: 'Envoy' });
    // What the machine did besides the run: the stolen CPU share over it, and the filesystem of the enricher's engine.
    const host = result.host_conditions as HostConditions;
    assert.ok(host.cpu_steal_percent !== null && host.cpu_steal_percent >= 0 && host.cpu_steal_percent <= 100, JSON.stringify(host));
    assert.equal(host.filesystem?.path, join(dir, 'chdb'), JSON.stringify(host));

    assert.deepEqual(line.rates.map((s) => [s.mode, s.rate, s.offered_per_s, s.requests]), [
      ['baseline', '300', RATE, WINDOW_REQUESTS],
      ['ebpf', '300', RATE, WINDOW_REQUESTS],
      ['sidecar', '300', RATE, WINDOW_REQUESTS],
      ['node-proxy', '300', RATE, WINDOW_REQUESTS],
    ]);
    for (const s of line.rates) {
      assert.ok(Math.abs(s.achieved_per_s - RATE) <= RATE * 0.1, `${s.mode}: achieved ${s.achieved_per_s}/s of ${RATE}/s`);
      const { p50, p90, p99, p999 } = s.latency_us;
      assert.ok(p50! > 0 && p50! <= p90! && p90! <= p99! && p99! <= p999!, `${s.mode}: percentiles in order: ${JSON.stringify(s.latency_us)}`);
      assert.deepEqual(Object.keys(s.cores).sort(), [...COMPONENTS[s.mode]!].sort(), `${s.mode}: the components measured`);
      for (const [component, cores] of Object.entries(s.cores)) assert.ok(cores > 0 && cores < 2, `${s.mode}: ${component} used ${cores} cores`);
      assert.deepEqual(Object.keys(s.memory_mb).sort(), COMPONENTS[s.mode]!.filter((c) => c !== 'bpf programs').sort(), `${s.mode}: memory per component`);
      for (const [component, mb] of Object.entries(s.memory_mb)) assert.ok(mb > 1 && mb < 2_000, `${s.mode}: ${component} peak RSS ${mb} MB`);
      assert.equal(s.exact, true, `${s.mode}: exact counts`);
    }
    // Where each component's cores go, by thread: every component's, summing to no more than its cores (threads that
    // ended are missing), but for the time between reading the cgroup and reading its threads (up to 4 ms seen; 10 allowed).
    for (const s of line.rates) {
      // The load generator is a process per load, ended by then.
      assert.deepEqual(Object.keys(s.thread_cores_per_1000_rps).sort(), COMPONENTS[s.mode]!.filter((c) => c !== 'bpf programs' && c !== 'load generator').sort(), `${s.mode}: threads per component`);
      for (const [component, threads] of Object.entries(s.thread_cores_per_1000_rps)) {
        const summed = Object.values(threads).reduce((sum, cores) => sum + cores, 0);
        const reading = 0.01 / SECONDS / (s.achieved_per_s / 1000);
        assert.ok(summed <= s.cores_per_1000_rps[component]! + reading + 0.0002, `${s.mode}: ${component}'s threads ${JSON.stringify(threads)} sum to more than its ${s.cores_per_1000_rps[component]}`);
      }
    }
    // And they account for it: the enricher (the costliest role here, its engine's threads besides its JavaScript)
    // has at least half of its cores on threads still running at the window's end.
    const ebpf = line.rates.find((s) => s.mode === 'ebpf')!;
    const enricherThreads = Object.values(ebpf.thread_cores_per_1000_rps.enricher!).reduce((sum, cores) => sum + cores, 0);
    assert.ok(enricherThreads >= ebpf.cores_per_1000_rps.enricher! / 2, `the enricher's threads ${JSON.stringify(ebpf.thread_cores_per_1000_rps.enricher)} against its ${ebpf.cores_per_1000_rps.enricher}`);

    // Each mode settled at the first rate before its first window, its components' cores reported apart.
    const settle = line.settle as Record<string, { offered_per_s: number; seconds: number; cores: Record<string, number> }>;
    assert.deepEqual(Object.keys(settle), ['baseline', 'ebpf', 'sidecar', 'node-proxy']);
    for (const [mode, settled] of Object.entries(settle)) {
      assert.equal(settled.offered_per_s, RATE);
      assert.ok(Math.abs(settled.seconds - SETTLE_SECONDS) < 0.5, `${mode}: settled for ${settled.seconds} s`);
      assert.deepEqual(Object.keys(settled.cores).sort(), [...COMPONENTS[mode]!].sort(), `${mode}: the components measured while settling`);
    }

    // Where the BPF programs' part goes: every program that ran, per request, adding up to the part.
    for (const s of line.rates) {
      // The counts are exact, so nothing was lost in the window either; only the ebpf mode has programs to lose it.
      assert.equal(s.lost_while_measured, s.mode === 'ebpf' ? 0 : null, `${s.mode}: records lost in the window`);
      if (s.mode !== 'ebpf') {
        assert.equal(s.bpf_ns_per_request, null, `${s.mode}: no BPF programs`);
        continue;
      }
      const programs = s.bpf_ns_per_request!;
      for (const name of ['http_send_start', 'http_sent', 'http_received', 'policy_ingress']) assert.ok(programs[name]! > 0, `${name} ran: ${JSON.stringify(programs)}`);
      const perRequestNs = (s.cores['bpf programs']! * 1e9) / s.achieved_per_s;
      const summed = Object.values(programs).reduce((sum, ns) => sum + ns, 0);
      assert.ok(Math.abs(summed - perRequestNs) <= 0.01 * perRequestNs + 50, `programs sum to ${summed} ns per request, the part is ${perRequestNs}`);
    }
    assert.deepEqual(line.rates[0]!.added_latency_us, { p50: 0, p90: 0, p99: 0, p999: 0 }, 'the baseline adds nothing to itself');
    assert.equal(line.rates[0]!.mesh_cores_per_1000_rps, 0);
    for (const s of line.rates.slice(1)) assert.ok(s.mesh_cores_per_1000_rps > 0, `${s.mode}: its own components cost`);

    const counts = line.counts as Record<string, Record<string, unknown>>;
    assert.deepEqual(
      { ...counts, sidecar: assertLoggedByProxies(counts.sidecar!, 'sidecar'), 'node-proxy': assertLoggedByProxies(counts['node-proxy']!, 'node-proxy') },
      {
        baseline: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, exact: true },
        ebpf: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, http_events: 2 * MODE_REQUESTS, expected_http_events: 2 * MODE_REQUESTS, http_drops: {}, exact: true },
        sidecar: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, ...throughProxies, exact: true },
        'node-proxy': { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, ...throughProxies, exact: true },
      },
    );
    assert.match(run.stderr, /^mode\s+rate\s+req\/s\s+p50/m, 'the table');
    for (const against of ['sidecar', 'node-proxy']) {
      assert.match(run.stderr, new RegExp(`^ebpf/${against} at 300: added p99 \\S+, mesh cores per 1,000 req/s \\S+, mesh memory \\S+, throughput \\S+$`, 'm'));
    }
    assert.match(run.stderr, /^Istio 1\.24 publishes 0\.2 vCPU and 60 MB per 1,000 requests\/s per Envoy sidecar, for comparison$/m);

    const clickhouse = await createClickHouse({ embeddedPath: join(dir, 'chdb') });
    try {
      const rows = await queryRows<Record<string, unknown>>(
        clickhouse,
        `SELECT mode, rate, offered_rps, requests, exact, arraySort(mapKeys(component_cores)) AS components, proxy, p99_us, lost_while_measured
         FROM ${database}.overhead_runs WHERE run_id = {run:String} ORDER BY mode`,
        { run: result.run_id },
      );
      const proxy = rows[0]?.proxy;
      assert.match(String(proxy), /^HAProxy 2\.6\./);
      const byMode = [...line.rates].sort((a, b) => (a.mode < b.mode ? -1 : 1)); // ClickHouse's ORDER BY: bytewise
      assert.deepEqual(rows, byMode.map((s) => ({ mode: s.mode, rate: '300', offered_rps: RATE, requests: String(WINDOW_REQUESTS), exact: 1, components: [...COMPONENTS[s.mode]!].sort(), proxy, p99_us: s.latency_us.p99, lost_while_measured: s.mode === 'ebpf' ? '0' : null })));
    } finally {
      await clickhouse.close();
    }
    await assertNothingLeft(run.stderr);
  });

  it("the dashboard 'overhead.json' on this run: the run picked, every panel's declared columns, the run's values", async () => {
    assert.ok(measured, 'the run of the test before');
    const { runId, host, rates } = measured;
    const dashboard = loadDashboards().find((d) => d.file === 'overhead.json')!.dashboard;
    const clickhouse = await createClickHouse({ embeddedPath: join(dir, 'chdb') });
    try {
      // The datasource's defaultDatabase: the dashboard names its table without a database.
      await clickhouse.command({ query: `USE ${database}` });
      const data = { clickhouse, from: measured.from, to: measured.to };
      const variables = await resolveVariables(data, dashboard);
      assert.deepEqual(variables, [{ name: 'run', value: runId, options: [runId] }], 'the one run in the range, chosen');
      await assertPanelsReturnDeclaredColumns(data, dashboard);
      const results = await runPanels(data, dashboard, variables);

      const modes = rates.map((s) => s.mode);
      assert.deepEqual(modes, ['baseline', 'ebpf', 'sidecar', 'node-proxy']);
      const at = (s: Summary) => `${s.mode} at ${s.rate}/s`;
      // rowsOf reads a text of digits as a number: the rate '300' comes as 300.
      const [run] = rowsOf(results, 'Run');
      assert.deepEqual(pick([run!], 'run_id', 'host', 'seconds', 'modes', 'rates'), [{ run_id: runId, host, seconds: SECONDS, modes: modes.join(', '), rates: RATE }]);
      assert.match(String(run!.proxy), /^HAProxy 2\.6\./);
      assert.deepEqual(rowsOf(results, 'Counts and exactness'), rates.map((s) => ({ mode: s.mode, rate: RATE, offered_rps: RATE, requests: WINDOW_REQUESTS, seconds: SECONDS, exact: 1, lost_while_measured: s.mode === 'ebpf' ? 0 : null })));
      assert.deepEqual(rowsOf(results, 'Achieved vs offered requests/s'), rates.map((s) => ({ mode_at_rate: at(s), offered_rps: RATE, achieved_rps: s.achieved_per_s })));
      const quantiles = ['p50', 'p90', 'p99', 'p999'];
      assert.deepEqual(
        rowsOf(results, 'Latency by mode and rate'),
        rates.map((s) => ({
          mode: s.mode,
          rate: RATE,
          achieved_rps: s.achieved_per_s,
          ...Object.fromEntries(quantiles.map((q) => [`${q}_us`, s.latency_us[q]])),
          ...Object.fromEntries(quantiles.map((q) => [`added_${q}_us`, s.added_latency_us![q]])),
        })),
      );
      const meshModes = rates.slice(1);
      assert.deepEqual(rowsOf(results, 'Added latency p50 and p99'), meshModes.map((s) => ({ mode_at_rate: at(s), added_p50_us: s.added_latency_us!.p50, added_p99_us: s.added_latency_us!.p99 })));
      assert.deepEqual(rowsOf(results, 'Mesh cores per 1,000 req/s by mode'), meshModes.map((s) => ({ mode_at_rate: at(s), mesh_cores_per_1k_rps: s.mesh_cores_per_1000_rps })));

      // ebpf over each proxy mode: the same divisions as the bench's (which rounds them to 3 decimals).
      const [ebpf] = rates.filter((s) => s.mode === 'ebpf');
      const addedP99 = (s: Summary) => s.added_latency_us!.p99!;
      const ratios = rowsOf(results, 'ebpf against the proxy modes');
      assert.deepEqual(
        ratios,
        rates.slice(2).map((p) => ({
          against: p.mode,
          rate: RATE,
          ebpf_mesh_cores_per_1k_rps: ebpf!.mesh_cores_per_1000_rps,
          proxy_mesh_cores_per_1k_rps: p.mesh_cores_per_1000_rps,
          mesh_cores_ratio: ebpf!.mesh_cores_per_1000_rps / p.mesh_cores_per_1000_rps,
          ebpf_added_p99_us: addedP99(ebpf!),
          proxy_added_p99_us: addedP99(p),
          added_p99_ratio: addedP99(p) === 0 ? null : addedP99(ebpf!) / addedP99(p),
          mesh_memory_ratio: ebpf!.mesh_memory_mb / p.mesh_memory_mb,
          achieved_ratio: ebpf!.achieved_per_s / p.achieved_per_s,
        })),
      );
      const rounded = (value: unknown) => (value === null ? null : Number(Number(value).toFixed(3)));
      assert.deepEqual(
        ratios.map((r) => ({ against: r.against, rate: String(r.rate), added_p99: rounded(r.added_p99_ratio), mesh_cores_per_1000_rps: rounded(r.mesh_cores_ratio), mesh_memory_mb: rounded(r.mesh_memory_ratio), achieved_per_s: rounded(r.achieved_ratio) })),
        measured.ratios,
        "the bench's own ratios",
      );

      // Every component of every mode, once: the map's keys as rows.
      const byModeAndComponent = (a: Record<string, unknown>, b: Record<string, unknown>) => modes.indexOf(String(a.mode)) - modes.indexOf(String(b.mode)) || String(a.component).localeCompare(String(b.component));
      assert.deepEqual(
        rowsOf(results, 'Cores per 1,000 req/s by component').sort(byModeAndComponent),
        rates
          .flatMap((s) =>
            Object.keys(s.cores).map((component) => ({
              mode: s.mode,
              rate: RATE,
              component,
              part: ['load generator', 'server'].includes(component) ? 'traffic' : 'mesh',
              cores_per_1k_rps: s.cores_per_1000_rps[component],
              cores: s.cores[component],
              memory_mb: s.memory_mb[component] ?? null,
            })),
          )
          .sort(byModeAndComponent),
      );
      const memory = rowsOf(results, 'Memory by mode');
      assert.deepEqual(pick(memory, 'mode', 'mesh_memory_mb'), rates.map((s) => ({ mode: s.mode, mesh_memory_mb: s.mesh_memory_mb })));
      for (const [i, s] of rates.entries()) {
        const total = Object.values(s.memory_mb).reduce((sum, mb) => sum + mb, 0);
        assert.ok(Math.abs(Number(memory[i]!.total_memory_mb) - total) < 1e-9, `${s.mode}: every component's peak RSS, ${memory[i]!.total_memory_mb} MB = ${total} MB`);
      }

      const about = dataPanels(dashboard).find((p) => p.title === 'About this comparison') as unknown as { options: { content: string } };
      assert.match(about.options.content, /\*\*HAProxy stood in for Envoy\*\*/);
      const istio = ISTIO_SIDECAR;
      assert.ok(
        about.options.content.includes(`Istio publishes ${istio.vcpu_per_1000_rps.toFixed(2)} vCPU and ${istio.memory_mb} MB per 1,000 requests/s per ${istio.proxy} sidecar (Istio ${istio.istio_version},`),
        "Istio's published figures, as the bench states them",
      );
    } finally {
      await clickhouse.close();
    }
  });

  it('undoes what it started when stopped by SIGTERM half way (in the sidecar mode, the ebpf roles run before)', async () => {
    const run = await bench(join(dir, 'stopped.json'), /^overhead: sidecar 300/m, ['--modes', 'ebpf,sidecar']);
    assert.equal(run.code, 143, `ended as by SIGTERM; stderr:\n${run.stderr}`);
    assert.equal(run.stdout, '', 'no result line');
    assert.doesNotMatch(run.stderr, /undoing .* failed/);
    await assertNothingLeft(run.stderr);
  });
});
