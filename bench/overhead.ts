/**
 * bench/overhead (`sidecarless bench overhead [--rates 1000,5000,10000,max] [--seconds 10] [--warm 2] [--settle 20]
 * [--modes baseline,ebpf,sidecar,node-proxy] [--connections 16] [--json PATH]`): what a request and the node pay for
 * mesh telemetry, sidecarless against a sidecar (and a node proxy), in one run.
 *
 *   1. Two lab pods that are also API objects (client in one namespace, server in another). The server is nginx,
 *      the client the open-loop load generator (./http-live-traffic.ts says which and why: neither is ours, and
 *      the generator measures each request from its due time, so it does not hide the queueing it causes): a
 *      keep-alive HTTP/1.1 GET per request on CONNECTIONS connections, a 3-byte answer. Each mode starts both in
 *      fresh containers of their pods (Pod.addContainer: cgroups whose counters start at zero), nginx writing an
 *      access log line per request.
 *   2. Modes, back to back: baseline (nothing attached), ebpf (./overhead-ebpf.ts: collector with L4 and HTTP
 *      capture, enforcer with a policy set that judges every connection, enricher), sidecar and node-proxy
 *      (./overhead-proxy.ts: HAProxy, standing in for Envoy, in each pod or once for the node, behind
 *      istio-init's NAT redirect).
 *   3. Per mode, first SETTLE seconds of the load at its first rate, its cores reported apart (`settle`): starting
 *      the components (the roles' JIT, first fetches and inserts, cgroup walks) is no request's cost, and without it
 *      the first window carried it (measured: the enforcer 0.0096 cores per 1,000 requests/s in the first of three
 *      1,000/s windows, 0.0037 in the next two; the collector 0.021, then 0.015). 20 s by default, as bench/http-live
 *      warms its collector (its WARM_SECONDS says why).
 *      Per mode and rate: WARM seconds of the load (not measured: connections, caches, the JIT of the roles), then
 *      the measured window: open-loop at the rate for SECONDS; `max` is the highest rate the mode sustains
 *      (searchSustainable from a closed-loop probe, then a window at that rate; in ebpf mode, at which its kernel
 *      programs also lose nothing). Latency percentiles from the
 *      load generator; each component's cores from its cgroup from the window's start to TAIL_MS after its end,
 *      per second of the load and per 1,000 requests/s; the BPF programs' run time (ebpf mode; run-time statistics
 *      are on in every mode, so their clock reads burden all alike); peak RSS of each component at the mode's end.
 *   4. Exactness per mode (exactCounts): the requests the load generator sent equal nginx's access log lines; in
 *      the proxy modes also the access log lines and request counters of the client's outbound and the server's
 *      inbound listener (the traffic went through both); in ebpf mode the collector's http.v1 events equal two per
 *      request (both pods traced), with no drop. Those counts cover the whole mode (its probe and search overflow
 *      the ring at full capacity), so each ebpf window also says what the kernel programs lost during it
 *      (`lost_while_measured`): a window that lost records measured the cost of the rest.
 *   5. Output: a table on stderr with the ebpf/sidecar and ebpf/node-proxy ratios and Istio's published sidecar
 *      figures beside them, a JSON file (--json), one JSON line on stdout, and a row per mode and rate in
 *      ClickHouse `overhead_runs` (migrations 12 and 13) of the configured ClickHouse and database (clickhouse.url, else
 *      the embedded engine at clickhouse.embeddedPath).
 *   Floors: the ebpf mode adds at most a tenth of the sidecar mode's added p99, and costs at most a tenth of its
 *   cores per 1,000 requests/s; each with its numbers and met: true/false.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, hostname, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { createClickHouse } from '../src/common/clickhouse/client.js';
import { migrate } from '../src/common/clickhouse/migrations.js';
import { loadConfig, type Config } from '../src/common/config.js';
import { createLogger } from '../src/common/logger.js';
import { enableRunTimeStats } from '../src/ebpf/stats.js';
import { createClusterLab } from '../src/lab/cluster.js';
import { cpuTimes, hostConditions } from '../src/lab/host-conditions.js';
import { lostDuring } from '../src/lab/kernel-losses.js';
import type { Pod } from '../src/lab/pods.js';
import { waitFor } from '../src/lab/stack/processes.js';
import { buildLoadGenerator, runLoad, searchSustainable, startNginx, type LoadResult } from './http-live-traffic.js';
import { startEbpfStack, type EbpfStack } from './overhead-ebpf.js';
import { coresBetween, memoryMegabytes, programCoresBetween, sample, threadCoresBetween, type Component, type Meter } from './overhead-measure.js';
import { exactCounts, MODES, report, type Counts, type Mode, type ModeRun, type RunInfo, type Window } from './overhead-report.js';
import { startNodeProxy, startSidecar, type MeshProxy } from './overhead-proxy.js';
import { Undo } from './undo.js';
import { UsageError } from './usage-error.js';

const PORT = 7311;
const PROBE_SECONDS = 5;
/** After the load: the collector's flush interval, Kafka's acknowledgement and the enricher's insert are part of it. */
const TAIL_MS = 1_000;
const COUNT_TIMEOUT_MS = 10_000;

export interface Options {
  /** Offered requests/s; 'max': the highest the mode sustains. */
  rates: Array<number | 'max'>;
  seconds: number;
  warmSeconds: number;
  /**
   * Seconds of load at the first rate before a mode's first window, measured apart (ModeRun.settle): what starting
   * the mode's components costs (the JIT, first fetches and inserts, the cgroup walks) is not counted per request.
   */
  settleSeconds: number;
  modes: Mode[];
  connections: number;
  json: string;
}

function positive(flag: string, text: string, integer = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) throw new UsageError(`bench overhead: --${flag} ${text}: expected a positive ${integer ? 'integer' : 'number'}`);
  return value;
}

function parseFlags(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      options: {
        rates: { type: 'string', default: '1000,5000,10000,max' },
        seconds: { type: 'string', default: '10' },
        warm: { type: 'string', default: '2' },
        settle: { type: 'string', default: '20' },
        modes: { type: 'string', default: MODES.join(',') },
        connections: { type: 'string', default: '16' },
        json: { type: 'string', default: 'bench-overhead.json' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(`bench overhead: ${(error as Error).message}`);
  }
}

export function parseOptions(args: readonly string[]): Options {
  const { values } = parseFlags(args);
  const modes = values.modes.split(',');
  const unknown = modes.filter((mode) => !(MODES as readonly string[]).includes(mode));
  if (unknown.length > 0 || modes.length === 0) throw new UsageError(`bench overhead: --modes ${values.modes}: expected some of ${MODES.join(', ')}`);
  return {
    rates: values.rates.split(',').map((rate) => (rate === 'max' ? 'max' : positive('rates', rate, true))),
    seconds: positive('seconds', values.seconds),
    warmSeconds: Number(values.warm) === 0 ? 0 : positive('warm', values.warm),
    settleSeconds: Number(values.settle) === 0 ? 0 : positive('settle', values.settle),
    // Baseline first: the other modes' added latency is measured against it.
    modes: MODES.filter((mode) => modes.includes(mode)),
    connections: positive('connections', values.connections, true),
    json: resolve(values.json),
  };
}

/** The proxy standing in for Envoy, as it names itself. */
function proxyVersion(): string {
  const version = /^HAProxy version (\S+)/m.exec(execFileSync('haproxy', ['-v'], { encoding: 'utf8' }))?.[1];
  return `HAProxy ${version ?? '(version not reported)'}`;
}

const countLines = (file: string) => readFileSync(file, 'utf8').split('\n').length - 1;

interface Pair {
  client: Pod;
  server: Pod;
  generator: string;
}

/** One mode: the server and the mode's components started, every rate measured, the counts checked, all stopped. */
async function runMode(mode: Mode, pair: Pair, options: Options, undo: Undo, context: { id: string; clickhouse: Config['clickhouse'] }): Promise<ModeRun> {
  const dir = mkdtempSync(join(tmpdir(), `sidecarless-bench-overhead-${mode}-`));
  const accessLog = join(dir, 'nginx-access.log');
  const containers = { client: pair.client.addContainer(), server: pair.server.addContainer() };
  const components: Component[] = [
    { name: 'load generator', cgroup: containers.client },
    { name: 'server', cgroup: containers.server },
  ];
  let requests = 0;
  let loadGeneratorRssKb = 0;
  const load = async (rate: number, seconds: number): Promise<LoadResult> => {
    const result = await runLoad(pair.client, pair.generator, { target: `${pair.server.ip}:${PORT}`, rate, seconds, connections: options.connections, container: containers.client });
    requests += result.requests;
    loadGeneratorRssKb = Math.max(loadGeneratorRssKb, result.max_rss_kb);
    return result;
  };
  const mark = undo.mark;
  undo.push('the mode\'s files', () => rmSync(dir, { recursive: true, force: true }));
  try {
    const server = await startNginx(pair.server, PORT, { accessLog, container: containers.server });
    undo.push('nginx', () => server.stop());
    let ebpf: EbpfStack | undefined;
    const proxies: MeshProxy[] = [];
    const meter: Meter = { components };
    if (mode === 'ebpf') {
      const logger = createLogger({ level: 'warn', destination: 2 });
      ebpf = await startEbpfStack({ pods: { client: pair.client, server: pair.server }, port: PORT, id: context.id, clickhouse: context.clickhouse, logger, undo });
      components.push(...ebpf.components);
      meter.bpfRunNs = () => ebpf!.bpfRunNs();
    }
    if (mode === 'sidecar') {
      for (const [name, pod] of [['server proxy', pair.server], ['client proxy', pair.client]] as const) {
        // The server's first: a redirect takes effect at once, and the client's must find the server's proxy.
        const proxy = await startSidecar(pod);
        undo.push(`the ${name}`, () => proxy.stop());
        proxies.push(proxy);
        components.push({ name, cgroup: proxy.cgroup });
      }
    }
    if (mode === 'node-proxy') {
      const proxy = await startNodeProxy([pair.client, pair.server]);
      undo.push('the node proxy', () => proxy.stop());
      proxies.push(proxy);
      components.push({ name: 'node proxy', cgroup: proxy.cgroup });
    }
    // Named for whoever checks that the run leaves none behind (its test).
    process.stderr.write(`overhead: ${mode} cgroups: ${components.map((component) => `${component.name}=${component.cgroup.path}`).join(' ')}\n`);

    /** A load at `rate` for `seconds`, and the samples around it: from its start to TAIL_MS after its end. */
    const measured = async (rate: number, seconds: number) => {
      const before = sample(meter);
      const result = await load(rate, seconds);
      await sleep(TAIL_MS);
      return { result, before, after: sample(meter) };
    };
    const window = async (rate: number, label: string): Promise<Window> => {
      process.stderr.write(`overhead: ${mode} ${label} (${rate}/s)\n`);
      if (options.warmSeconds > 0) await load(rate, options.warmSeconds);
      const { result: sampled, lost } = await lostDuring(ebpf?.lostSoFar, () => measured(rate, options.seconds));
      const { result, before, after } = sampled;
      return {
        label,
        offered_per_s: rate,
        load: result,
        cores: coresBetween(meter, before, after, result.seconds),
        thread_cores: threadCoresBetween(before, after, result.seconds),
        ...(meter.bpfRunNs && { bpf_program_cores: programCoresBetween(before, after, result.seconds) }),
        ...(lost !== undefined && { lost }),
      };
    };
    // Starting the components costs what no request does: a load at the first rate to settle them, measured apart.
    const settleRate = options.rates.find((rate): rate is number => rate !== 'max');
    let settle: ModeRun['settle'];
    if (settleRate !== undefined && options.settleSeconds > 0) {
      process.stderr.write(`overhead: ${mode} settling (${settleRate}/s)\n`);
      const { result, before, after } = await measured(settleRate, options.settleSeconds);
      settle = { offered_per_s: settleRate, seconds: result.seconds, cores: coresBetween(meter, before, after, result.seconds) };
    }
    const windows: Window[] = [];
    let search: ModeRun['search'];
    for (const rate of options.rates) {
      if (rate !== 'max') {
        windows.push(await window(rate, String(rate)));
        continue;
      }
      process.stderr.write(`overhead: ${mode} capacity\n`);
      const capacity = await load(0, PROBE_SECONDS);
      // The ebpf mode sustains only a rate at which its programs lose nothing (kernel drops: else its cores are those
      // of the events it kept). The proxies' lost log lines do not lower theirs (HAProxy 2.6 drops a line when its
      // two threads write at once; exactCounts counts them): the stricter rule is held against sidecarless only.
      const found = await searchSustainable(capacity.achieved_per_s, load, ebpf && { soFar: ebpf.lostSoFar });
      search = { closed_loop_per_s: Math.round(capacity.achieved_per_s), ...found };
      windows.push(await window(found.highest, 'max'));
    }
    const memory = { ...memoryMegabytes(meter), 'load generator': Math.round(loadGeneratorRssKb / 102.4) / 10 };

    // A request's log lines are written as it ends: the counts agree once the last ones are, else they say what is missing.
    const merged = (per: (proxy: MeshProxy) => Record<string, number>) => Object.assign({}, ...proxies.map(per)) as Record<string, number>;
    const readCounts = (): Counts => ({
      requests,
      server_access_log: countLines(accessLog),
      ...(proxies.length > 0
        ? {
            proxy_access_log: merged((proxy) => proxy.accessLogLines()),
            proxy_requests: merged((proxy) => proxy.requests()),
            proxy_dropped_logs: proxies.reduce((sum, proxy) => sum + proxy.droppedLogs(), 0),
          }
        : {}),
    });
    await waitFor(async () => exactCounts(readCounts()), { timeoutMs: COUNT_TIMEOUT_MS, what: 'the access logs' }).catch(() => undefined);
    const counts = readCounts();
    if (ebpf) {
      const http = await ebpf.stop();
      counts.http_events = http.eventsProduced;
      counts.expected_http_events = 2 * requests;
      counts.http_drops = http.drops;
    }
    return { mode, ...(settle ? { settle } : {}), windows, memory_mb: memory, counts, exact: exactCounts(counts), ...(search ? { search } : {}) };
  } finally {
    await undo.unwind(mark);
  }
}

export async function run(args: readonly string[] = []): Promise<Record<string, unknown>> {
  const options = parseOptions(args);
  const cpuAtStart = cpuTimes();
  const generator = await buildLoadGenerator();
  const id = randomBytes(3).toString('hex');
  const config = loadConfig({ argv: [] });
  // No default database: migrate() creates it.
  const clickhouse = await createClickHouse({ ...config.clickhouse, database: undefined });
  const info: RunInfo = {
    run_id: `overhead-${id}`,
    started_at: new Date(),
    host: hostname(),
    load_average: loadavg().map((value) => Math.round(value * 100) / 100),
    proxy: proxyVersion(),
    seconds: options.seconds,
    connections: options.connections,
  };
  const namespaces = { client: `overhead-client-${id}`, server: `overhead-server-${id}` };
  const undo = new Undo();
  undo.push('ClickHouse\'s client', () => clickhouse.close());
  const stats = enableRunTimeStats();
  undo.push('BPF run-time statistics', () => stats.release());
  // Interrupted, the run undoes what it started (the lab's own handler removes the pods, not the roles, which
  // run outside them), then ends as the signal would have ended it. Not `once`: with no listener of ours left, the
  // lab's handler would end the process by the signal at once.
  let signalled = false;
  const interrupted = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    void undo.unwind().finally(() => process.exit(128 + osConstants.signals[signal]));
  };
  process.on('SIGINT', interrupted);
  process.on('SIGTERM', interrupted);
  let output: Record<string, unknown>;
  try {
    await migrate(clickhouse, { database: config.clickhouse.database, ttlDays: config.clickhouse.ttlDays, cluster: config.clickhouse.cluster });
    const lab = await createClusterLab({
      name: 'bench-overhead',
      namespaces: [{ name: namespaces.client }, { name: namespaces.server }],
      pods: [
        { name: 'client', namespace: namespaces.client },
        { name: 'server', namespace: namespaces.server, ports: [{ containerPort: PORT, protocol: 'TCP' }] },
      ],
    });
    undo.push('the lab', () => lab.destroy());
    process.stderr.write(`overhead: run ${info.run_id}, lab ${lab.id}\n`);
    const pair: Pair = { client: lab.pod('client'), server: lab.pod('server'), generator };
    const runs: ModeRun[] = [];
    for (const mode of options.modes) runs.push(await runMode(mode, pair, options, undo, { id, clickhouse: config.clickhouse }));
    info.load_average_end = loadavg().map((value) => Math.round(value * 100) / 100);
    // The filesystem of the embedded engine, when the enricher uses one (its inserts create and delete files).
    info.host_conditions = hostConditions(cpuAtStart, config.clickhouse.url ? process.cwd() : config.clickhouse.embeddedPath);
    const result = report(info, runs);
    writeFileSync(options.json, `${JSON.stringify(result.json, null, 2)}\n`);
    await clickhouse.insert({ table: `${config.clickhouse.database}.overhead_runs`, values: result.rows, format: 'JSONEachRow' });
    process.stderr.write(result.table);
    output = { ...result.json, json_file: options.json, clickhouse_table: `${config.clickhouse.database}.overhead_runs` };
  } finally {
    await undo.unwind();
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
  }
  if (undo.failures.length > 0) throw new Error(`bench overhead: left behind: ${undo.failures.join('; ')}`);
  return output;
}
