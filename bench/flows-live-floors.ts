/**
 * The floors issue 7 sets for live flow tracing, judged on one bench/flows-live run. Each floor carries the
 * numbers it was judged on; a floor that this run cannot judge (no peer, a shorter idle window, a measurement
 * that stops short of what the floor names) is not met.
 */

export interface RateResult {
  rate: number | 'max';
  baseline: { achieved_per_s: number };
  /** A window per agent mode (ours, peer): the fields bench/flows-live's measure() reports. */
  [mode: string]: unknown;
}

interface Window {
  achieved_per_s: number;
  total_cores: number;
  cores_per_1000_conn_s?: number;
  peak_rss_mb: number;
  freshness_ms?: { p50: number; p99: number };
  row_freshness_ms?: { rows: number; p50?: number; p99?: number };
}

const IDLE_CORES = 0.003;
const IDLE_FLOOR_SECONDS = 60;
const RSS_MB = 96;

export function judgeFloors(rates: RateResult[], idle: Record<string, unknown>, idleSeconds: number): Record<string, unknown> {
  const window = (from: Record<string, unknown>, mode: string) => from[mode] as Window | undefined;
  const ours = (rate: RateResult) => window(rate, 'ours')!;
  const idleOurs = window(idle, 'ours')!;

  const perRate = rates.map((rate) => {
    const [mine, theirs] = [ours(rate).cores_per_1000_conn_s, window(rate, 'peer')?.cores_per_1000_conn_s];
    return { rate: rate.rate, ours: mine, peer: theirs ?? 'skipped', met: mine !== undefined && theirs !== undefined && mine < theirs };
  });
  const max = rates.find((rate) => rate.rate === 'max')!;
  const peerMax = window(max, 'peer')?.achieved_per_s;
  const rss: Record<string, number> = Object.fromEntries([['idle', idleOurs.peak_rss_mb], ...rates.map((rate) => [String(rate.rate), ours(rate).peak_rss_mb])]);
  const paced = rates.filter((rate) => rate.rate !== 'max');
  const freshness = Object.fromEntries(paced.map((rate) => [String(rate.rate), ours(rate).row_freshness_ms]));

  return {
    cores_per_1000_conn_s_below_peer: { rates: perRate, met: perRate.every((rate) => rate.met) },
    max_rate_at_least_peer: { ours: ours(max).achieved_per_s, peer: peerMax ?? 'skipped', met: peerMax !== undefined && ours(max).achieved_per_s >= peerMax },
    idle_cores_at_most_0_003: {
      ours: idleOurs.total_cores,
      seconds: idleSeconds,
      met: idleOurs.total_cores <= IDLE_CORES && idleSeconds >= IDLE_FLOOR_SECONDS,
    },
    rss_at_most_96_mb: { ours_peak: rss, met: Object.values(rss).every((mb) => mb <= RSS_MB) },
    freshness_p50_p99_reported: {
      ours_ms: freshness,
      measured: "a connection's close (its final event's time_ns) → its row queryable in ClickHouse, the enricher at its defaults, at the paced rates",
      met: paced.every((rate) => ours(rate).row_freshness_ms?.p99 !== undefined),
    },
  };
}
