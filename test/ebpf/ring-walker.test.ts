/**
 * RingWalker over plain memory laid out like a kernel ring buffer (the test plays the kernel): records that run
 * past the end of the data area arrive whole, busy records stop the walk, discarded ones are skipped, and the
 * reader's position is published as the kernel expects, and its fill tells how much is unread.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingWalker } from '../../src/ebpf/ring-walker.js';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;

/** The kernel's side of a ring of `size` bytes: consumer_pos, producer_pos and the data area in one buffer. */
class FakeKernelRing {
  readonly memory: ArrayBuffer;
  readonly consumer: BigUint64Array;
  readonly producer: BigUint64Array;
  readonly data: Uint8Array;
  readonly walker: RingWalker;

  constructor(readonly size: number) {
    this.memory = new ArrayBuffer(16 + size);
    this.consumer = new BigUint64Array(this.memory, 0, 1);
    this.producer = new BigUint64Array(this.memory, 8, 1);
    this.data = new Uint8Array(this.memory, 16, size);
    this.walker = new RingWalker(this.consumer, this.producer, this.data, size);
  }

  /** Reserves and writes a record of `length` bytes, each byte (seed + i) & 0xff; returns where its header is. */
  write(length: number, seed: number, flags = 0): number {
    const position = Number(this.producer[0]);
    new DataView(this.memory, 16).setUint32(position % this.size, length | flags, true);
    for (let i = 0; i < length; i++) this.data[(position + 8 + i) % this.size] = (seed + i) & 0xff;
    this.producer[0] = BigInt(position + ((length + 8 + 7) & ~7));
    return position;
  }

  setFlags(position: number, length: number, flags: number): void {
    new DataView(this.memory, 16).setUint32(position % this.size, length | flags, true);
  }
}

/** The first byte of every record read, after checking all its bytes follow the seed. */
function read(ring: FakeKernelRing, maxRecords?: number): number[] {
  const seeds: number[] = [];
  ring.walker.drain((view, offset, size) => {
    const seed = view.getUint8(offset);
    for (let i = 0; i < size; i++) assert.equal(view.getUint8(offset + i), (seed + i) & 0xff, `byte ${i} of record ${seed}`);
    seeds.push(seed);
  }, maxRecords);
  return seeds;
}

describe('ring walker', () => {
  it('delivers records that run past the end of the ring whole, lap after lap', () => {
    const ring = new FakeKernelRing(4096);
    let seed = 0;
    let runPastEnd = 0;
    for (let batch = 0; batch < 60; batch++) {
      const written: number[] = [];
      // 160-byte records (168 in the ring) do not divide 4096: now and then one runs past the end.
      for (let i = 0; i < 7; i++, seed = (seed + 1) & 0xff) {
        const position = ring.write(160, seed);
        if (((position + 8) % 4096) + 160 > 4096) runPastEnd++;
        written.push(seed);
      }
      assert.deepEqual(read(ring), written);
      assert.equal(ring.consumer[0], ring.producer[0]);
    }
    assert.ok(runPastEnd >= 15, `${runPastEnd} records ran past the end`);
  });

  it('stops at a record still being written, with its position published, and skips discarded ones', () => {
    const ring = new FakeKernelRing(4096);
    ring.write(40, 1);
    const busy = ring.write(40, 2, BUSY);
    ring.write(40, 3);
    assert.deepEqual(read(ring), [1]);
    assert.equal(Number(ring.consumer[0]), busy, 'the kernel sees the reader waiting at the busy record');
    ring.setFlags(busy, 40, DISCARD);
    ring.write(40, 4);
    assert.deepEqual(read(ring), [3, 4]);
    assert.equal(ring.consumer[0], ring.producer[0]);
  });

  it('reads at most maxRecords, and the rest on the next drain', () => {
    const ring = new FakeKernelRing(4096);
    for (let i = 0; i < 5; i++) ring.write(24, i);
    assert.deepEqual(read(ring, 2), [0, 1]);
    assert.deepEqual(read(ring), [2, 3, 4]);
  });

  it('tells the share of the ring that unread records take, a record still being written included', () => {
    const ring = new FakeKernelRing(4096);
    assert.equal(ring.walker.fill(), 0);
    for (let i = 0; i < 32; i++) ring.write(56, i); // 64 bytes each with the header: half the ring
    assert.equal(ring.walker.fill(), 0.5);
    ring.setFlags(ring.write(56, 32), 56, BUSY);
    assert.equal(ring.walker.fill(), 33 / 64);
    assert.equal(read(ring, 16).length, 16);
    assert.equal(ring.walker.fill(), 17 / 64);
    assert.equal(read(ring).length, 16);
    assert.equal(ring.walker.fill(), 1 / 64);
  });
});
