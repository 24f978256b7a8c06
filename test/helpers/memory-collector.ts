/**
 * The generic Collector with in-memory parts (no kernel, no broker) and the real flows record kind, for tests of its
 * loops: a ring of flow records, and a collector reading it.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { metrics } from '@opentelemetry/api';
import { Collector, type EventPrerequisites } from '../../src/collector/collector.js';
import { loadConfig } from '../../src/common/config.js';
import { ConnectionEnds } from '../../src/collector/connection-ends.js';
import { flowsKind } from '../../src/collector/flows/index.js';
import type { OutMessage } from '../../src/common/kafka/sink.js';
import { createLogger } from '../../src/common/logger.js';
import type { Sink } from '../../src/common/pipeline.js';
import type { RecordHandler } from '../../src/ebpf/ringbuf.js';
import { FLOW_RECORD, FlowKind, FlowSide, type FlowRecordView } from '../../src/ebpf/records/flow.js';
import { RecordType } from '../../src/ebpf/records/header.js';

/** A ring of flow records handed out in order. Like the kernel's, it may be written at any time, before or after stop. */
export class FakeRing {
  private next = 0;
  readonly records: DataView[] = [];
  /** Waits so far: the collector's read cycles. */
  waits = 0;

  /** `capacity`: how many records the ring holds, for its fill (by default it never fills). */
  constructor(private readonly capacity = Number.POSITIVE_INFINITY) {}

  /** `count` final client records, conn ids counting up from 0 across calls, of sockets in cgroup `cgroupId`. */
  add(count: number, cgroupId = 0n): void {
    for (let i = 0; i < count; i++) {
      const bytes = new DataView(new ArrayBuffer(FLOW_RECORD.size));
      bytes.setUint16(0, RecordType.flow, true);
      bytes.setUint16(2, FLOW_RECORD.version, true);
      bytes.setUint32(4, FLOW_RECORD.size, true);
      bytes.setBigUint64(FLOW_RECORD.offsets.conn_id, BigInt(this.records.length), true);
      bytes.setBigUint64(FLOW_RECORD.offsets.cgroup_id, cgroupId, true);
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
    this.waits++;
    await sleep(Math.min(ms, 5));
    return this.next < this.records.length;
  }

  fill(): number {
    return this.unread / this.capacity;
  }

  get unread(): number {
    return this.records.length - this.next;
  }
}

const CONTEXT = { nodeName: 'n', epoch: 'e', firstConnId: 0n, toWallNs: (ns: bigint) => ns, connectionEnds: new ConnectionEnds() };

/**
 * A collector of the ring's flow events: two per message, one partition, `eventBytes` bytes per event in the message
 * (the first its conn id, modulo 256).
 */
export function memoryCollector(
  ring: FakeRing,
  sink: Sink<OutMessage[]>,
  {
    queueEvents = 1000,
    prerequisites,
    eventBytes = 1,
    kernelDrops = () => [],
  }: { queueEvents?: number; prerequisites?: EventPrerequisites<FlowRecordView>; eventBytes?: number; kernelDrops?: () => Array<[string, number]> } = {},
): Collector<FlowRecordView> {
  return new Collector<FlowRecordView>(
    {
      kind: 'flows',
      source: { reader: ring, fill: () => ring.fill(), takeKernelDrops: kernelDrops, kernelDropRemedies: { ringbuf_full: 'a test' } },
      transform: (emit) => flowsKind.transform(CONTEXT, emit, loadConfig({ argv: [], env: {} })),
      packing: {
        partitionOf: () => 0,
        // The conn id's byte per event in the "message", so tests can count events in what was sent.
        messageBuilder: () => {
          const bytes: number[] = [];
          return {
            get size() {
              return bytes.length;
            },
            get bytes() {
              return bytes.length * eventBytes;
            },
            add: (record) => void bytes.push(Number(record.connId) % 256),
            seal: () => Buffer.concat(bytes.splice(0).map((byte) => Buffer.alloc(eventBytes, byte))),
          };
        },
      },
      sink,
      ...(prerequisites && { prerequisites }),
      logger: createLogger({ level: 'silent' }),
      meter: metrics.getMeter('test'),
    },
    { queueEvents, eventsPerMessage: 2, flushMs: 10, shutdownTimeoutMs: 2000 },
  );
}
