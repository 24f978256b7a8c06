/**
 * The enricher's metadata feed: every message of the metadata topic, from the beginning, applied to the event-time
 * index that flows are joined with (src/metadata/index/), and the catch-ups that tell the gate how far that index
 * is complete (metadata-gate.ts).
 *
 * - Every enricher process reads every partition: each one joins flows of any node with objects of any node. A
 *   kafkajs consumer can only read through a consumer group, so the feed's group is its own: unique per process
 *   (enricher.groupId + host + pid + random). A shared group would split the partitions between the replicas, and
 *   a fixed one would make a restarted process wait for its killed predecessor's session to time out. The feed
 *   never commits (the index lives in memory, so every start reads the compacted topic again), so the group keeps
 *   no offsets and the broker forgets it once it is empty.
 * - Catch-up: fetch the topic's end offsets, then wait until the consumer has applied every partition up to them.
 *   A partition's position is the end of the last batch kafkajs finished with, also of a batch it handed nothing
 *   of (only transaction markers): the last record of a partition stays in its active segment, which compaction
 *   never cleans, so every end offset is reached by a batch. A catch-up that waits longer than STALL_MS anyway is
 *   logged with the partitions it waits for.
 *   The sources' watermarks seen before the fetch are then confirmed (watermarks.ts). Catch-ups run one at a time,
 *   when the gate asks for one that starts after a batch arrived, and after every watermark that moved, so that
 *   confirmed watermarks follow the sources by about one round trip (rounds start at most every 10 ms).
 * - A message that does not decode, or that the index refuses, is counted and logged, not dead-lettered: every
 *   replica reads every message again at every start, so a dead letter would be repeated per replica and per
 *   start; the message stays on the compacted topic until its key is written again.
 * - History older than enricher.metadataHistoryMs is dropped from the index periodically (counted).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Meter } from '@opentelemetry/api';
import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { describeError } from '../common/errors.js';
import { fetchTopicOffsets } from '../common/kafka/offsets.js';
import type { Logger } from '../common/logger.js';
import { createDropCounter, type DropCounter } from '../common/telemetry.js';
import type { MetadataChange, MetadataCodec } from '../events/metadata.js';
import type { MetadataProgress } from './metadata-gate.js';
import { Watermarks, staleAfterMs } from './watermarks.js';

/** What the feed does with the index (src/metadata/index/metadata-index.ts). */
export interface IndexUpkeep {
  apply(change: MetadataChange): void;
  expire(nowNs: bigint): number;
  stats(): { objects: number; addressIntervals: number; cgroupIntervals: number };
}

export interface MetadataFeedOptions {
  kafka: Kafka;
  topic: string;
  /** enricher.groupId: the feed's own group is named after it. */
  groupId: string;
  codec: MetadataCodec;
  index: IndexUpkeep;
  /** enricher.metadataHoldMs: a source silent for longer is not waited for. */
  holdMs: number;
  /** enricher.metadataHistoryMs. */
  historyMs: number;
  logger: Logger;
  meter: Meter;
}

const DROP_REMEDIES = {
  undecodable:
    'a metadata message does not decode as metadata.v1 (see the logged offset and error): find its writer; the message stays on the topic until its key is written again',
  rejected: 'the metadata index refused a message (see the logged offset and error): report it as a bug with the message',
} as const;

/** Catch-ups start at most this often: one ListOffsets request each. */
const MIN_ROUND_INTERVAL_MS = 10;
/** A catch-up waiting longer than this for the consumer is logged (once per catch-up). */
const STALL_MS = 10_000;
/** Pause after a failed catch-up (the broker unreachable) before the next. */
const RETRY_MS = 1000;
/** How often expired history is dropped, at most. */
const EXPIRY_INTERVAL_MS = 60_000;

export class MetadataFeed implements MetadataProgress {
  /** Per partition, the next offset to apply. */
  private readonly positions = new Map<number, bigint>();
  private readonly watermarks: Watermarks;
  private readonly consumer: Consumer;
  private readonly admin: Admin;
  private readonly drops: DropCounter;
  private readonly applied;
  private readonly expired;
  private running = false;
  /** When the last completed catch-up fetched its end offsets. */
  private synced = -Infinity;
  /** A catch-up is wanted that begins after this time. */
  private wantedAfter = -Infinity;
  private catchingUp = false;
  private lastRoundStart = -Infinity;
  /** A failed catch-up was logged; the next success says so too. */
  private failing = false;
  private readonly syncWaiters = new Set<() => void>();
  /** The end offsets the running catch-up waits for, and how to wake it. */
  private target: { ends: ReadonlyMap<number, bigint>; reached: () => void } | undefined;
  private expiry: NodeJS.Timeout | undefined;
  /** Settles when the consumer crashed for good. */
  readonly failed: Promise<unknown>;

  constructor(private readonly options: MetadataFeedOptions) {
    const { kafka, meter, logger, index } = options;
    this.watermarks = new Watermarks(staleAfterMs(options.holdMs), logger);
    this.admin = kafka.admin();
    this.consumer = kafka.consumer({
      groupId: `${options.groupId}-metadata-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
      // An idle fetch returns at once when a message arrives; this only bounds how long stopping waits for one.
      maxWaitTimeInMs: 500,
      retry: { restartOnFailure: async () => this.running },
    });
    let crashed: (error: unknown) => void = () => {};
    this.failed = new Promise((resolve) => (crashed = resolve));
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      if (!event.payload.restart) crashed(event.payload.error);
    });
    // After eachBatch applied the batch's messages, and for batches kafkajs hands nothing of.
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, ({ payload }) => this.advance(payload.partition, payload.lastOffset));
    this.drops = createDropCounter(meter, logger, { name: 'enricher.metadata', remedies: DROP_REMEDIES });
    this.applied = meter.createCounter('sidecarless.enricher.metadata_messages', { description: 'Metadata messages applied to the index', unit: '{message}' });
    this.expired = meter.createCounter('sidecarless.enricher.metadata_history_expired', {
      description: 'Index history dropped for being older than enricher.metadataHistoryMs',
      unit: '{interval}',
    });
    const objects = meter.createObservableGauge('sidecarless.enricher.metadata_index.objects', { description: 'Objects in the metadata index', unit: '{object}' });
    const addresses = meter.createObservableGauge('sidecarless.enricher.metadata_index.address_intervals', { description: 'Who-held-this-address intervals in the index', unit: '{interval}' });
    const cgroups = meter.createObservableGauge('sidecarless.enricher.metadata_index.cgroup_intervals', { description: 'Who-held-this-cgroup intervals in the index', unit: '{interval}' });
    meter.addBatchObservableCallback(
      (observer) => {
        const stats = index.stats();
        observer.observe(objects, stats.objects);
        observer.observe(addresses, stats.addressIntervals);
        observer.observe(cgroups, stats.cgroupIntervals);
      },
      [objects, addresses, cgroups],
    );
    meter
      .createObservableGauge('sidecarless.enricher.metadata_watermark_lag', {
        description: 'How far the confirmed watermark of the live metadata sources is behind now (none without a live source)',
        unit: 's',
      })
      .addCallback((result) => {
        const through = this.confirmedThrough();
        if (through !== undefined) result.observe(Math.max(0, Number(nowNs() - through) / 1e9));
      });
  }

  async start(): Promise<void> {
    this.running = true;
    await this.admin.connect();
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.options.topic], fromBeginning: true });
    await this.consumer.run({ autoCommit: false, eachBatch: (payload) => this.apply(payload) });
    const interval = Math.min(EXPIRY_INTERVAL_MS, Math.floor(this.options.historyMs / 10));
    this.expiry = setInterval(() => this.expire(), interval).unref();
  }

  /** Resolves once a catch-up that began after `afterMs` has completed (false: the feed stopped first). */
  async caughtUp(afterMs: number): Promise<boolean> {
    while (this.synced <= afterMs) {
      if (!this.running) return false;
      this.requestSync(afterMs);
      await this.nextSync(Infinity);
    }
    return true;
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.expiry);
    this.target?.reached();
    this.wakeSyncWaiters();
    this.drops.flush();
    await this.consumer.disconnect();
    await this.admin.disconnect();
  }

  syncedAt(): number {
    return this.synced;
  }

  confirmedThrough(): bigint | undefined {
    return this.watermarks.confirmedThrough(Date.now());
  }

  requestSync(afterMs: number): void {
    if (afterMs > this.wantedAfter) this.wantedAfter = afterMs;
    if (!this.catchingUp && this.running) void this.catchUp();
  }

  nextSync(untilMs: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.syncWaiters.delete(wake);
        resolve();
      };
      const timer = Number.isFinite(untilMs) ? setTimeout(wake, Math.max(0, untilMs - Date.now())) : undefined;
      this.syncWaiters.add(wake);
    });
  }

  /** Catch-ups, one after the other, until one began after the time asked for. Never throws. */
  private async catchUp(): Promise<void> {
    this.catchingUp = true;
    try {
      while (this.running && this.wantedAfter >= this.synced) {
        // A later millisecond than the one asked about; and watermarks of many sources (a collector per node) must
        // not start rounds back to back.
        const pause = Math.max(this.wantedAfter + 1, this.lastRoundStart + MIN_ROUND_INTERVAL_MS) - Date.now();
        if (pause > 0) await sleep(pause);
        const startedAt = Date.now();
        this.lastRoundStart = startedAt;
        const seen = this.watermarks.snapshot();
        let ends: Map<number, bigint>;
        try {
          ends = await this.endOffsets();
        } catch (error) {
          if (!this.failing) this.options.logger.warn({ topic: this.options.topic, error: describeError(error) }, 'cannot fetch the end offsets of the metadata topic: flows wait for metadata up to enricher.metadataHoldMs, then are stored with what is known; retrying');
          this.failing = true;
          await sleep(RETRY_MS);
          continue;
        }
        if (this.failing) this.options.logger.info({ topic: this.options.topic }, 'the end offsets of the metadata topic can be fetched again');
        this.failing = false;
        const stall = setTimeout(() => this.logStall(ends), STALL_MS);
        await new Promise<void>((reached) => {
          this.target = { ends, reached };
          this.checkTarget();
        });
        clearTimeout(stall);
        this.target = undefined;
        if (!this.running) break;
        this.watermarks.confirm(seen);
        this.synced = startedAt;
        this.wakeSyncWaiters();
      }
    } finally {
      this.catchingUp = false;
    }
  }

  private async endOffsets(): Promise<Map<number, bigint>> {
    const ends = new Map<number, bigint>();
    for (const { partition, high, low } of await fetchTopicOffsets(this.admin, this.options.topic)) {
      // An empty partition has nothing to wait for, even before the consumer is assigned it.
      if (BigInt(high) > BigInt(low)) ends.set(partition, BigInt(high));
    }
    return ends;
  }

  private logStall(ends: ReadonlyMap<number, bigint>): void {
    const behind = [...ends].filter(([partition, end]) => (this.positions.get(partition) ?? 0n) < end);
    this.options.logger.warn(
      {
        topic: this.options.topic,
        waitingMs: STALL_MS,
        partitions: Object.fromEntries(behind.map(([partition, end]) => [partition, { position: String(this.positions.get(partition) ?? 0n), end: String(end) }])),
      },
      'the metadata feed has not reached the end offsets of the metadata topic: flows wait for it up to enricher.metadataHoldMs, then are written late (feed_behind); check the broker and this consumer',
    );
  }

  /** The consumer is done with the partition's offsets up to `lastOffset`. */
  private advance(partition: number, lastOffset: string): void {
    const next = BigInt(lastOffset) + 1n;
    if (next > (this.positions.get(partition) ?? 0n)) this.positions.set(partition, next);
    this.checkTarget();
  }

  private checkTarget(): void {
    const target = this.target;
    if (target === undefined) return;
    for (const [partition, end] of target.ends) {
      if ((this.positions.get(partition) ?? 0n) < end) return;
    }
    target.reached();
  }

  private wakeSyncWaiters(): void {
    for (const wake of [...this.syncWaiters]) wake();
  }

  /** One fetched batch: its messages into the index, in order; messages already applied (a consumer restart) skipped. */
  private async apply({ batch, heartbeat }: EachBatchPayload): Promise<void> {
    const { codec, index, logger, topic } = this.options;
    const from = this.positions.get(batch.partition) ?? 0n;
    let applied = 0;
    let watermarkMoved = false;
    let skipped: { reason: keyof typeof DROP_REMEDIES; offset: string; error: unknown } | undefined;
    for (const message of batch.messages) {
      if (BigInt(message.offset) < from) continue;
      let change: MetadataChange;
      try {
        change = codec.decode(message.key, message.value, message.timestamp);
      } catch (error) {
        skipped ??= { reason: 'undecodable', offset: message.offset, error };
        this.drops.add('undecodable');
        continue;
      }
      try {
        index.apply(change);
      } catch (error) {
        skipped ??= { reason: 'rejected', offset: message.offset, error };
        this.drops.add('rejected');
        continue;
      }
      applied++;
      if ('event' in change && change.event.kind === 'Watermark') {
        // Read live, a watermark was published about now (its message timestamp is its W, which lags with the
        // source); read from the topic's past at start, its timestamp says when (see watermarks.ts).
        const publishedAtMs = this.synced > -Infinity ? Date.now() : Number(message.timestamp);
        if (this.watermarks.see(change.event.source, change.event.change_time_ns, publishedAtMs)) watermarkMoved = true;
      }
    }
    this.applied.add(applied);
    // The first of a batch only: a topic full of bad messages must not flood the log (the drop counter has them all).
    if (skipped !== undefined) {
      const { reason, offset, error } = skipped;
      logger.warn({ topic, partition: batch.partition, offset, reason, error: describeError(error) }, 'skipped a metadata message (the first of its batch)');
    }
    logger.trace({ topic, partition: batch.partition, applied, through: batch.lastOffset() }, 'metadata applied');
    if (watermarkMoved) this.requestSync(Date.now());
    await heartbeat();
  }

  private expire(): void {
    // The index was built with historyNs = enricher.metadataHistoryMs and drops what ended before now minus that.
    const dropped = this.options.index.expire(nowNs());
    if (dropped > 0) this.expired.add(dropped);
  }
}

function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}
