/**
 * bench/overhead's results: per mode and rate the latency added against the baseline at the same offered rate,
 * the cores per 1,000 requests/s of every component and of the mode's own ones (the mesh: the ebpf mode's agents
 * and BPF programs, the sidecar mode's two proxies, the node-proxy mode's one), the ebpf/sidecar and
 * ebpf/node-proxy ratios, the floors (against the sidecar), Istio's published sidecar figures beside ours; as JSON, as rows of ClickHouse `overhead_runs` and as a table for a person.
 */
import type { HostConditions } from '../src/lab/host-conditions.js';
import { round } from '../src/lab/usage.js';
import type { LoadResult, Percentiles, SustainableSearch } from './http-live-traffic.js';

export const MODES = ['baseline', 'ebpf', 'sidecar', 'node-proxy'] as const;
export type Mode = (typeof MODES)[number];

/** The components every mode has: the traffic's two ends. The others are the mode's own, its mesh. */
const APP_COMPONENTS = new Set(['load generator', 'server']);
const QUANTILES = ['p50', 'p90', 'p99', 'p999'] as const;
type Quantiles = Record<(typeof QUANTILES)[number], number>;

/** Istio 1.24's published performance figures for its Envoy sidecar (docs: "Performance and Scalability"). */
export const ISTIO_SIDECAR = { istio_version: '1.24', vcpu_per_1000_rps: 0.2, memory_mb: 60, proxy: 'Envoy' } as const;
/** The floors of the ebpf mode against the sidecar mode. */
const FLOOR_FRACTION = 0.1;

export interface Window {
  /** The rate as asked: a number, or 'max'. */
  label: string;
  offered_per_s: number;
  load: LoadResult;
  /** Cores per component (and BPF programs) over the window. */
  cores: Record<string, number>;
  /** Per component, the cores of its threads by thread, the costliest first (threadCoresBetween). */
  thread_cores: Record<string, Record<string, number>>;
  /** Cores of each BPF program (ebpf mode), the costliest first: what `cores['bpf programs']` is made of. */
  bpf_program_cores?: Record<string, number>;
  /** Records the ebpf mode's kernel programs lost during the window (kernelLossesOfPins): its cores cover the rest. */
  lost?: number;
}

export interface Counts {
  /** Requests the load generator sent in the mode (warm-ups and searches included). */
  requests: number;
  server_access_log: number;
  /** Proxy modes: access log lines per listener (outbound_client, inbound_server: one per request each). */
  proxy_access_log?: Record<string, number>;
  /** Proxy modes: requests per listener from the proxies' statistics (the client's inbound, the server's outbound: 0). */
  proxy_requests?: Record<string, number>;
  /** Proxy modes: log lines the proxies could not write, by their own count. */
  proxy_dropped_logs?: number;
  http_events?: number;
  expected_http_events?: number;
  http_drops?: Record<string, number>;
}

/**
 * Every count agrees with the requests the load generator sent: nginx's log; each listener on the way (the
 * client's outbound, the server's inbound) in its statistics, none other took one, and in its log, but for the
 * lines the proxy counted as dropped (HAProxy 2.6 drops a log line when both its threads write at once); two http
 * events per request (both pods traced), no drop.
 */
export function exactCounts(counts: Counts): boolean {
  const r = counts.requests;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const sorted = (record: Record<string, number>) => Object.fromEntries(Object.entries(record).sort());
  const logged = (lines: Record<string, number>) => {
    const { inbound_server = 0, outbound_client = 0, ...others } = lines;
    return Object.keys(others).length === 0 && inbound_server <= r && outbound_client <= r && inbound_server + outbound_client + (counts.proxy_dropped_logs ?? 0) === 2 * r;
  };
  return (
    counts.server_access_log === r &&
    (counts.proxy_access_log === undefined || logged(counts.proxy_access_log)) &&
    (counts.proxy_requests === undefined || same(sorted(counts.proxy_requests), { inbound_client: 0, inbound_server: r, outbound_client: r, outbound_server: 0 })) &&
    (counts.http_events === undefined || (counts.http_events === 2 * r && counts.expected_http_events === 2 * r && Object.keys(counts.http_drops ?? {}).length === 0))
  );
}

export interface ModeRun {
  mode: Mode;
  /** The load that settled the mode's components before its first window: their cores then, start-up included. */
  settle?: { offered_per_s: number; seconds: number; cores: Record<string, number> };
  windows: Window[];
  memory_mb: Record<string, number>;
  counts: Counts;
  /** Every count equals the requests (http events: twice), no drop. */
  exact: boolean;
  search?: SustainableSearch & { closed_loop_per_s: number };
}

export interface RunInfo {
  run_id: string;
  started_at: Date;
  host: string;
  load_average: number[];
  load_average_end?: number[];
  /** What the machine did besides the bench over the run (src/lab/host-conditions.ts). */
  host_conditions?: HostConditions;
  proxy: string;
  seconds: number;
  connections: number;
}

interface Summary {
  mode: Mode;
  rate: string;
  offered_per_s: number;
  achieved_per_s: number;
  requests: number;
  latency_us: Percentiles;
  service_us: Percentiles;
  /** Against the baseline at the same offered rate; null for 'max' (each mode's own rate) or without a baseline. */
  added_latency_us: Quantiles | null;
  cores: Record<string, number>;
  cores_per_1000_rps: Record<string, number>;
  mesh_cores: number;
  mesh_cores_per_1000_rps: number;
  total_cores_per_1000_rps: number;
  /** Per component, its threads' cores per 1,000 requests/s by thread, the costliest first: where its cores go. */
  thread_cores_per_1000_rps: Record<string, Record<string, number>>;
  /** Run time of each BPF program per request, ns, the costliest first (ebpf mode; null in the others). */
  bpf_ns_per_request: Record<string, number> | null;
  /** What the kernel programs lost during the window (ebpf mode; null in the others): `exact` covers the whole mode. */
  lost_while_measured: number | null;
  memory_mb: Record<string, number>;
  mesh_memory_mb: number;
  exact: boolean;
}

const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
const mesh = <T>(record: Record<string, T>) => Object.entries(record).filter(([name]) => !APP_COMPONENTS.has(name));

function summarize(run: ModeRun, baseline: ModeRun | undefined): Summary[] {
  return run.windows.map((window) => {
    const per1000 = (cores: number) => round(cores / (window.load.achieved_per_s / 1000), 4);
    const base = window.label === 'max' ? undefined : baseline?.windows.find((w) => w.label === window.label);
    const meshCores = round(sum(mesh(window.cores).map(([, cores]) => cores)), 4);
    return {
      mode: run.mode,
      rate: window.label,
      offered_per_s: window.offered_per_s,
      achieved_per_s: round(window.load.achieved_per_s, 0),
      requests: window.load.requests,
      latency_us: window.load.latency_us,
      service_us: window.load.service_us,
      added_latency_us: base ? (Object.fromEntries(QUANTILES.map((q) => [q, round(window.load.latency_us[q] - base.load.latency_us[q], 1)])) as Quantiles) : null,
      cores: window.cores,
      cores_per_1000_rps: Object.fromEntries(Object.entries(window.cores).map(([name, cores]) => [name, per1000(cores)])),
      mesh_cores: meshCores,
      mesh_cores_per_1000_rps: per1000(meshCores),
      total_cores_per_1000_rps: per1000(sum(Object.entries(window.cores).filter(([name]) => name !== 'bpf programs').map(([, cores]) => cores))),
      thread_cores_per_1000_rps: Object.fromEntries(Object.entries(window.thread_cores).map(([component, threads]) => [component, Object.fromEntries(Object.entries(threads).map(([thread, cores]) => [thread, per1000(cores)]))])),
      bpf_ns_per_request: window.bpf_program_cores ? Object.fromEntries(Object.entries(window.bpf_program_cores).map(([name, cores]) => [name, round((cores * 1e9) / window.load.achieved_per_s, 1)])) : null,
      lost_while_measured: window.lost ?? null,
      memory_mb: run.memory_mb,
      mesh_memory_mb: round(sum(mesh(run.memory_mb).map(([, mb]) => mb)), 1),
      exact: run.exact,
    };
  });
}

const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? null : round(a / b, 3));

/** Per rate both modes ran: ebpf's figure over the proxy mode's (sidecar, node-proxy). */
function ratios(summaries: Summary[]) {
  const of = (mode: Mode) => new Map(summaries.filter((s) => s.mode === mode).map((s) => [s.rate, s]));
  const ebpf = of('ebpf');
  return (['sidecar', 'node-proxy'] as const).flatMap((against) => {
    const proxy = of(against);
    return [...ebpf.keys()].filter((rate) => proxy.has(rate)).map((rate) => {
      const [e, p] = [ebpf.get(rate)!, proxy.get(rate)!];
      return {
        against,
        rate,
        added_p99: ratio(e.added_latency_us?.p99, p.added_latency_us?.p99),
        mesh_cores_per_1000_rps: ratio(e.mesh_cores_per_1000_rps, p.mesh_cores_per_1000_rps),
        mesh_memory_mb: ratio(e.mesh_memory_mb, p.mesh_memory_mb),
        achieved_per_s: ratio(e.achieved_per_s, p.achieved_per_s),
      };
    });
  });
}

/**
 * Per floor its numbers per rate and whether it is met: null when nothing could be judged (no rate with both
 * modes). The added-p99 floor judges only the rates where the sidecar added to the baseline's p99: where it added
 * nothing or less than nothing (the baseline's own window had the worse tail, as on a noisy machine), a tenth of it
 * says nothing, so that rate is listed as unjudged, and the floor is met only when every rate was judged and met.
 */
function floors(summaries: Summary[]) {
  const pairs = summaries
    .filter((s) => s.mode === 'ebpf')
    .flatMap((e) => {
      const s = summaries.find((other) => other.mode === 'sidecar' && other.rate === e.rate);
      return s ? [{ rate: e.rate, e, s }] : [];
    });
  const latency = pairs.filter(({ e, s }) => e.added_latency_us && s.added_latency_us);
  const judged = latency.filter(({ s }) => s.added_latency_us!.p99 > 0);
  const unjudged = latency.filter(({ s }) => s.added_latency_us!.p99 <= 0).map(({ rate }) => rate);
  const failed = judged.some(({ e, s }) => e.added_latency_us!.p99 > FLOOR_FRACTION * s.added_latency_us!.p99);
  return {
    ebpf_added_p99_at_most_a_tenth_of_sidecar: {
      added_p99_us: Object.fromEntries(latency.map(({ rate, e, s }) => [rate, { ebpf: e.added_latency_us!.p99, sidecar: s.added_latency_us!.p99 }])),
      /** Rates where the sidecar added no p99 against the baseline: no tenth to compare with. */
      unjudged_rates: unjudged,
      met: failed ? false : judged.length === 0 || unjudged.length > 0 ? null : true,
    },
    ebpf_cores_per_1000_rps_at_most_a_tenth_of_sidecar: {
      mesh_cores_per_1000_rps: Object.fromEntries(pairs.map(({ rate, e, s }) => [rate, { ebpf: e.mesh_cores_per_1000_rps, sidecar: s.mesh_cores_per_1000_rps }])),
      met: pairs.length === 0 ? null : pairs.every(({ e, s }) => e.mesh_cores_per_1000_rps <= FLOOR_FRACTION * s.mesh_cores_per_1000_rps),
    },
  };
}

/** A floor's verdict as the table states it. */
function verdict(floor: { met: boolean | null; unjudged_rates?: string[] }): string {
  if (floor.met !== null) return floor.met ? 'met' : 'NOT met';
  if (floor.unjudged_rates?.length) return `not judged: the sidecar added no p99 at ${floor.unjudged_rates.join(', ')}/s, so there is no tenth to compare with (no other rate failed)`;
  return 'not measured (ebpf and sidecar at no common rate)';
}

/** Our proxies against Istio's published figures: per proxy, cores per 1,000 requests/s and peak RSS. */
function perProxy(summaries: Summary[]) {
  return summaries
    .filter((s) => s.mode === 'sidecar' || s.mode === 'node-proxy')
    .map((s) => {
      const proxies = Object.keys(s.memory_mb).filter((name) => name.endsWith('proxy'));
      return {
        mode: s.mode,
        rate: s.rate,
        vcpu_per_1000_rps: Object.fromEntries(proxies.map((name) => [name, s.cores_per_1000_rps[name]])),
        memory_mb: Object.fromEntries(proxies.map((name) => [name, s.memory_mb[name]])),
      };
    });
}

/** A ClickHouse DateTime64(3) in the text form JSONEachRow takes. */
const clickhouseTime = (date: Date) => date.toISOString().replace('T', ' ').replace('Z', '');

function row(info: RunInfo, s: Summary) {
  return {
    run_id: info.run_id,
    started_at: clickhouseTime(info.started_at),
    host: info.host,
    load_average_1m: info.load_average[0],
    proxy: info.proxy,
    mode: s.mode,
    rate: s.rate,
    offered_rps: s.offered_per_s,
    achieved_rps: s.achieved_per_s,
    requests: s.requests,
    seconds: info.seconds,
    connections: info.connections,
    ...Object.fromEntries(QUANTILES.map((q) => [`${q}_us`, s.latency_us[q]])),
    ...Object.fromEntries(QUANTILES.map((q) => [`added_${q}_us`, s.added_latency_us?.[q] ?? null])),
    mesh_cores: s.mesh_cores,
    mesh_cores_per_1k_rps: s.mesh_cores_per_1000_rps,
    total_cores_per_1k_rps: s.total_cores_per_1000_rps,
    mesh_memory_mb: s.mesh_memory_mb,
    component_cores: s.cores,
    component_cores_per_1k_rps: s.cores_per_1000_rps,
    component_memory_mb: s.memory_mb,
    exact: s.exact ? 1 : 0,
    lost_while_measured: s.lost_while_measured,
  };
}

const cell = (value: unknown, width: number) => String(value ?? '-').padStart(width);

function table(info: RunInfo, summaries: Summary[], json: ReturnType<typeof build>): string {
  const header = ['mode', 'rate', 'req/s', 'p50', 'p90', 'p99', 'p999', '+p50', '+p99', 'mesh cores/1k', 'total cores/1k', 'mesh MB', 'exact'];
  const widths = [10, 6, 7, 7, 7, 7, 8, 7, 8, 14, 15, 8, 6];
  const line = (cells: unknown[]) => cells.map((value, i) => (i < 2 ? String(value).padEnd(widths[i]!) : cell(value, widths[i]!))).join(' ');
  const lines = [
    `bench overhead: ${info.proxy} stands in for Envoy in the proxy modes (no Envoy build can be had here); latency in µs from each request's due time; load average ${info.load_average.join(' ')} at the start, ${info.load_average_end?.join(' ') ?? '-'} at the end`,
    line(header),
    ...summaries.map((s) =>
      line([s.mode, s.rate, s.achieved_per_s, s.latency_us.p50, s.latency_us.p90, s.latency_us.p99, s.latency_us.p999, s.added_latency_us?.p50, s.added_latency_us?.p99, s.mesh_cores_per_1000_rps, s.total_cores_per_1000_rps, s.mesh_memory_mb, s.exact ? 'yes' : 'NO']),
    ),
    ...json.ratios.map((r) => `ebpf/${r.against} at ${r.rate}: added p99 ${r.added_p99 ?? '-'}, mesh cores per 1,000 req/s ${r.mesh_cores_per_1000_rps ?? '-'}, mesh memory ${r.mesh_memory_mb ?? '-'}, throughput ${r.achieved_per_s ?? '-'}`),
    ...json.per_proxy.map((p) => `${p.mode} at ${p.rate}: ${Object.keys(p.memory_mb).map((name) => `${name} ${p.vcpu_per_1000_rps[name]} vCPU per 1,000 req/s and ${p.memory_mb[name]} MB`).join(', ')}`),
    `Istio ${ISTIO_SIDECAR.istio_version} publishes ${ISTIO_SIDECAR.vcpu_per_1000_rps} vCPU and ${ISTIO_SIDECAR.memory_mb} MB per 1,000 requests/s per ${ISTIO_SIDECAR.proxy} sidecar, for comparison`,
    ...Object.entries(json.floors).map(([name, floor]) => `floor ${name}: ${verdict(floor)} ${JSON.stringify(Object.values(floor)[0])}`),
  ];
  return `${lines.join('\n')}\n`;
}

function build(info: RunInfo, runs: ModeRun[], summaries: Summary[]) {
  return {
    bench: 'overhead',
    run_id: info.run_id,
    setup: `lab pods client → server (nginx), open-loop keep-alive HTTP/1.1 on ${info.connections} connections, ${info.seconds} s per mode and rate, modes back to back: ${runs.map((r) => r.mode).join(', ')}`,
    proxy: `${info.proxy} stands in for Envoy: in each pod (sidecar: client-side outbound, server-side inbound) or one per node with listeners in each pod's netns (node-proxy), behind istio-init's NAT redirect`,
    istio_published: ISTIO_SIDECAR,
    host: info.host,
    load_average: { start: info.load_average, end: info.load_average_end ?? null },
    host_conditions: info.host_conditions ?? null,
    rates: summaries,
    ratios: ratios(summaries),
    per_proxy: perProxy(summaries),
    floors: floors(summaries),
    counts: Object.fromEntries(runs.map((r) => [r.mode, { ...r.counts, exact: r.exact }])),
    highest_sustainable: Object.fromEntries(runs.flatMap((r) => (r.search ? [[r.mode, r.search]] : []))),
    /** Per mode, the load that settled its components before the first window (start-up included): not per request. */
    settle: Object.fromEntries(runs.flatMap((r) => (r.settle ? [[r.mode, r.settle]] : []))),
  };
}

export function report(info: RunInfo, runs: ModeRun[]) {
  const baseline = runs.find((r) => r.mode === 'baseline');
  const summaries = runs.flatMap((r) => summarize(r, baseline));
  const json = build(info, runs, summaries);
  return { json, rows: summaries.map((s) => row(info, s)), table: table(info, summaries, json) };
}
