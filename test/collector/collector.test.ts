/**
 * The generic Collector's loops with in-memory parts (no kernel, no broker) and the real flows record kind: a
 * failed send is retried with exactly the same messages, events that do not fit are counted, and stop() takes from
 * the ring (which outlives the collector) only what the queue has room for.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '@opentelemetry/api';
import { Collector } from '../../src/collector/collector.js';
import { flowsKind } from '../../src/collector/flows/index.js';
import type { OutMessage } from '../../src/common/kafka/sink.js';
import { createLogger } from '../../src/common/logger.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { MemorySink, type SinkResult } from '../../src/common/pipeline.js';
import type { RecordHandler } from '../../src/ebpf/ringbuf.js';
import { FLOW_RECORD, FlowKind, FlowSide } from '../../src/ebpf/records/flow.js';
import { RecordType } from '../../src/ebpf/records/header.js';
import { FLOWS, type FlowEvent } from '../../src/events/flows.js';

/** A ring of flow records handed out in order. Like the kernel's, it may be written at any time, before or after stop. */
class FakeRing {
  private next = 0;
  readonly records: DataView[] = [];

  add(count: number): void {
    for (let i = 0; i < count; i++) {
      const bytes = new DataView(new ArrayBuffer(FLOW_RECORD.size));
      bytes.setUint16(0, RecordType.flow, true);
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

  get unread(): number {
    return this.records.length - this.next;
  }
}

const CONTEXT = { nodeName: 'n', epoch: 'e', toWallNs: (ns: bigint) => ns };

function collector(ring: FakeRing, sink: MemorySink<OutMessage[]>, queueEvents = 1000): Collector<FlowEvent> {
  return new Collector<FlowEvent>(
    {
      kind: 'flows',
      source: { reader: ring, takeKernelDrops: () => [], kernelDropRemedies: {} },
      toEvent: (view, offset, size) => flowsKind.toEvent(view, offset, size, CONTEXT),
      partitionKey: FLOWS.partitionKey,
      partitions: 1,
      // One byte per event in the "message", so tests can count events in what was sent.
      messageBuilder: () => {
        const bytes: number[] = [];
        return {
          get size() {
            return bytes.length;
          },
          add: (event) => void bytes.push(Number(event.connection_id.split('/').pop()) % 256),
          seal: () => Buffer.from(bytes.splice(0)),
        };
      },
      sink,
      logger: createLogger({ level: 'silent' }),
      meter: metrics.getMeter('test'),
    },
    { queueEvents, eventsPerMessage: 2, flushMs: 10, shutdownTimeoutMs: 2000 },
  );
}

/** Waits for a condition of the collector's loops, with a deadline. */
function until(condition: () => boolean, what: string): Promise<void> {
  return waitFor(async () => condition(), { timeoutMs: 5_000, what });
}

const down: SinkResult = { ok: false, error: 'broker down', retriable: true };

describe('collector', () => {
  it('retries a failed send with exactly the same messages, while newer ones wait', async () => {
    const ring = new FakeRing();
    const sends: OutMessage[][] = [];
    const sink = new MemorySink<OutMessage[]>();
    const send = sink.send.bind(sink);
    sink.send = async (messages) => {
      sends.push(messages);
      if (sends.length === 1) ring.add(10); // more events arrive while the first attempt fails
      return send(messages);
    };
    sink.script.push(down);
    ring.add(4);
    const c = collector(ring, sink);
    c.start();
    await until(() => c.stats.eventsProduced === 14, 'all 14 events produced after the retry');
    await c.stop();
    assert.deepEqual(sends[1], sends[0], 'the retry carries the very same messages');
    assert.equal(c.stats.recordsRead, 14);
    assert.equal(c.stats.eventsProduced, 14);
    assert.equal(sink.accepted.flat().reduce((sum, message) => sum + message.events, 0), 14);
    assert.deepEqual(c.stats.drops, {});
    assert.equal(sink.shutdowns, 1);
  });

  it('counts every event that does not fit the queue, and read = produced + dropped', async () => {
    const ring = new FakeRing();
    const sink = new MemorySink<OutMessage[]>();
    for (let i = 0; i < 1000; i++) sink.script.push(down);
    ring.add(1500);
    const c = collector(ring, sink, 1000);
    c.start();
    await until(() => c.stats.recordsRead === 1500, 'the whole ring read while Kafka is down');
    sink.script.length = 0;
    await c.stop();
    assert.equal(c.stats.recordsRead, 1500);
    assert.equal(c.stats.drops.queue_full, 500);
    assert.equal(c.stats.eventsProduced, 1000);
  });

  it('counts a batch the broker rejects as dropped and goes on with the next', async () => {
    const ring = new FakeRing();
    const sink = new MemorySink<OutMessage[]>();
    sink.script.push({ ok: false, error: 'MESSAGE_TOO_LARGE', retriable: false });
    ring.add(4);
    const c = collector(ring, sink);
    c.start();
    await until(() => c.stats.drops.kafka_rejected === 4, 'the rejected batch counted');
    ring.add(6);
    await c.stop();
    assert.equal(c.stats.recordsRead, 10);
    assert.equal(c.stats.drops.kafka_rejected, 4);
    assert.equal(c.stats.eventsProduced, 6);
  });

  it('at stop takes what the ring holds only as far as the queue has room: the rest stays in the ring for the next collector', async () => {
    const ring = new FakeRing();
    const sink = new MemorySink<OutMessage[]>();
    // Kafka holds the first send until the final drain is over, so the queue is as full then as it was at stop.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const send = sink.send.bind(sink);
    sink.send = async (messages) => {
      await held;
      return send(messages);
    };
    ring.add(900);
    const c = collector(ring, sink, 1000);
    c.start();
    await until(() => c.stats.recordsRead === 900, 'the first 900 records read');
    ring.add(500); // written after the read loop's last drain
    const stopped = c.stop();
    await until(() => c.stats.recordsRead === 1000, 'the final drain taking what the queue has room for');
    release();
    await stopped;
    assert.equal(c.stats.recordsRead, 1000);
    assert.equal(c.stats.eventsProduced, 1000);
    assert.deepEqual(c.stats.drops, {});
    assert.equal(ring.unread, 400);
  });

  it('stop() called twice stops once', async () => {
    const ring = new FakeRing();
    ring.add(1);
    const sink = new MemorySink<OutMessage[]>();
    const c = collector(ring, sink);
    c.start();
    await Promise.all([c.stop(), c.stop()]);
    await c.stop();
    assert.equal(c.stats.recordsRead, 1);
    assert.equal(sink.shutdowns, 1);
  });
});
