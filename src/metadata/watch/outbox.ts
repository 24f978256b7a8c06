/**
 * The publisher's ordered queue to Kafka. Messages go out in the order they were observed, in batches, one batch
 * at a time; a batch that fails is sent again, unchanged, until it is acknowledged (the producer is idempotent).
 *
 * A watermark is never part of a batch with changes: it is sent alone, once it is at the head, so it reaches Kafka
 * only after every change queued before it was acknowledged. That is what it claims. Only the newest watermark
 * matters (the topic is compacted), so a watermark still waiting replaces the one before it.
 *
 * Bounded: beyond `maxQueued` messages (Kafka slower than the objects change, or away), each key keeps only its
 * newest message: the latest state of every object still goes out, in order, and what was skipped is counted.
 */
import type { KeyedMessage } from '../../common/kafka/sink.js';
import type { Sink } from '../../common/pipeline.js';
import type { MetadataKind } from '../../events/metadata.js';

export interface Outgoing {
  message: KeyedMessage;
  kind: MetadataKind;
  /** A tombstone (null value): the object's deletion. */
  tombstone: boolean;
  /** When the change was observed: the watermark time of a watermark. */
  observedNs: bigint;
}

export interface OutboxOptions {
  sink: Sink<KeyedMessage[]>;
  /** Messages per produce request. */
  maxBatch: number;
  maxQueued: number;
  /** Acknowledged by Kafka, in order. */
  onSent(batch: readonly Outgoing[]): void;
  /** A retriable failure; the same messages are sent again after `retryMs`. */
  onRetry(error: string, retryMs: number): void;
  /** The broker refused this message itself (its size, say): it is left out, so the rest can go. */
  onRefused(item: Outgoing, error: string): void;
  /** Older messages of keys that have a newer one queued, left out because the queue was full. */
  onSuperseded(items: readonly Outgoing[]): void;
  /** Back-off between attempts of one batch. Default 100 ms doubling to 5 s. */
  retry?: { initialMs: number; maxMs: number };
}

export class Outbox {
  private queue: Outgoing[] = [];
  /** Messages at the head of the queue that are being sent: nothing may replace or drop them. */
  private inFlight = 0;
  /** After a refused batch, this many messages go one at a time to find the one the broker refuses. */
  private singles = 0;
  private pumping: Promise<void> | undefined;
  private stopped = false;
  private cancelWait: (() => void) | undefined;
  private readonly drained = new Set<() => void>();

  constructor(private readonly options: OutboxOptions) {}

  /** Messages not yet acknowledged. */
  get size(): number {
    return this.queue.length;
  }

  push(item: Outgoing): void {
    this.queue.push(item);
    if (this.queue.length > this.options.maxQueued) this.collapse();
    this.pump();
  }

  /** Queues a watermark behind everything queued so far, in place of a watermark that has not gone out yet. */
  pushWatermark(item: Outgoing): void {
    const waiting = this.queue.findIndex((queued, i) => i >= this.inFlight && queued.kind === 'Watermark');
    if (waiting >= 0) this.queue.splice(waiting, 1);
    this.push(item);
  }

  /**
   * Sends until the queue is empty or `timeoutMs` passed, then stops sending. Resolves to the messages left
   * unsent. Call once, at shutdown.
   */
  async drain(timeoutMs: number): Promise<Outgoing[]> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    if (this.queue.length > 0) await Promise.race([new Promise<void>((resolve) => this.drained.add(resolve)), deadline]);
    this.stopped = true;
    this.cancelWait?.();
    // A send still in flight at the deadline (a broker that does not answer) is not waited for beyond it: its
    // messages count as unsent, whatever Kafka does with them later.
    await Promise.race([this.pumping, deadline]);
    clearTimeout(timer);
    const left = this.queue;
    this.queue = [];
    return left;
  }

  private pump(): void {
    if (this.pumping !== undefined || this.stopped) return;
    this.pumping = this.run().finally(() => {
      this.pumping = undefined;
      // A push between the loop's last check and here found the loop still running.
      if (this.queue.length > 0) this.pump();
    });
  }

  private async run(): Promise<void> {
    const { initialMs, maxMs } = this.options.retry ?? { initialMs: 100, maxMs: 5000 };
    let retryMs = initialMs;
    while (this.queue.length > 0 && !this.stopped) {
      const batch = this.nextBatch();
      this.inFlight = batch.length;
      const result = await this.options.sink.send(batch.map((item) => item.message));
      this.inFlight = 0;
      if (this.stopped) return;
      if (result.ok) {
        this.queue.splice(0, batch.length);
        if (this.singles > 0) this.singles -= batch.length;
        retryMs = initialMs;
        this.options.onSent(batch);
      } else if (result.retriable) {
        this.options.onRetry(result.error, retryMs);
        await this.wait(retryMs);
        retryMs = Math.min(retryMs * 2, maxMs);
      } else if (batch.length > 1) {
        this.singles = batch.length;
      } else {
        this.queue.shift();
        this.singles = Math.max(0, this.singles - 1);
        this.options.onRefused(batch[0]!, result.error);
      }
    }
    if (this.queue.length === 0) for (const resolve of this.drained) resolve();
  }

  /** A lone watermark, or the changes up to the next watermark (at most maxBatch, or one while isolating a refusal). */
  private nextBatch(): Outgoing[] {
    if (this.queue[0]!.kind === 'Watermark') return [this.queue[0]!];
    const limit = this.singles > 0 ? 1 : this.options.maxBatch;
    const batch: Outgoing[] = [];
    for (const item of this.queue) {
      if (item.kind === 'Watermark' || batch.length === limit) break;
      batch.push(item);
    }
    return batch;
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.cancelWait = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Keeps the newest message of each key (after those in flight), in queue order; reports the others. */
  private collapse(): void {
    const newest = new Map<string, number>();
    this.queue.forEach((item, i) => newest.set(item.message.key, i));
    const superseded: Outgoing[] = [];
    this.queue = this.queue.filter((item, i) => {
      const keep = i < this.inFlight || newest.get(item.message.key) === i;
      if (!keep) superseded.push(item);
      return keep;
    });
    if (superseded.length > 0) this.options.onSuperseded(superseded);
  }
}
