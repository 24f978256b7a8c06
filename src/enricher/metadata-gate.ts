/**
 * Gate and hold: when a batch of events (flows, HTTP exchanges) may be joined with the Kubernetes metadata of its
 * time, and what its rows say when it could not wait any longer.
 *
 * A batch is joined once both hold (or its hold expired, enricher.metadataHoldMs after it arrived):
 *   1. caught up: the metadata feed has consumed every metadata partition up to end offsets fetched after the batch
 *      arrived. A collector publishes the identity of a cgroup (and has it acknowledged) before it produces events
 *      from it, so that identity is then in the index;
 *   2. confirmed: every live metadata source's confirmed watermark (watermarks.ts) has passed the batch's events,
 *      so the index holds every change up to their times. With no live source there is nothing to wait for.
 * The events' times are not known before they are decoded, and decoding them early would hold a whole batch of
 * objects while waiting. So the wait is for a bound instead: the batch's newest Kafka message timestamp, which a
 * collector stamps after the events it packs (their times come before it). Each event is checked again when it is
 * joined; an event beyond the watermark (a producer whose clock or timestamps disagree) makes the caller wait for
 * it and decode the batch again (FlowJoin.identities returns undefined).
 *
 * After the hold, the batch is joined with what is known: an end the index names is a 'hit' as always; an end it
 * does not name is 'miss' only where the metadata was complete (caught up, and the event not beyond the watermark),
 * and 'late' elsewhere, counted by reason. The wait heartbeats the consumer session and gives up (nothing is
 * stored or committed; the batch comes again) when the consumer stops or the partition is taken away.
 */
import type { Meter } from '@opentelemetry/api';
import type { Logger } from '../common/logger.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { ConnectionEnds, EndpointIdentity, FlowIdentities } from '../metadata/index/identity.js';

/** How far the metadata feed has come (metadata-feed.ts). */
export interface MetadataProgress {
  /**
   * When the last completed catch-up began (ms since the epoch; it fetched its end offsets after that); -Infinity
   * before the first.
   */
  syncedAt(): number;
  /** The confirmed watermark of the live sources (ns), or undefined when no source is live. */
  confirmedThrough(): bigint | undefined;
  /** Asks for a catch-up that begins after `afterMs` (a later millisecond: the same one may have begun before it). */
  requestSync(afterMs: number): void;
  /** Resolves when the next catch-up completes, or at `untilMs`. */
  nextSync(untilMs: number): Promise<void>;
}

/**
 * Metadata that is always complete and has no watermark source: the in-memory progress for tests and benchmarks
 * that join with an index they fill themselves. Nothing waits.
 */
export const COMPLETE_METADATA: MetadataProgress = {
  syncedAt: () => Infinity,
  confirmedThrough: () => undefined,
  requestSync: () => {},
  nextSync: async () => {},
};

/** The event-time join (src/metadata/index/metadata-index.ts). */
export interface FlowJoiner {
  join(ends: ConnectionEnds, atNs: bigint): FlowIdentities;
}

/** Between waits, at least this often: heartbeats and the check that the batch is still wanted. */
const KEEPALIVE_MS = 1000;

const LATE_REMEDIES = {
  feed_behind:
    'the enricher had not read the metadata topic to its end within enricher.metadataHoldMs of the batch arriving: look at sidecarless.enricher.metadata_messages and the broker, or raise enricher.metadataHoldMs',
  metadata_behind:
    "a metadata source's confirmed watermark had not passed the event's time (a flow's start, a request's start) within enricher.metadataHoldMs: check that source (sidecarless metadata, a collector) and its lag (sidecarless.enricher.metadata_watermark_lag), or raise enricher.metadataHoldMs",
} as const;

type LateReason = keyof typeof LATE_REMEDIES;

export interface MetadataGateDeps {
  progress: MetadataProgress;
  index: FlowJoiner;
  holdMs: number;
  logger: Logger;
  meter: Meter;
  /** Milliseconds clock; injectable for tests. */
  now?: () => number;
}

export class MetadataGate {
  private readonly now: () => number;
  private readonly late: DropCounter;
  private readonly held;
  private readonly holdSeconds;

  constructor(private readonly deps: MetadataGateDeps) {
    this.now = deps.now ?? Date.now;
    this.late = createDropCounter(deps.meter, deps.logger, { name: 'enricher.late', remedies: LATE_REMEDIES });
    this.held = deps.meter.createUpDownCounter('sidecarless.enricher.held_batches', {
      description: 'Batches of events waiting for the metadata of their time',
      unit: '{batch}',
    });
    // Nearly every batch waits a little: for a catch-up that began after it arrived (a round trip to the broker).
    this.holdSeconds = deps.meter.createHistogram('sidecarless.enricher.hold_duration', {
      description: 'How long batches waited for the metadata of their time',
      unit: 's',
    });
  }

  /**
   * Waits until a batch that arrived at `arrivedAtMs`, whose events are no later than `boundNs`, may be joined
   * (see the top of this file); returns its join, or undefined when `keepAlive` (called between waits: heartbeat,
   * still running, partition still ours) says to give up.
   */
  async open(arrivedAtMs: number, boundNs: bigint, keepAlive: () => Promise<boolean>): Promise<FlowJoin | undefined> {
    const { progress, holdMs } = this.deps;
    const deadline = arrivedAtMs + holdMs;
    let heldSince: number | undefined;
    try {
      for (;;) {
        const caughtUp = progress.syncedAt() > arrivedAtMs;
        const through = progress.confirmedThrough();
        const now = this.now();
        if (caughtUp && (through === undefined || through >= boundNs)) return new FlowJoin(this.deps.index, this.late, caughtUp, through, false);
        if (now >= deadline) return new FlowJoin(this.deps.index, this.late, caughtUp, through, true);
        if (heldSince === undefined) {
          heldSince = now;
          this.held.add(1);
        }
        if (!caughtUp) progress.requestSync(arrivedAtMs);
        await progress.nextSync(Math.min(deadline, now + KEEPALIVE_MS));
        if (!(await keepAlive())) return undefined;
      }
    } finally {
      if (heldSince !== undefined) {
        this.held.add(-1);
        this.holdSeconds.record((this.now() - heldSince) / 1000);
      }
    }
  }

  /** Logs late rows not yet reported (at shutdown). */
  flush(): void {
    this.late.flush();
  }
}

/** The join of one batch, with what the gate knew when it opened. */
export class FlowJoin {
  constructor(
    private readonly index: FlowJoiner,
    private readonly late: DropCounter,
    private readonly caughtUp: boolean,
    private readonly through: bigint | undefined,
    private readonly expired: boolean,
  ) {}

  /**
   * Both ends of the event at `atNs` (its table's join time); undefined when that is beyond the confirmed watermark
   * and the hold has not expired (the caller waits for that time and joins the batch again).
   */
  identities(ends: ConnectionEnds, atNs: bigint): FlowIdentities | undefined {
    const beyond = this.through !== undefined && atNs > this.through;
    if (beyond && !this.expired) return undefined;
    const identities = this.index.join(ends, atNs);
    if (this.caughtUp && !beyond) return identities;
    const reason: LateReason = this.caughtUp ? 'metadata_behind' : 'feed_behind';
    const { client, server } = identities;
    if (client.status !== 'miss' && server.status !== 'miss') return identities;
    this.late.add(reason);
    return { client: lateIfMissed(client), server: lateIfMissed(server) };
  }
}

/**
 * The index shares identity objects between joins, so a changed status is a copy: one per shared miss, kept, because
 * the rows' writer encodes each identity object once (row-binary.ts) and a fresh copy per row would defeat that.
 */
const lateCopies = new WeakMap<EndpointIdentity, EndpointIdentity>();

function lateIfMissed(identity: EndpointIdentity): EndpointIdentity {
  if (identity.status !== 'miss') return identity;
  let late = lateCopies.get(identity);
  if (late === undefined) lateCopies.set(identity, (late = { ...identity, status: 'late' }));
  return late;
}
