/**
 * bench/overhead's arithmetic, pure: when counts are exact, the added latency against the baseline at the same rate
 * (none for `max`), the mesh's cores per 1,000 requests/s, the ebpf/sidecar ratios and the floors.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exactCounts, report, type Mode, type ModeRun } from '../../bench/overhead-report.js';
import type { LoadResult } from '../../bench/http-live-traffic.js';

const through = { proxy_access_log: { outbound_client: 100, inbound_server: 100 }, proxy_requests: { outbound_client: 100, inbound_client: 0, outbound_server: 0, inbound_server: 100 }, proxy_dropped_logs: 0 };

function load(achieved: number, p99: number): LoadResult {
  const latency = { p50: p99 / 4, p90: p99 / 2, p99, p999: 2 * p99, max: 3 * p99 };
  return { requests: achieved, answered: achieved, errors: 0, seconds: 1, achieved_per_s: achieved, connections: 16, latency_us: latency, service_us: latency, max_rss_kb: 10_240 };
}

function modeRun(mode: Mode, p99: number, cores: Record<string, number>, memory: Record<string, number>, programs?: Record<string, number>): ModeRun {
  const perProgram = programs && { bpf_program_cores: programs };
  // Each component's cores as its main thread's (the split's arithmetic is what is tested, below).
  const threads = Object.fromEntries(Object.entries(cores).filter(([name]) => name !== 'bpf programs' && name !== 'load generator').map(([name, used]) => [name, { 'main thread': used }]));
  return {
    mode,
    windows: [
      // A mode with programs (ebpf) counts what they lost: nothing at 1,000/s, 7 records at its max.
      { label: '1000', offered_per_s: 1000, load: load(1000, p99), cores, thread_cores: threads, ...perProgram, ...(programs && { lost: 0 }) },
      { label: 'max', offered_per_s: 4000, load: load(4000, p99), cores, thread_cores: threads, ...perProgram, ...(programs && { lost: 7 }) },
    ],
    memory_mb: memory,
    counts: { requests: 5000, server_access_log: 5000 },
    exact: true,
  };
}

describe('bench overhead: counts', () => {
  it('are exact when every count equals the requests, the proxies\' lines short by exactly what they dropped', () => {
    assert.equal(exactCounts({ requests: 100, server_access_log: 100 }), true);
    assert.equal(exactCounts({ requests: 100, server_access_log: 99 }), false);
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, ...through }), true);
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, ...through, proxy_access_log: { outbound_client: 97, inbound_server: 100 }, proxy_dropped_logs: 3 }), true);
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, ...through, proxy_access_log: { outbound_client: 97, inbound_server: 100 } }), false, 'lines missing that no drop explains');
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, ...through, proxy_access_log: { outbound_client: 100, inbound_server: 100, inbound_client: 1 } }), false, 'a listener off the path took one');
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, ...through, proxy_requests: { ...through.proxy_requests, inbound_server: 99 } }), false);
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, http_events: 200, expected_http_events: 200, http_drops: {} }), true);
    assert.equal(exactCounts({ requests: 100, server_access_log: 100, http_events: 199, expected_http_events: 200, http_drops: { ringbuf_full: 1 } }), false);
  });
});

describe('bench overhead: report', () => {
  const runs = [
    modeRun('baseline', 100, { 'load generator': 0.2, server: 0.05 }, { 'load generator': 10, server: 7 }),
    modeRun('ebpf', 110, { 'load generator': 0.2, server: 0.05, collector: 0.01, enforcer: 0.002, enricher: 0.006, 'bpf programs': 0.002 }, { 'load generator': 10, server: 7, collector: 90, enforcer: 90, enricher: 300 }, { http_sent: 0.0015, policy_ingress: 0.0005 }),
    modeRun('sidecar', 400, { 'load generator': 0.2, server: 0.05, 'client proxy': 0.1, 'server proxy': 0.1 }, { 'load generator': 10, server: 7, 'client proxy': 15, 'server proxy': 15 }),
  ];
  const info = { run_id: 'overhead-test', started_at: new Date('2026-12-01T12:00:00Z'), host: 'h', load_average: [1, 1, 1], proxy: 'HAProxy 2.6.12', seconds: 1, connections: 16 };
  const { json, rows, table } = report(info, runs);

  it('adds latency against the baseline at the same rate only, and counts the mesh apart from the two ends', () => {
    const ebpf = json.rates.find((s) => s.mode === 'ebpf' && s.rate === '1000')!;
    assert.deepEqual(ebpf.added_latency_us, { p50: 2.5, p90: 5, p99: 10, p999: 20 });
    assert.equal(json.rates.find((s) => s.mode === 'ebpf' && s.rate === 'max')!.added_latency_us, null);
    assert.equal(ebpf.mesh_cores, 0.02);
    assert.equal(ebpf.mesh_cores_per_1000_rps, 0.02);
    assert.equal(ebpf.total_cores_per_1000_rps, 0.268, 'BPF run time is not added to the total: it is already in the cgroups');
    assert.equal(ebpf.mesh_memory_mb, 480);
    assert.equal(json.rates.find((s) => s.mode === 'sidecar' && s.rate === 'max')!.mesh_cores_per_1000_rps, 0.05);
  });

  it('says what each BPF program costs per request, in the ebpf mode only', () => {
    const at = (mode: Mode, rate: string) => json.rates.find((s) => s.mode === mode && s.rate === rate)!.bpf_ns_per_request;
    // 0.0015 cores = 1.5 ms of run time per second: 1,500 ns per request at 1,000/s, 375 at 4,000/s.
    assert.deepEqual(at('ebpf', '1000'), { http_sent: 1500, policy_ingress: 500 });
    assert.deepEqual(at('ebpf', 'max'), { http_sent: 375, policy_ingress: 125 });
    assert.equal(at('baseline', '1000'), null);
    assert.equal(at('sidecar', '1000'), null);
  });

  it('says what the ebpf mode\'s programs lost in each window, and nothing for the modes without programs', () => {
    const lost = (mode: Mode, rate: string) => json.rates.find((s) => s.mode === mode && s.rate === rate)!.lost_while_measured;
    assert.deepEqual([lost('ebpf', '1000'), lost('ebpf', 'max'), lost('baseline', '1000'), lost('sidecar', 'max')], [0, 7, null, null]);
  });

  it('says where each component\'s cores go, by thread, per 1,000 requests/s', () => {
    const max = json.rates.find((s) => s.mode === 'ebpf' && s.rate === 'max')!;
    assert.deepEqual(max.thread_cores_per_1000_rps.enricher, { 'main thread': 0.0015 }, '0.006 cores at 4,000/s');
    assert.deepEqual(Object.keys(max.thread_cores_per_1000_rps).sort(), ['collector', 'enforcer', 'enricher', 'server']);
  });

  it('states the ratios and judges the floors against the sidecar', () => {
    assert.deepEqual(json.ratios.find((r) => r.rate === '1000'), { against: 'sidecar', rate: '1000', added_p99: 0.033, mesh_cores_per_1000_rps: 0.1, mesh_memory_mb: 16, achieved_per_s: 1 });
    assert.deepEqual(json.floors.ebpf_added_p99_at_most_a_tenth_of_sidecar, { added_p99_us: { 1000: { ebpf: 10, sidecar: 300 } }, unjudged_rates: [], met: true });
    assert.deepEqual(json.floors.ebpf_cores_per_1000_rps_at_most_a_tenth_of_sidecar.met, true);
    assert.deepEqual(json.per_proxy[0], { mode: 'sidecar', rate: '1000', vcpu_per_1000_rps: { 'client proxy': 0.1, 'server proxy': 0.1 }, memory_mb: { 'client proxy': 15, 'server proxy': 15 } });
    assert.match(table, /^Istio 1\.24 publishes 0\.2 vCPU and 60 MB per 1,000 requests\/s per Envoy sidecar, for comparison$/m);
  });

  it('does not judge the added-p99 floor at a rate where the sidecar added nothing to the baseline\'s p99', () => {
    const noisyBaseline = (sidecarP99: number, ebpfP99: number) =>
      report(info, [
        modeRun('baseline', 1000, { 'load generator': 0.2, server: 0.05 }, { 'load generator': 10, server: 7 }),
        modeRun('ebpf', ebpfP99, { 'load generator': 0.2, server: 0.05, collector: 0.01 }, { 'load generator': 10, server: 7, collector: 90 }),
        modeRun('sidecar', sidecarP99, { 'load generator': 0.2, server: 0.05, 'client proxy': 0.1 }, { 'load generator': 10, server: 7, 'client proxy': 15 }),
      ]);
    // Both below the baseline (its window had the worse tail): ebpf's -900 is "a tenth" of -500 by arithmetic only.
    const below = noisyBaseline(500, 100);
    assert.deepEqual(below.json.floors.ebpf_added_p99_at_most_a_tenth_of_sidecar, { added_p99_us: { 1000: { ebpf: -900, sidecar: -500 } }, unjudged_rates: ['1000'], met: null });
    assert.match(below.table, /^floor ebpf_added_p99_at_most_a_tenth_of_sidecar: not judged: the sidecar added no p99 at 1000\/s, so there is no tenth to compare with \(no other rate failed\) /m);
    // A rate that fails is a failure whatever the others.
    assert.equal(noisyBaseline(1200, 1100).json.floors.ebpf_added_p99_at_most_a_tenth_of_sidecar.met, false);
    assert.equal(noisyBaseline(2000, 1050).json.floors.ebpf_added_p99_at_most_a_tenth_of_sidecar.met, true);
  });

  it('makes a row per mode and rate for overhead_runs', () => {
    assert.equal(rows.length, 6);
    assert.deepEqual(rows[2], {
      run_id: 'overhead-test', started_at: '2026-12-01 12:00:00.000', host: 'h', load_average_1m: 1, proxy: 'HAProxy 2.6.12', mode: 'ebpf', rate: '1000',
      offered_rps: 1000, achieved_rps: 1000, requests: 1000, seconds: 1, connections: 16,
      p50_us: 27.5, p90_us: 55, p99_us: 110, p999_us: 220, added_p50_us: 2.5, added_p90_us: 5, added_p99_us: 10, added_p999_us: 20,
      mesh_cores: 0.02, mesh_cores_per_1k_rps: 0.02, total_cores_per_1k_rps: 0.268, mesh_memory_mb: 480,
      component_cores: runs[1]!.windows[0]!.cores, component_cores_per_1k_rps: { 'load generator': 0.2, server: 0.05, collector: 0.01, enforcer: 0.002, enricher: 0.006, 'bpf programs': 0.002 },
      component_memory_mb: runs[1]!.memory_mb, exact: 1, lost_while_measured: 0,
    });
  });
});
