/**
 * The Collector's loops with in-memory parts (no kernel, no broker): a failed send is retried with exactly the same
 * messages, events that do not fit are counted, and stop() detaches the sources before its last drain.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '@opentelemetry/api';
import { Collector } from '../../src/collector/collector.js';
import type { SinkResult } from '../../src/collector/kafka-sink.js';
import type { OutMessage } from '../../src/collector/outbox.js';
import { createLogger } from '../../src/common/logger.js';
import type { RecordHandler } from '../../src/ebpf/ringbuf.js';
import { FLOW_RECORD, FlowKind, FlowSide } from '../../src/ebpf/records/flow.js';

/** A ring of flow records handed out `perDrain` at a time; `stop()` seals it, as detaching the programs would. */
class FakeRing {
  private next = 0;
  readonly records: DataView[] = [];
  sealedAt: number | undefined;

  add(count: number): void {
    for (let i = 0; i < count; i++) {
      const bytes = new DataView(new ArrayBuffer(FLOW_RECORD.size));
      bytes.setUint16(0, 2, true); // SL_RECORD_FLOW
      bytes.setUint16(2, FLOW_RECORD.version, true);
      bytes.setUint32(4, FLOW_RECORD.size, true);
      bytes.setBigUint64(FLOW_RECORD.offsets.conn_id, BigInt(this.records.length), true);
      bytes.setUint8(FLOW_RECORD.offsets.side, FlowSide.client);
      bytes.setUint8(FLOW_RECORD.offsets.kind, FlowKind.final);
      bytes.setUint8(FLOW_RECORD.offsets.client_addr + 10, 0xff);
      bytes.setUint8(FLOW_RECORD.offsets.client_addr + 11, 0xff);
      bytes.setUint8(FLOW_RECORD.offsets.server_addr + 10, 0xff);
      bytes.setUint8(FLOW_RECORD.offsets.server_addr + 11, 0xff);
      this.records.push(bytes);
    }
  }

  drain(handler: RecordHandler, max = Infinity): number {
    let count = 0;
    for (; this.next < this.records.length && count < max; this.next++, count++) handler(this.records[this.next]!, 0, FLOW_RECORD.size);
    return count;
  }

  async wait(ms: number): Promise<boolean> {
    await sleep(Math.min(ms, 5));
    return this.next < this.records.length;
  }
}

function collector(ring: FakeRing, send: (messages: OutMessage[]) => Promise<SinkResult>, queueEvents = 1000) {
  return new Collector(
    {
      reader: ring,
      sink: { send, shutdown: async () => {} },
      partitions: 1,
      // One byte per event in the "message", so tests can count events in what was sent.
      encode: (events) => Buffer.from(events.map((event) => Number(event.connection_id.split('/').pop()) % 256)),
      context: { nodeName: 'n', epoch: 'e', toWallNs: (ns) => ns },
      takeKernelDrops: () => [],
      stopSources: () => (ring.sealedAt = ring.records.length),
      logger: createLogger({ level: 'silent' }),
      meter: metrics.getMeter('test'),
    },
    { queueEvents, eventsPerMessage: 2, flushMs: 10, shutdownTimeoutMs: 2000 },
  );
}

describe('collector', () => {
  it('retries a failed send with exactly the same messages, while newer ones wait', async () => {
    const ring = new FakeRing();
    const sends: OutMessage[][] = [];
    let fail = true;
    const c = collector(ring, async (messages) => {
      sends.push(messages);
      if (fail) {
        fail = false;
        ring.add(10); // more events arrive while the first attempt fails
        return { ok: false, error: 'broker down', retriable: true };
      }
      return { ok: true };
    });
    ring.add(4);
    c.start();
    await sleep(300);
    await c.stop();
    assert.deepEqual(sends[1], sends[0], 'the retry carries the very same messages');
    assert.equal(c.stats.recordsRead, 14);
    assert.equal(c.stats.eventsProduced, 14);
    assert.deepEqual(c.stats.drops, {});
  });

  it('counts every event that does not fit the queue, and read = produced + dropped', async () => {
    const ring = new FakeRing();
    let open = false;
    const c = collector(ring, async () => (open ? { ok: true } : { ok: false, error: 'down', retriable: true }), 1000);
    ring.add(1500);
    c.start();
    await sleep(100);
    open = true;
    await c.stop();
    assert.equal(c.stats.recordsRead, 1500);
    assert.equal(c.stats.drops.queue_full, 500);
    assert.equal(c.stats.eventsProduced, 1000);
  });

  it('stops its sources before the last drain, so records written until then are read', async () => {
    const ring = new FakeRing();
    const c = collector(ring, async () => ({ ok: true }));
    c.start();
    ring.add(3);
    await c.stop();
    assert.equal(ring.sealedAt, 3);
    assert.equal(c.stats.recordsRead, 3);
    assert.equal(c.stats.eventsProduced, 3);
  });
});
