/**
 * Packs events into Kafka messages per partition and hands full messages to the outbox. Each event is encoded into
 * its partition's message as it arrives (MessageBuilder), so no event is held until the message is sealed: events
 * die young and the young generation can stay small (./node-flags.ts). Measured at 2,000 connections/s, both with
 * a 2 MB semi-space, same run: 0.036 -> 0.024 cores against holding events until the seal. Bounded: an event that
 * would take the events held (packed + queued) beyond the capacity is dropped and counted.
 */
import type { Outbox } from './outbox.js';

/** One message being built (e.g. an Avro FlowBatch: src/common/avro.ts BatchBuilder). */
export interface MessageBuilder<E> {
  /** Events added since the last seal. */
  readonly size: number;
  /** Bytes of the events added since the last seal. */
  readonly bytes: number;
  /** Encodes one event into the message; throws on one that cannot be encoded, which is then not added. */
  add(event: E): void;
  /** The message of the events added since the last seal, in a buffer of its own; the builder starts again. */
  seal(): Buffer;
}

/** How a kind's items become messages (RecordKind.packing). */
export interface ItemPacking<E> {
  partitionOf(item: E): number;
  /** A builder for one partition's messages; each partition reuses its own. */
  messageBuilder(): MessageBuilder<E>;
}

export interface PackerOptions<E> extends ItemPacking<E> {
  eventsPerMessage: number;
  /** A message is also sealed once its events take this many bytes (whichever comes first). */
  maxMessageBytes: number;
  /** Called for events that did not fit, or could not be encoded. */
  onDrop(reason: 'queue_full' | 'encode_error', count: number, error?: unknown): void;
}

export class Packer<E> {
  private readonly pending = new Map<number, MessageBuilder<E>>();
  private pendingEvents = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly options: PackerOptions<E>,
  ) {}

  /** Returns false when the event was dropped (the queue is full, or it cannot be encoded). */
  add(event: E): boolean {
    if (this.pendingEvents + this.outbox.events >= this.outbox.capacityEvents) {
      this.options.onDrop('queue_full', 1);
      return false;
    }
    const partition = this.options.partitionOf(event);
    let message = this.pending.get(partition);
    if (!message) {
      message = this.options.messageBuilder();
      this.pending.set(partition, message);
    }
    try {
      message.add(event);
    } catch (error) {
      // An event the schema refuses would fail again on every try: counted and dropped, the rest go on.
      this.options.onDrop('encode_error', 1, error);
      return false;
    }
    this.pendingEvents++;
    if (message.size >= this.options.eventsPerMessage || message.bytes >= this.options.maxMessageBytes) this.seal(partition, message);
    return true;
  }

  /** Seals every partly filled message (on the flush tick and at shutdown). */
  flush(): void {
    for (const [partition, message] of this.pending) if (message.size > 0) this.seal(partition, message);
  }

  get heldEvents(): number {
    return this.pendingEvents;
  }

  private seal(partition: number, message: MessageBuilder<E>): void {
    const events = message.size;
    this.pendingEvents -= events;
    this.outbox.push({ partition, value: message.seal(), events });
  }
}
