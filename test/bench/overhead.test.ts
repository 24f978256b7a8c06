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
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { createKafka } from '../../src/common/kafka/client.js';
import { createLogger } from '../../src/common/logger.js';
import { labNames } from '../../src/lab/names.js';
import { kafkaPort, localHost, localKafkaBrokers } from '../../src/lab/stack/endpoints.js';
import { queryRows } from '../helpers/clickhouse.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sidecarless-test-overhead-'));
const database = uniqueName('test_overhead').replaceAll('-', '_');
const RATE = 300;
const SECONDS = 2;
const WARM_SECONDS = 1;
/** The load generator sends exactly rate × seconds requests per window, the warm-up's before each. */
const WINDOW_REQUESTS = RATE * SECONDS;
const MODE_REQUESTS = RATE * (SECONDS + WARM_SECONDS);
/** Every request passes the client's outbound listener and the server's inbound one, and no other. */
const throughProxies = {
  proxy_access_log: { outbound_client: MODE_REQUESTS, inbound_server: MODE_REQUESTS },
  proxy_requests: { outbound_client: MODE_REQUESTS, inbound_client: 0, outbound_server: 0, inbound_server: MODE_REQUESTS },
  proxy_dropped_logs: 0,
};

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The bench as CI runs it; `stopWhen`: SIGTERM once stderr matches it. */
function bench(json: string, stopWhen?: RegExp, extraArgs: string[] = []): Promise<Run> {
  const env = { ...process.env, SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: join(dir, 'chdb'), SIDECARLESS_CLICKHOUSE_DATABASE: database };
  const args = ['bench', 'overhead', '--rates', String(RATE), '--seconds', String(SECONDS), '--warm', String(WARM_SECONDS), '--json', json, ...extraArgs];
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
  memory_mb: Record<string, number>;
  exact: boolean;
}

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
    const run = await bench(json);
    assert.equal(run.code, 0, `exit code; stderr:\n${run.stderr}`);
    const line = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown> & { rates: Summary[]; counts: Record<string, Record<string, unknown>> };
    const { json_file: file, clickhouse_table: table, ...result } = line;
    assert.equal(file, json);
    assert.equal(table, `${database}.overhead_runs`);
    assert.deepEqual(JSON.parse(readFileSync(json, 'utf8')), result, 'the JSON file holds what the line says');
    assert.equal(result.bench, 'overhead');
    assert.match(String(result.proxy), /^HAProxy 2\.6\.\S+ stands in for Envoy: /);
    assert.deepEqual(result.istio_published, { istio_version: '1.24', vcpu_per_1000_rps: 0.2, memory_mb: 60, proxy: 'Envoy' });

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
    assert.deepEqual(line.rates[0]!.added_latency_us, { p50: 0, p90: 0, p99: 0, p999: 0 }, 'the baseline adds nothing to itself');
    assert.equal(line.rates[0]!.mesh_cores_per_1000_rps, 0);
    for (const s of line.rates.slice(1)) assert.ok(s.mesh_cores_per_1000_rps > 0, `${s.mode}: its own components cost`);

    assert.deepEqual(line.counts, {
      baseline: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, exact: true },
      ebpf: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, http_events: 2 * MODE_REQUESTS, expected_http_events: 2 * MODE_REQUESTS, http_drops: {}, exact: true },
      sidecar: { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, ...throughProxies, exact: true },
      'node-proxy': { requests: MODE_REQUESTS, server_access_log: MODE_REQUESTS, ...throughProxies, exact: true },
    });
    assert.match(run.stderr, /^mode\s+rate\s+req\/s\s+p50/m, 'the table');
    for (const against of ['sidecar', 'node-proxy']) {
      assert.match(run.stderr, new RegExp(`^ebpf/${against} at 300: added p99 \\S+, mesh cores per 1,000 req/s \\S+, mesh memory \\S+, throughput \\S+$`, 'm'));
    }
    assert.match(run.stderr, /^Istio 1\.24 publishes 0\.2 vCPU and 60 MB per 1,000 requests\/s per Envoy sidecar, for comparison$/m);

    const clickhouse = await createClickHouse({ embeddedPath: join(dir, 'chdb') });
    try {
      const rows = await queryRows<Record<string, unknown>>(
        clickhouse,
        `SELECT mode, rate, offered_rps, requests, exact, arraySort(mapKeys(component_cores)) AS components, proxy, p99_us
         FROM ${database}.overhead_runs WHERE run_id = {run:String} ORDER BY mode`,
        { run: result.run_id },
      );
      const proxy = rows[0]?.proxy;
      assert.match(String(proxy), /^HAProxy 2\.6\./);
      const byMode = [...line.rates].sort((a, b) => (a.mode < b.mode ? -1 : 1)); // ClickHouse's ORDER BY: bytewise
      assert.deepEqual(rows, byMode.map((s) => ({ mode: s.mode, rate: '300', offered_rps: RATE, requests: String(WINDOW_REQUESTS), exact: 1, components: [...COMPONENTS[s.mode]!].sort(), proxy, p99_us: s.latency_us.p99 })));
    } finally {
      await clickhouse.close();
    }
    await assertNothingLeft(run.stderr);
  });

  it('undoes what it started when stopped by SIGTERM half way (in the sidecar mode, the ebpf roles run before)', async () => {
    const run = await bench(join(dir, 'stopped.json'), /^overhead: sidecar 300/m, ['--modes', 'ebpf,sidecar']);
    assert.equal(run.code, 143, `ended as by SIGTERM; stderr:\n${run.stderr}`);
    assert.equal(run.stdout, '', 'no result line');
    assert.doesNotMatch(run.stderr, /undoing .* failed/);
    await assertNothingLeft(run.stderr);
  });
});
