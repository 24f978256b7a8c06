/**
 * bench/http-live: what HTTP capture costs a request and the node, between two lab pods, in the same run with and
 * without it.
 *
 *   1. Two pods: nginx in `server`, the load generator in `client` (./http-live-traffic.ts says which and why:
 *      neither is ours, nginx is a fast C server and the generator, in Go, measures each request to the µs),
 *      16 keep-alive HTTP/1.1 connections, one GET at a time on each, a 3-byte response. Both ends run at a raised
 *      priority in both modes, nice -20 unless BENCH_ENDS_PRIORITY=fifo (why: ./http-live-traffic.ts).
 *   2. Modes: baseline (nothing attached) and traced (`sidecarless collector` with flows and http on, tracing both
 *      pods' cgroups, producing to Kafka on a fresh topic prefix per window). The enricher does not run: the floors
 *      are the collector's and the request path's. BPF run-time statistics are on for the whole run, both modes
 *      (they add a clock read per program run: against the traced mode).
 *   3. Capacity: closed-loop for PROBE_SECONDS, each mode. The highest sustainable rate is searched with tracing
 *      on (the traced mode is the one that must sustain it): open-loop at falling fractions of the traced
 *      capacity until requests stop queueing, p90 from the due time ≤ SUSTAINED_P90_US (an open-loop rate at full
 *      capacity only measures its queue), and the collector's kernel programs lose nothing (kernelLossesOfPins: a
 *      rate at which the ring overflows is one the collector does not keep up with). The traced probe reports its
 *      cost and exactness too: at full capacity is where the ring overflows first.
 *   4. Rounds (BENCH_ROUNDS, default 5): per rate, 1,000/s, 5,000/s and that highest rate, open-loop for
 *      BENCH_LOAD_SECONDS (default 10) in each mode; the modes' order alternates between rounds so that machine
 *      noise hits both alike. A traced window starts a fresh collector and sends WARM_SECONDS of the same load
 *      before the measured part (the JIT's warm-up is not what a window measures: a DaemonSet pod runs warm), then
 *      leaves it idle for IDLE_SECONDS: what it costs with no request (timers, and its programs' checks on every
 *      other process's socket calls), so that the cost per request can be told from the fixed cost.
 *   5. Per window: the load generator's latency percentiles (µs) from each request's due time (no coordinated
 *      omission) and from its write (service time). Traced windows also: the collector's process cores (its
 *      cgroup's user + system) and BPF cores (run time of its pinned programs, http and flows apart) from the
 *      measured load's start to TAIL_MS after its end, divided by the load's seconds; cores per 1,000 requests/s,
 *      all-in (what the floor judges) and marginal (less the idle cores);
 *      peak RSS; exactness: http.v1 events produced == 2 × requests (both pods traced: client and server side),
 *      else the difference and the drops by reason, over the whole window (warm-up included), and apart what the
 *      kernel programs lost during the measured load (`lost_while_measured`).
 *   6. Per rate: the median over rounds of each percentile per mode, the added latency (traced − baseline), the
 *      noise it carries (the baseline p99's range over the rounds, each round's paired difference) and the BPF run
 *      time per request (noiseOf), the median cores per 1,000 requests/s. `floors`: added p99 ≤ 50 µs, collector
 *      ≤ 0.02 cores per 1,000 requests/s, each with its numbers and met: true/false.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafka } from '../src/common/kafka/client.js';
import { createLogger } from '../src/common/logger.js';
import { enableRunTimeStats, programStatsOfPins } from '../src/ebpf/stats.js';
import { topicSpecs } from '../src/events/topics.js';
import type { CollectorStats } from '../src/collector/collector.js';
import { startCollectorProcess, uninstallCollectorPins } from '../src/lab/collector-process.js';
import { cpuTimes, hostConditions } from '../src/lab/host-conditions.js';
import { kernelLossesOfPins, lostDuring } from '../src/lab/kernel-losses.js';
import { createLab, type Pod } from '../src/lab/pods.js';
import { localKafkaBrokers } from '../src/lab/stack/endpoints.js';
import { peakRssMegabytes, round, sampleUsage, usageBetween, type MeasuredProcess, type Usage } from '../src/lab/usage.js';
import { buildLoadGenerator, endsPriority, runLoad, searchSustainable, startNginx, SUSTAINED_P90_US, type LoadResult, type Percentiles } from './http-live-traffic.js';

const LOAD_SECONDS = Number(process.env.BENCH_LOAD_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PROBE_SECONDS = 5;
const PACED_RATES = [1_000, 5_000];
const CONNECTIONS = 16;
/**
 * Load before a traced window's measured part: the JIT's warm-up is not what a window measures (a DaemonSet pod runs
 * warm for days). 20 s rather than 2: at 1,000 requests/s a collector still spent a quarter of its samples compiling
 * (perf) 10 s into the load, and its process cores per 1,000 requests/s were 0.023-0.030 after 3 s of load against
 * 0.017-0.018 after 20 s (scratch runs alternated, collector alone at 1,000/s for 15-20 s).
 */
const WARM_SECONDS = 20;
const IDLE_SECONDS = 3;
/** After the load: the collector's flush interval and Kafka's acknowledgement are part of what the load cost. */
const TAIL_MS = 1_000;
const PORT = 7311;
const FLOORS = { addedP99Us: 50, coresPer1000: 0.02 };
const KINDS = ['http', 'flows'] as const;

interface Pair {
  client: Pod;
  server: Pod;
  generator: string;
}

type Kind = (typeof KINDS)[number];

interface Exactness {
  requests: number;
  http_events: number;
  expected_events: number;
  drops: Record<string, number>;
  exact: boolean;
}

interface Cost extends Usage {
  bpf_cores_by_kind: Record<Kind, number>;
}

interface MeasuredCost extends Cost {
  cores_per_1000_rps: number;
  /** Records the kernel programs lost during the measured load (kernelLossesOfPins), not during its warm-up. */
  lost_while_measured: number;
}

interface TracedCost extends MeasuredCost, Exactness {
  /** cores_per_1000_rps less what the collector spends idle (`idle`, measured in the same window). */
  marginal_cores_per_1000_rps: number;
  idle: Cost;
  peak_rss_mb: number;
}

interface Window {
  load: LoadResult;
  collector?: TracedCost;
}

const load = (pair: Pair, rate: number, seconds: number) =>
  runLoad(pair.client, pair.generator, { target: `${pair.server.ip}:${PORT}`, rate, seconds, connections: CONNECTIONS });

function bpfRunNs(directory: string): bigint {
  return [...programStatsOfPins(directory).values()].reduce((sum, program) => sum + program.runTimeNs, 0n);
}

/** A fresh collector tracing both pods, for the loads of one window; it counts their requests for exactness. */
class TracedSession {
  private requests = 0;

  constructor(
    private readonly pair: Pair,
    private readonly agent: MeasuredProcess & { pinDirectory: string },
  ) {}

  async load(rate: number, seconds: number): Promise<LoadResult> {
    const result = await load(this.pair, rate, seconds);
    this.requests += result.requests;
    return result;
  }

  /** What the collector spent while `work` ran, per of the seconds `work` resolves to. */
  private async cost(work: () => Promise<number>): Promise<Cost> {
    const kindRunNs = () => KINDS.map((kind) => bpfRunNs(join(this.agent.pinDirectory, kind)));
    const before = { usage: sampleUsage(this.agent), kinds: kindRunNs() };
    const seconds = await work();
    const usage = usageBetween(before.usage, sampleUsage(this.agent), seconds);
    const kinds = kindRunNs().map((ns, i) => round(Number(ns - before.kinds[i]!) / 1e9 / seconds, 4));
    return { ...usage, bpf_cores_by_kind: { http: kinds[0]!, flows: kinds[1]! } };
  }

  /**
   * The collector with no request: its timers, and its programs' checks on every other process's socket calls (a
   * tracepoint runs machine-wide), which a busy machine pays whatever the pods do.
   */
  idle(seconds: number): Promise<Cost> {
    return this.cost(async () => (await sleep(seconds * 1000), seconds));
  }

  /**
   * A load with what the collector spent on it, up to TAIL_MS after its end, per second of the load, and what its
   * kernel programs lost meanwhile (a window's exactness covers its warm-up too: this tells the two apart).
   */
  async measured(rate: number, seconds: number): Promise<{ load: LoadResult; usage: MeasuredCost }> {
    let result: LoadResult | undefined;
    const { result: usage, lost } = await lostDuring(
      () => this.lostSoFar(),
      () =>
        this.cost(async () => {
          result = await this.load(rate, seconds);
          await sleep(TAIL_MS);
          return result.seconds;
        }),
    );
    return { load: result!, usage: { ...usage, cores_per_1000_rps: round(usage.total_cores / (result!.achieved_per_s / 1000), 4), lost_while_measured: lost } };
  }

  /** What the collector's kernel programs lost so far (kernelLossesOfPins): a rate that moves it is not sustained. */
  lostSoFar(): bigint {
    return kernelLossesOfPins(this.agent.pinDirectory);
  }

  /** Exact when the collector produced an http.v1 event per request and side, and dropped nothing. */
  exactness(http: CollectorStats): Exactness {
    const expected = 2 * this.requests;
    return { requests: this.requests, http_events: http.eventsProduced, expected_events: expected, drops: http.drops, exact: http.eventsProduced === expected && Object.keys(http.drops).length === 0 };
  }
}

/** Runs `body` with a fresh collector tracing both pods, then stops it: what `body` returned, and exactness. */
async function traced<T>(pair: Pair, topicPrefix: string, body: (session: TracedSession) => Promise<T>): Promise<{ result: T; exactness: Exactness; peak_rss_mb: number }> {
  const env = {
    SIDECARLESS_KAFKA_TOPIC_PREFIX: topicPrefix,
    SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    SIDECARLESS_HTTP_ENABLED: 'true',
    // bpffs refuses dots in names.
    SIDECARLESS_COLLECTOR_PIN_DIRECTORY: `/sys/fs/bpf/sidecarless-${topicPrefix.replaceAll('.', '-')}`.replace(/-+$/, ''),
  };
  const collector = await startCollectorProcess(env, () => [pair.client.cgroup.path, pair.server.cgroup.path]);
  try {
    const session = new TracedSession(pair, { pid: collector.pid, cgroup: collector.cgroup, pinDirectory: env.SIDECARLESS_COLLECTOR_PIN_DIRECTORY });
    const result = await body(session);
    const peakRss = peakRssMegabytes(collector.pid);
    return { result, exactness: session.exactness(await collector.stop('http')), peak_rss_mb: peakRss };
  } finally {
    await collector.kill();
    uninstallCollectorPins(env);
  }
}

/** One traced window: warm-up load (the JIT's, not measured), the collector idle, then the measured load. */
async function tracedWindow(pair: Pair, rate: number, seconds: number, topicPrefix: string): Promise<Window> {
  const { result, exactness, peak_rss_mb } = await traced(pair, topicPrefix, async (session) => {
    await session.load(rate, WARM_SECONDS);
    const idle = await session.idle(IDLE_SECONDS);
    return { idle, ...(await session.measured(rate, seconds)) };
  });
  const marginal = round((result.usage.total_cores - result.idle.total_cores) / (result.load.achieved_per_s / 1000), 4);
  return { load: result.load, collector: { ...result.usage, marginal_cores_per_1000_rps: marginal, idle: result.idle, peak_rss_mb, ...exactness } };
}

/** Closed-loop capacity with tracing, then the highest open-loop rate it sustains (searchSustainable). */
async function capacityWithTracing(pair: Pair, topicPrefix: string) {
  const { result, exactness, peak_rss_mb } = await traced(pair, topicPrefix, async (session) => {
    await session.load(0, WARM_SECONDS);
    const closedLoop = await session.measured(0, PROBE_SECONDS);
    return { closedLoop, search: await searchSustainable(closedLoop.load.achieved_per_s, (rate, seconds) => session.load(rate, seconds), { soFar: () => session.lostSoFar() }) };
  });
  return {
    per_s: round(result.closedLoop.load.achieved_per_s, 0),
    collector: { ...result.closedLoop.usage, peak_rss_mb, ...exactness },
    search: result.search.tried,
    highest: result.search.highest,
    sustained: result.search.sustained,
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const QUANTILES = ['p50', 'p90', 'p99'] as const;
type Summary = Record<(typeof QUANTILES)[number], number>;

function medianPercentiles(windows: Window[], field: 'latency_us' | 'service_us'): Summary {
  return Object.fromEntries(QUANTILES.map((q) => [q, round(median(windows.map((window) => (window.load[field] as Percentiles)[q])), 1)])) as Summary;
}

const difference = (traced: Summary, baseline: Summary) => Object.fromEntries(QUANTILES.map((q) => [q, round(traced[q] - baseline[q], 1)])) as Summary;

/**
 * How far this machine lets the added p99 be told apart from nothing, and the part of the added latency that is not
 * scheduling: the baseline's own p99 over its rounds (its range is the noise the median difference carries), each
 * round's paired difference, and the run time of every BPF program per request (the programs run inside the ends'
 * own syscalls and softirqs, both ends of each request: what tracing adds to a request when nothing else competes
 * for its CPU).
 */
function noiseOf(rate: number, rounds: Array<{ baseline: Window; traced: Window }>, bpfCores: number) {
  const p99 = (window: Window) => (window.load.latency_us as Percentiles).p99;
  const baselineP99s = rounds.map((r) => p99(r.baseline));
  return {
    baseline_p99_us_by_round: baselineP99s.map((value) => round(value, 1)),
    baseline_p99_range_us: round(Math.max(...baselineP99s) - Math.min(...baselineP99s), 1),
    added_p99_us_by_round: rounds.map((r) => round(p99(r.traced) - p99(r.baseline), 1)),
    bpf_us_per_request: round((bpfCores * 1e6) / rate, 2),
  };
}

/** One rate's rounds summed up: medians per mode, the added latency, its noise, the collector's cost and exactness. */
function summarize(rate: number, rounds: Array<{ baseline: Window; traced: Window }>) {
  const [baseline, tracedWindows] = [rounds.map((r) => r.baseline), rounds.map((r) => r.traced)];
  const costs = tracedWindows.map((window) => window.collector!);
  const bpfCores = median(costs.map((cost) => cost.bpf_cores));
  const latency = { baseline: medianPercentiles(baseline, 'latency_us'), traced: medianPercentiles(tracedWindows, 'latency_us') };
  const service = { baseline: medianPercentiles(baseline, 'service_us'), traced: medianPercentiles(tracedWindows, 'service_us') };
  const drops: Record<string, number> = {};
  for (const cost of costs) for (const [reason, count] of Object.entries(cost.drops)) drops[reason] = (drops[reason] ?? 0) + count;
  const [events, expected] = [costs.reduce((sum, cost) => sum + cost.http_events, 0), costs.reduce((sum, cost) => sum + cost.expected_events, 0)];
  return {
    rate,
    achieved_per_s: { baseline: round(median(baseline.map((w) => w.load.achieved_per_s)), 0), traced: round(median(tracedWindows.map((w) => w.load.achieved_per_s)), 0) },
    latency_us: { ...latency, added: difference(latency.traced, latency.baseline) },
    service_us: { ...service, added: difference(service.traced, service.baseline) },
    noise: noiseOf(rate, rounds, bpfCores),
    collector: {
      cores_per_1000_rps: round(median(costs.map((cost) => cost.cores_per_1000_rps)), 4),
      marginal_cores_per_1000_rps: round(median(costs.map((cost) => cost.marginal_cores_per_1000_rps)), 4),
      idle_cores: round(median(costs.map((cost) => cost.idle.total_cores)), 4),
      idle_bpf_cores_http: round(median(costs.map((cost) => cost.idle.bpf_cores_by_kind.http)), 4),
      process_cores: round(median(costs.map((cost) => cost.process_cores)), 4),
      bpf_cores: round(bpfCores, 4),
      bpf_cores_http: round(median(costs.map((cost) => cost.bpf_cores_by_kind.http)), 4),
      bpf_cores_flows: round(median(costs.map((cost) => cost.bpf_cores_by_kind.flows)), 4),
      peak_rss_mb: Math.max(...costs.map((cost) => cost.peak_rss_mb)),
    },
    exactness: {
      http_events: events,
      expected,
      difference: events - expected,
      drops,
      lost_while_measured: costs.reduce((sum, cost) => sum + cost.lost_while_measured, 0),
      exact: costs.every((cost) => cost.exact),
    },
    rounds: rounds.map(({ baseline: b, traced: t }) => ({
      baseline: { latency_us: b.load.latency_us, service_us: b.load.service_us, achieved_per_s: round(b.load.achieved_per_s, 0) },
      traced: { latency_us: t.load.latency_us, service_us: t.load.service_us, achieved_per_s: round(t.load.achieved_per_s, 0), collector: t.collector },
    })),
  };
}

export async function run(): Promise<Record<string, unknown>> {
  const cpuAtStart = cpuTimes();
  const generator = await buildLoadGenerator();
  const stamp = `bench-${randomBytes(3).toString('hex')}.`;
  const prefixes: string[] = [];
  const kafka = createKafka({ brokers: localKafkaBrokers, clientId: 'sidecarless-bench-http-live' }, createLogger({ level: 'error', destination: 2 }));
  const admin = kafka.admin();
  await admin.connect();
  const stats = enableRunTimeStats();
  const lab = createLab({ name: 'bench-http-live', pods: ['client', 'server'] });
  try {
    const pair: Pair = { client: lab.pod('client'), server: lab.pod('server'), generator };
    const server = await startNginx(pair.server, PORT);
    const window = (mode: 'baseline' | 'traced', name: string, rate: number, seconds = LOAD_SECONDS): Promise<Window> => {
      process.stderr.write(`http-live: ${name} ${mode}\n`);
      if (mode === 'baseline') return load(pair, rate, seconds).then((result) => ({ load: result }));
      prefixes.push(`${stamp}${name}.`);
      return tracedWindow(pair, rate, seconds, `${stamp}${name}.`);
    };
    await load(pair, 0, 2); // warm-up of the lab: ARP, nginx's and the generator's first connections
    process.stderr.write('http-live: capacity\n');
    const baselineCapacity = await load(pair, 0, PROBE_SECONDS);
    prefixes.push(`${stamp}probe.`);
    const capacity = await capacityWithTracing(pair, `${stamp}probe.`);
    // The search may end at a paced rate (a busy machine): each rate is measured once.
    const rates = [...new Set([...PACED_RATES, capacity.highest])];
    const rounds = new Map(rates.map((rate) => [rate, [] as Array<{ baseline: Window; traced: Window }>]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const rate of rates) {
        const order = r % 2 === 0 ? (['baseline', 'traced'] as const) : (['traced', 'baseline'] as const);
        const result: Partial<Record<'baseline' | 'traced', Window>> = {};
        for (const mode of order) result[mode] = await window(mode, `r${r}x${rate}`, rate);
        rounds.get(rate)!.push(result as { baseline: Window; traced: Window });
      }
    }
    await server.stop();
    const summaries = rates.map((rate) => summarize(rate, rounds.get(rate)!));
    return {
      bench: 'http-live',
      setup: `nginx ${CONNECTIONS} keep-alive connections, ends under ${endsPriority.join(' ')}, open-loop, ${ROUNDS} rounds × ${LOAD_SECONDS} s per rate and mode, alternating; enricher not running`,
      capacity_closed_loop_per_s: { baseline: round(baselineCapacity.achieved_per_s, 0), traced: capacity.per_s, traced_collector: capacity.collector },
      highest_sustainable: { per_s: capacity.highest, sustained: capacity.sustained, rule: `open-loop with tracing, p90 from the due time ≤ ${SUSTAINED_P90_US} µs, and no record lost by the kernel programs`, tried: capacity.search },
      rates: summaries,
      // The Kafka broker's log and the collector's pins are under the working directory's .stack.
      host_conditions: hostConditions(cpuAtStart, process.cwd()),
      floors: {
        added_p99_at_most_50_us: {
          added_p99_us: Object.fromEntries(summaries.map((s) => [s.rate, s.latency_us.added.p99])),
          met: summaries.every((s) => s.latency_us.added.p99 <= FLOORS.addedP99Us),
          baseline_p99_range_us: Object.fromEntries(summaries.map((s) => [s.rate, s.noise.baseline_p99_range_us])),
          bpf_us_per_request: Object.fromEntries(summaries.map((s) => [s.rate, s.noise.bpf_us_per_request])),
        },
        collector_at_most_0_02_cores_per_1000_rps: {
          cores_per_1000_rps: Object.fromEntries(summaries.map((s) => [s.rate, s.collector.cores_per_1000_rps])),
          met: summaries.every((s) => s.collector.cores_per_1000_rps <= FLOORS.coresPer1000),
        },
        http_events_exact: {
          difference: Object.fromEntries(summaries.map((s) => [s.rate, s.exactness.difference])),
          lost_while_measured: Object.fromEntries(summaries.map((s) => [s.rate, s.exactness.lost_while_measured])),
          met: summaries.every((s) => s.exactness.exact),
        },
      },
    };
  } finally {
    lab.destroy();
    stats.release();
    const existing = new Set(await admin.listTopics());
    const topics = [...new Set(prefixes)].flatMap((prefix) => Object.values(topicSpecs(prefix)).map((spec) => spec.topic)).filter((topic) => existing.has(topic));
    await admin.deleteTopics({ topics }).catch((error: Error) => process.stderr.write(`http-live: topics left behind: ${error.message}\n`));
    await admin.disconnect();
  }
}
