/**
 * The metadata sources' watermarks, as the enricher's metadata feed reads them (src/events/metadata.ts: a source's
 * Watermark event W says it has published everything it observed up to W).
 *
 * - seen: the latest W of each source that the feed has consumed;
 * - confirmed: a W the feed has seen and then consumed every metadata partition past, up to end offsets fetched
 *   after it saw W. Everything the source published before W is below those offsets, so the index holds the
 *   source's state at every time up to a confirmed W (metadata-feed.ts runs these catch-ups).
 *
 * A source that published no watermark for longer than `staleAfterMs` (staleAfter: far longer than a hold, an API
 * server restart, a relist or a watermark period) is ignored: a decommissioned metadata role or a collector of a node
 * that is gone must not hold every flow forever. Shorter silences are waited for like a lag: batches wait the hold,
 * then their unnamed ends are written 'late', never 'miss' (a miss claims the metadata was complete). When it published is told by the feed
 * (metadata-feed.ts): when the feed read it, once the feed reads as the source writes, so that a source that still
 * publishes but whose W lags stays live (flows wait for it, and are written 'late' after the hold, which is what
 * its lag means); its message timestamp while the feed reads the topic's past at start, so that a source that
 * stopped a week ago is seen as stopped. Ignoring a source is logged once, and so is its return. With no live
 * source at all, nothing is waited for (`confirmedThrough` is undefined): a cluster without a metadata role gets
 * its rows at once.
 */
import type { Logger } from '../common/logger.js';

interface Seen {
  watermarkNs: bigint;
  /** When the source's latest watermark message was published, as the feed tells it (ms). */
  publishedAtMs: number;
}

/**
 * How long a source may stay silent before it is taken as stopped: ten holds, and at least two minutes, which is
 * longer than metadata.watermarkMs can be (60 s at most) and than the relist after an API server restart takes.
 */
export function staleAfterMs(holdMs: number): number {
  return Math.max(10 * holdMs, 120_000);
}

export class Watermarks {
  private readonly seen = new Map<string, Seen>();
  private readonly confirmed = new Map<string, bigint>();
  private readonly ignored = new Set<string>();

  constructor(
    private readonly staleAfterMs: number,
    private readonly logger: Logger,
  ) {}

  /** Records a consumed Watermark event and when it was published; returns whether it moved the watermark forward. */
  see(source: string, watermarkNs: bigint, publishedAtMs: number): boolean {
    const seen = this.seen.get(source);
    if (seen === undefined) {
      this.seen.set(source, { watermarkNs, publishedAtMs });
      return true;
    }
    if (publishedAtMs > seen.publishedAtMs) seen.publishedAtMs = publishedAtMs;
    if (watermarkNs <= seen.watermarkNs) return false;
    seen.watermarkNs = watermarkNs;
    return true;
  }

  /** The watermarks seen so far: taken before a catch-up fetches its end offsets. */
  snapshot(): ReadonlyMap<string, bigint> {
    return new Map([...this.seen].map(([source, { watermarkNs }]) => [source, watermarkNs]));
  }

  /** The catch-up that began with `snapshot` has consumed up to the end offsets fetched after it. */
  confirm(snapshot: ReadonlyMap<string, bigint>): void {
    for (const [source, watermarkNs] of snapshot) {
      const previous = this.confirmed.get(source);
      if (previous === undefined || watermarkNs > previous) this.confirmed.set(source, watermarkNs);
    }
  }

  /**
   * The time up to which every live source is confirmed (-1 while a live source has nothing confirmed yet), or
   * undefined when no source is live: then there is nothing to wait for.
   */
  confirmedThrough(nowMs: number): bigint | undefined {
    let through: bigint | undefined;
    for (const [source, seen] of this.seen) {
      if (!this.live(source, seen, nowMs)) continue;
      const confirmedNs = this.confirmed.get(source) ?? -1n;
      if (through === undefined || confirmedNs < through) through = confirmedNs;
    }
    return through;
  }

  /** Whether the source still counts, logging when that changes. */
  private live(source: string, seen: Seen, nowMs: number): boolean {
    const silentMs = nowMs - seen.publishedAtMs;
    const stale = silentMs > this.staleAfterMs;
    if (stale === this.ignored.has(source)) return !stale;
    const watermark = seen.watermarkNs.toString();
    if (stale) {
      const silentSeconds = silentMs / 1000;
      this.ignored.add(source);
      this.logger.warn(
        { source, watermark, silentSeconds },
        `metadata source ${source} has published no watermark for ${silentSeconds} s (a source silent for ${this.staleAfterMs / 1000} s is taken as stopped): flows no longer wait for it, and ends only it could name are written as they are; if the source still runs, check its health and its link to Kafka`,
      );
    } else {
      this.ignored.delete(source);
      this.logger.info({ source, watermark }, `metadata source ${source} publishes watermarks again: flows wait for it`);
    }
    return !stale;
  }
}
