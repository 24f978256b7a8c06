/**
 * Turns one source's observations into messages of the compacted metadata topic: a state is published only when
 * it differs from what its key shows (PublishedState), a deletion becomes a tombstone, and a watermark follows the
 * changes it covers (Outbox). Sources (the API server's informers, a file) call it; it does no I/O of its own
 * beyond the outbox's sink.
 *
 * Message timestamps: a state's change time, a tombstone's deletion time, a watermark's time (all in ms, what
 * Kafka keeps), so a reader of tombstones knows when the object went away.
 *
 * A deletion observed as it happened (a watch event) is timed at its observation. A deletion the source did not
 * see happen (deleteUnseen: an object missing from a relist, or from the first list after a restart, or a name
 * taken over by another uid) happened at some unknown time after the source last saw the object; it is timed just
 * after that: 1 ns after the later of the last watermark this source claimed (this run's, or the previous run's read
 * back) and the object's last observed state. Timing it when it was noticed instead would make the object hold its
 * addresses through the gap, so a pod that took over its IP meanwhile would be named as the deleted one from its
 * creation until then. No watermark was claimed during the gap (a source claims none while it does not observe every
 * change), so the earlier time contradicts no watermark.
 */
import type { Counter, Histogram, Meter } from '@opentelemetry/api';
import type { Logger } from '../../common/logger.js';
import type { KeyedMessage } from '../../common/kafka/sink.js';
import type { Sink } from '../../common/pipeline.js';
import { createDropCounter, type DropCounter } from '../../common/telemetry.js';
import { metadataEvent, watermarkKey, type MetadataChange, type MetadataCodec, type MetadataEvent, type MetadataKind } from '../../events/metadata.js';
import type { Clock } from './clock.js';
import { Outbox, type Outgoing } from './outbox.js';
import { PublishedState, stateDigest } from './published-state.js';

export interface PublisherOptions {
  /** kubernetes/<cluster> or file/<cluster>. */
  source: string;
  codec: MetadataCodec;
  sink: Sink<KeyedMessage[]>;
  clock: Clock;
  meter: Meter;
  logger: Logger;
  /** Messages queued before superseded states are skipped (metadata.queueMessages). */
  maxQueued: number;
  /** Messages per produce request. Default 500. */
  maxBatch?: number;
  /** How far behind the clock a watermark claims (metadata.watermarkLagMs). Default 0. */
  watermarkLagMs?: number;
}

type Counts = Partial<Record<MetadataKind, number>>;

export interface PublisherStats {
  /** States acknowledged by Kafka, by kind. */
  published: Counts;
  /** Tombstones acknowledged by Kafka, by kind. */
  tombstones: Counts;
  /** Observed states equal to what their key already showed, by kind. */
  duplicates: Counts;
  watermarks: number;
  /** Time of the last watermark Kafka acknowledged (ns), 0 before the first. */
  lastWatermarkNs: bigint;
  /** Messages not yet acknowledged. */
  queued: number;
}

/** A time in ns as a Kafka message timestamp (ms, as text). */
const timestamp = (timeNs: bigint): string => (timeNs / 1_000_000n).toString();
const bump = (counts: Counts, kind: MetadataKind, n = 1): void => void (counts[kind] = (counts[kind] ?? 0) + n);

const DROP_REMEDIES = {
  superseded_while_queued:
    'Kafka took messages more slowly than objects changed (or was unreachable): every object\'s latest state still goes out, intermediate states were skipped; check the brokers, or raise metadata.queueMessages',
  refused_by_kafka: 'the broker refused the message itself (its size or format); the object is published again at its next change; check the topic\'s max.message.bytes',
  unsent_at_stop: 'Kafka did not take these before the shutdown timeout; the next start compares the topic with the source and publishes what differs',
};

export class MetadataPublisher {
  readonly source: string;
  private readonly state: PublishedState;
  private readonly outbox: Outbox;
  private readonly counts = { published: {} as Counts, tombstones: {} as Counts, duplicates: {} as Counts, watermarks: 0, lastWatermarkNs: 0n };
  /** The latest watermark this source claimed: queued by this run, or read back (an earlier run's). */
  private claimedNs = 0n;
  private readonly drops: DropCounter;
  private readonly publishLatency: Histogram;
  private readonly metric: Record<'published' | 'tombstones' | 'duplicates', Counter>;

  constructor(private readonly options: PublisherOptions) {
    this.source = options.source;
    this.state = new PublishedState(options.source, stateDigest(options.codec));
    const { meter, logger } = options;
    const attributes = { source: options.source };
    this.drops = createDropCounter(meter, logger, { name: 'metadata.publisher', remedies: DROP_REMEDIES, attributes });
    this.metric = {
      published: meter.createCounter('sidecarless.metadata.events', { description: 'Object states published (acknowledged by Kafka), by kind', unit: '{event}' }),
      tombstones: meter.createCounter('sidecarless.metadata.tombstones', { description: 'Deletions published as tombstones, by kind', unit: '{event}' }),
      duplicates: meter.createCounter('sidecarless.metadata.duplicates_suppressed', {
        description: 'Observed states not published because their key already shows them (relists, restarts, changes outside the contract), by kind',
        unit: '{event}',
      }),
    };
    this.publishLatency = meter.createHistogram('sidecarless.metadata.publish_latency', {
      description: 'From the observation of a change to its acknowledgement by Kafka',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] },
    });
    meter
      .createObservableGauge('sidecarless.metadata.watermark', { description: 'Time of the last watermark Kafka acknowledged (Unix seconds)', unit: 's' })
      .addCallback((result) => result.observe(Number(this.counts.lastWatermarkNs / 1_000_000n) / 1000, attributes));
    meter
      .createObservableGauge('sidecarless.metadata.queued', { description: 'Messages waiting for Kafka', unit: '{message}' })
      .addCallback((result) => result.observe(this.outbox.size, attributes));
    let lastRetryLog = -Infinity;
    this.outbox = new Outbox({
      sink: options.sink,
      maxBatch: options.maxBatch ?? 500,
      maxQueued: options.maxQueued,
      onSent: (batch) => this.sent(batch),
      onRetry: (error, retryMs) => {
        if (Date.now() - lastRetryLog < 10_000) return;
        lastRetryLog = Date.now();
        logger.warn({ queued: this.outbox.size, retryMs }, `publishing to Kafka failed, retrying the same messages: ${error}`);
      },
      onRefused: (item, error) => {
        this.drops.add('refused_by_kafka');
        logger.error({ key: item.message.key, kind: item.kind }, `the broker refused a metadata message: ${error}`);
        // Nothing is published under the key any more: its next observation goes out again.
        this.state.remove(item.message.key);
      },
      onSuperseded: (items) => {
        const changes = items.filter((item) => item.kind !== 'Watermark').length;
        if (changes > 0) this.drops.add('superseded_while_queued', changes);
      },
    });
  }

  get stats(): PublisherStats {
    const { published, tombstones, duplicates, watermarks, lastWatermarkNs } = this.counts;
    return { published: { ...published }, tombstones: { ...tombstones }, duplicates: { ...duplicates }, watermarks, lastWatermarkNs, queued: this.outbox.size };
  }

  /** A message of the topic, read back in offset order at start: what this source published before. */
  restore(change: MetadataChange): void {
    if ('event' in change && change.key === watermarkKey(this.source) && change.event.change_time_ns > this.claimedNs) this.claimedNs = change.event.change_time_ns;
    this.state.restore(change);
  }

  /** An observed state of an object: published when it differs from what its key shows. */
  publish(event: MetadataEvent): void {
    const { publish, replaced } = this.state.accept(event);
    // The watch missed the old object's deletion (an outage): it is gone since some time the source did not see.
    if (replaced !== undefined) this.deleteUnseen(replaced, event.kind);
    if (!publish) {
      bump(this.counts.duplicates, event.kind);
      this.metric.duplicates.add(1, { source: this.source, kind: event.kind });
      return;
    }
    this.outbox.push({
      message: { key: event.object_key, value: this.options.codec.encode(event), timestampMs: timestamp(event.change_time_ns) },
      kind: event.kind,
      tombstone: false,
      observedNs: event.change_time_ns,
    });
  }

  /** A deletion observed as it happened: a tombstone at now, when the key shows a state. */
  delete(key: string, kind: MetadataKind): void {
    this.tombstone(key, kind, this.options.clock());
  }

  /**
   * A deletion the source did not see happen (gone from a relist, or a watch's backlog after an outage): a
   * tombstone timed just after the source last saw the object (module comment), when the key shows a state.
   */
  deleteUnseen(key: string, kind: MetadataKind): void {
    const at = this.unseenDeletionTime(key);
    if (at !== undefined) this.tombstone(key, kind, at);
  }

  /**
   * The source has listed every object of `kind`: keys of that kind published before this run and not seen
   * since belong to objects deleted while no publisher ran.
   */
  reconcile(kind: MetadataKind): number {
    const gone = this.state.unconfirmed(kind);
    for (const key of gone) this.deleteUnseen(key, kind);
    return gone.length;
  }

  /**
   * Queues a watermark at now minus the lag: call only while the source observes every change (synced and
   * watching). None when that time is not later than the last claimed one (a restart within the lag of the
   * previous run's last watermark): watermarks never go back.
   */
  watermark(): void {
    const time = this.options.clock() - BigInt(this.options.watermarkLagMs ?? 0) * 1_000_000n;
    if (time <= this.claimedNs) return;
    this.claimedNs = time;
    const event = metadataEvent({ object_key: watermarkKey(this.source), kind: 'Watermark', source: this.source, change_time_ns: time });
    this.outbox.pushWatermark({ message: { key: event.object_key, value: this.options.codec.encode(event), timestampMs: timestamp(time) }, kind: 'Watermark', tombstone: false, observedNs: time });
  }

  /** Sends what is queued within `timeoutMs`; what is left is counted and logged. */
  async drain(timeoutMs: number): Promise<void> {
    const left = (await this.outbox.drain(timeoutMs)).filter((item) => item.kind !== 'Watermark');
    if (left.length > 0) this.drops.add('unsent_at_stop', left.length);
    this.drops.flush();
    await this.options.sink.shutdown();
  }

  /** 1 ns after the later of the last claimed watermark and the key's last observed state; undefined: no state. */
  private unseenDeletionTime(key: string): bigint | undefined {
    const alive = this.state.aliveNs(key);
    if (alive === undefined) return undefined;
    return (alive > this.claimedNs ? alive : this.claimedNs) + 1n;
  }

  private tombstone(key: string, kind: MetadataKind, time: bigint): void {
    if (!this.state.remove(key)) return;
    this.outbox.push({ message: { key, value: null, timestampMs: timestamp(time) }, kind, tombstone: true, observedNs: time });
  }

  private sent(batch: readonly Outgoing[]): void {
    const now = BigInt(Date.now()) * 1_000_000n;
    for (const item of batch) {
      if (item.kind === 'Watermark') {
        this.counts.watermarks++;
        this.counts.lastWatermarkNs = item.observedNs;
        continue;
      }
      const attributes = { source: this.source, kind: item.kind };
      if (item.tombstone) {
        bump(this.counts.tombstones, item.kind);
        this.metric.tombstones.add(1, attributes);
      } else {
        bump(this.counts.published, item.kind);
        this.metric.published.add(1, attributes);
      }
      this.publishLatency.record(Number(now - item.observedNs) / 1e9, attributes);
    }
  }
}
