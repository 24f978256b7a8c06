/**
 * Packs events into Kafka messages per partition and hands full messages to the outbox. Bounded: an event that
 * would take the events held (packed + queued) beyond the capacity is dropped and counted, never buffered.
 */
import type { Outbox } from './outbox.js';

export interface PackerOptions<E> {
  eventsPerMessage: number;
  partitionOf(event: E): number;
  /** Serialises one message's events (e.g. Avro FlowBatch). */
  encode(events: E[]): Buffer;
  /** Called for events that did not fit, or whose message could not be encoded. */
  onDrop(reason: 'queue_full' | 'encode_error', count: number, error?: unknown): void;
}

export class Packer<E> {
  private readonly pending = new Map<number, E[]>();
  private pendingEvents = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly options: PackerOptions<E>,
  ) {}

  /** Returns false when the event was dropped because the queue is full. */
  add(event: E): boolean {
    if (this.pendingEvents + this.outbox.events >= this.outbox.capacityEvents) {
      this.options.onDrop('queue_full', 1);
      return false;
    }
    const partition = this.options.partitionOf(event);
    let events = this.pending.get(partition);
    if (!events) {
      events = [];
      this.pending.set(partition, events);
    }
    events.push(event);
    this.pendingEvents++;
    if (events.length >= this.options.eventsPerMessage) this.seal(partition, events);
    return true;
  }

  /** Seals every partly filled message (on the flush timer and at shutdown). */
  flush(): void {
    for (const [partition, events] of this.pending) if (events.length > 0) this.seal(partition, events);
  }

  get heldEvents(): number {
    return this.pendingEvents;
  }

  private seal(partition: number, events: E[]): void {
    this.pendingEvents -= events.length;
    this.pending.set(partition, []);
    let value: Buffer;
    try {
      value = this.options.encode(events);
    } catch (error) {
      // Events the schema refuses would fail again on every flush: counted and dropped, the rest go on.
      this.options.onDrop('encode_error', events.length, error);
      return;
    }
    this.outbox.push({ partition, value, events: events.length });
  }
}
