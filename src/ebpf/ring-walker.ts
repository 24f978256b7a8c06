/**
 * The records of a BPF ring buffer, walked in JS over memory laid out as the kernel lays it out: consumer_pos
 * (the reader stores it), producer_pos (the kernel stores it) and the data area, each record an 8-byte header
 * (length with BUSY and DISCARD bits) then its bytes, the next header at the following multiple of 8. Needs no
 * native call, so tests drive it over plain memory; MappedRingReader (./ringbuf.ts) drives it over the mmapped ring.
 *
 * The data area is mapped once. The kernel maps it twice in a row so that a record running past the end stays
 * contiguous, but then every page of the ring counts twice in the reader's RSS (16 MB for the default 8 MB ring).
 * A record that runs past the end (about one per lap) is copied into a scratch view instead.
 */
/** Called once per record; `offset` is where the record's bytes start in `view`. Must not keep the view. */
export type RecordHandler = (view: DataView, offset: number, size: number) => void;

const RINGBUF_BUSY_BIT = 0x80000000;
const RINGBUF_DISCARD_BIT = 0x40000000;
const RINGBUF_LENGTH_MASK = 0x3fffffff;
const RINGBUF_HEADER_SIZE = 8;

export class RingWalker {
  private readonly headerWords: Uint32Array;
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private scratch = new Uint8Array(256);
  private scratchView = new DataView(this.scratch.buffer);

  /** `data` is the ring's data area of `size` bytes (a power of two). */
  constructor(
    private readonly consumerPosition: BigUint64Array,
    private readonly producerPosition: BigUint64Array,
    data: Uint8Array,
    private readonly size: number,
  ) {
    this.bytes = data.subarray(0, size);
    this.headerWords = new Uint32Array(data.buffer, data.byteOffset, size / 4);
    this.view = new DataView(data.buffer, data.byteOffset, size);
  }

  /**
   * Hands records to the handler in order, at most `maxRecords`, and returns how many: loads producer_pos, walks
   * from consumer_pos, skips discarded records, stops at one still being written (BUSY). Stores consumer_pos every
   * quarter ring (so the kernel reuses space early) and at the end, then looks at producer_pos once more: the kernel
   * signals a record only if the reader had caught up with it when it was committed, so a record committed just
   * before that store must be found by this last look, or it would wait for the next signal.
   */
  drain(handler: RecordHandler, maxRecords = Number.MAX_SAFE_INTEGER): number {
    const size = this.size;
    const flushEvery = size / 4;
    let consumer = Number(Atomics.load(this.consumerPosition, 0));
    let stored = consumer;
    let count = 0;
    for (;;) {
      const start = consumer;
      const producer = Number(Atomics.load(this.producerPosition, 0));
      while (consumer < producer && count < maxRecords) {
        const headerOffset = consumer % size;
        const header = Atomics.load(this.headerWords, headerOffset >>> 2);
        if (header & RINGBUF_BUSY_BIT) break;
        const length = header & RINGBUF_LENGTH_MASK;
        if (!(header & RINGBUF_DISCARD_BIT)) {
          const offset = (headerOffset + RINGBUF_HEADER_SIZE) % size;
          if (offset + length <= size) handler(this.view, offset, length);
          else handler(this.wrapped(offset, length), 0, length);
          count++;
        }
        consumer += (length + RINGBUF_HEADER_SIZE + 7) & ~7;
        if (consumer - stored >= flushEvery) {
          Atomics.store(this.consumerPosition, 0, BigInt(consumer));
          stored = consumer;
        }
      }
      if (consumer !== stored) {
        Atomics.store(this.consumerPosition, 0, BigInt(consumer));
        stored = consumer;
      }
      if (consumer === start) break; // a pass after the last store found nothing new (or a busy record, or maxRecords)
    }
    return count;
  }

  /** How much of the ring holds records not read yet, 0..1. */
  fill(): number {
    return fillOf(this.producerPosition, this.consumerPosition, this.size);
  }

  /** Whether every record the kernel committed or is still writing has been read. */
  empty(): boolean {
    return Atomics.load(this.consumerPosition, 0) >= Atomics.load(this.producerPosition, 0);
  }

  /** A record that runs past the end of the data area, made contiguous in the scratch view. */
  private wrapped(offset: number, length: number): DataView {
    if (this.scratch.length < length) {
      this.scratch = new Uint8Array(length);
      this.scratchView = new DataView(this.scratch.buffer);
    }
    const head = this.size - offset;
    this.scratch.set(this.bytes.subarray(offset), 0);
    this.scratch.set(this.bytes.subarray(0, length - head), head);
    return this.scratchView;
  }
}

/** How much of a ring of `size` bytes holds records not read yet, 0..1, from its two mapped positions. */
export function fillOf(producerPosition: BigUint64Array, consumerPosition: BigUint64Array, size: number): number {
  return Number(Atomics.load(producerPosition, 0) - Atomics.load(consumerPosition, 0)) / size;
}
