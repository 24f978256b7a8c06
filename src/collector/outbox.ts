/**
 * Sealed Kafka messages waiting to be produced, oldest first. Its capacity is counted in events, the unit drops
 * are reported in; the Packer checks it before accepting an event.
 */
import type { OutMessage } from '../common/kafka/sink.js';

export class Outbox {
  /** Slots before `head` are sent and cleared (undefined), so their buffers are freed at once. */
  private readonly messages: Array<OutMessage | undefined> = [];
  private head = 0;
  private heldEvents = 0;
  private heldBytes = 0;

  constructor(readonly capacityEvents: number) {}

  get events(): number {
    return this.heldEvents;
  }

  /** Bytes of the messages' values. */
  get bytes(): number {
    return this.heldBytes;
  }

  get length(): number {
    return this.messages.length - this.head;
  }

  push(message: OutMessage): void {
    this.messages.push(message);
    this.heldEvents += message.events;
    this.heldBytes += message.value.length;
  }

  /**
   * The oldest messages, up to `maxMessages` and `maxBytes` of values (the first message always), without removing
   * them: they leave only once produced.
   */
  peek(maxMessages: number, maxBytes = Number.POSITIVE_INFINITY): OutMessage[] {
    const end = Math.min(this.messages.length, this.head + maxMessages);
    let i = this.head;
    for (let bytes = 0; i < end; i++) {
      bytes += this.messages[i]!.value.length;
      if (bytes > maxBytes && i > this.head) break;
    }
    return this.messages.slice(this.head, i) as OutMessage[];
  }

  /**
   * Removes the `count` oldest messages (after Kafka acknowledged them). Their slots are cleared at once: kept until
   * the next compaction, up to ~2,000 sent messages (MBs of values, promoted to the old generation by then) stayed
   * referenced; measured at ~11k connections/s, 398 of them (3.3 MB) held after the queue had emptied.
   */
  remove(count: number): void {
    for (let i = 0; i < count; i++) {
      const message = this.messages[this.head + i]!;
      this.heldEvents -= message.events;
      this.heldBytes -= message.value.length;
      this.messages[this.head + i] = undefined;
    }
    this.head += count;
    // Compact now and then so the array does not grow with everything ever sent.
    if (this.head > 1024 && this.head * 2 > this.messages.length) {
      this.messages.splice(0, this.head);
      this.head = 0;
    }
  }
}
