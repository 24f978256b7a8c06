/** When the Packer seals a partition's message: at collector.eventsPerMessage events, or once its events take maxMessageBytes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Outbox } from '../../src/collector/outbox.js';
import { Packer, type MessageBuilder } from '../../src/collector/packer.js';

/** Each event is its length in bytes, written as that many copies of its partition's number. */
interface Sized {
  partition: number;
  bytes: number;
}

function sizedBuilder(): MessageBuilder<Sized> {
  const parts: Buffer[] = [];
  let bytes = 0;
  return {
    get size() {
      return parts.length;
    },
    get bytes() {
      return bytes;
    },
    add(event) {
      parts.push(Buffer.alloc(event.bytes, event.partition));
      bytes += event.bytes;
    },
    seal() {
      const message = Buffer.concat(parts.splice(0));
      bytes = 0;
      return message;
    },
  };
}

function packer(outbox: Outbox, eventsPerMessage: number, maxMessageBytes: number): Packer<Sized> {
  return new Packer<Sized>(outbox, {
    eventsPerMessage,
    maxMessageBytes,
    partitionOf: (event) => event.partition,
    messageBuilder: sizedBuilder,
    onDrop: () => assert.fail('nothing is dropped here'),
  });
}

const sealed = (outbox: Outbox) => outbox.peek(100).map(({ partition, events, value }) => ({ partition, events, bytes: value.length }));

describe('packer', () => {
  it('seals a message once its events take maxMessageBytes, below eventsPerMessage', () => {
    const outbox = new Outbox(1000);
    const pack = packer(outbox, 1000, 100);
    for (let i = 0; i < 7; i++) pack.add({ partition: 2, bytes: 30 });
    // 30, 60, 90: open; 120 >= 100: sealed with 4 events. Then 3 more, open until the flush.
    assert.deepEqual(sealed(outbox), [{ partition: 2, events: 4, bytes: 120 }]);
    assert.equal(pack.heldEvents, 3);
    pack.flush();
    assert.deepEqual(sealed(outbox), [
      { partition: 2, events: 4, bytes: 120 },
      { partition: 2, events: 3, bytes: 90 },
    ]);
    assert.equal(outbox.events, 7);
  });

  it('seals at eventsPerMessage when the bytes stay below the bound, each partition apart', () => {
    const outbox = new Outbox(1000);
    const pack = packer(outbox, 3, 1000);
    for (let i = 0; i < 4; i++) pack.add({ partition: i % 2, bytes: 10 });
    pack.add({ partition: 0, bytes: 10 });
    assert.deepEqual(sealed(outbox), [{ partition: 0, events: 3, bytes: 30 }]);
    pack.flush();
    assert.deepEqual(sealed(outbox), [
      { partition: 0, events: 3, bytes: 30 },
      { partition: 1, events: 2, bytes: 20 },
    ]);
  });

  it('an event larger than the bound is a message of its own', () => {
    const outbox = new Outbox(1000);
    const pack = packer(outbox, 1000, 100);
    pack.add({ partition: 0, bytes: 250 });
    pack.add({ partition: 0, bytes: 5 });
    pack.flush();
    assert.deepEqual(sealed(outbox), [
      { partition: 0, events: 1, bytes: 250 },
      { partition: 0, events: 1, bytes: 5 },
    ]);
  });
});
