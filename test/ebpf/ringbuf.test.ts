import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BpfObject, objectPath } from '../../src/ebpf/object.js';
import { openRingReader, type RingReader } from '../../src/ebpf/ringbuf.js';
import { decodeProbeRecord, type ProbeRecord } from '../../src/ebpf/records/probe.js';

/** bpf/selftest/probe.bpf.c emits one record per kill(2) of this process; signal 0 only checks the pid exists. */
function triggerKill(times: number, signal = 0): void {
  for (let i = 0; i < times; i++) process.kill(process.pid, signal);
}

function collect(reader: RingReader, into: ProbeRecord[]): number {
  return reader.drain((view, offset, size) => into.push(decodeProbeRecord(view, offset, size)));
}

const RECORD_BYTES_IN_RING = 56 + 8; // record + ring header, already 8-aligned

for (const kind of ['mapped', 'callback'] as const) {
  describe(`ring buffer, ${kind} reader`, () => {
    let object: BpfObject;
    let reader: RingReader;

    before(() => {
      object = BpfObject.load(objectPath('selftest/probe'), {
        rodata: { target_tgid: process.pid },
        maxEntries: { probe_ring: 4096 }, // 63 records fit: small on purpose, so tests wrap it many times
      });
      object.program('probe_kill').attachTracepoint('syscalls', 'sys_enter_kill');
      reader = openRingReader(object, 'probe_ring', kind);
    });
    after(() => object?.close());

    it('delivers exactly N records with the caller\'s fields, across hundreds of wrap-arounds', () => {
      const records: ProbeRecord[] = [];
      const before = process.hrtime.bigint();
      const batches = 400;
      const perBatch = 50;
      for (let batch = 0; batch < batches; batch++) {
        triggerKill(perBatch);
        const drained = collect(reader, records);
        assert.equal(drained, perBatch, `batch ${batch}`);
      }
      const afterNs = process.hrtime.bigint();
      const total = batches * perBatch;
      assert.equal(records.length, total);
      assert.ok((total * RECORD_BYTES_IN_RING) / 4096 > 300, 'the ring wrapped more than 300 times');
      const seq0 = records[0]!.seq;
      records.forEach((record, index) => {
        assert.equal(record.seq, seq0 + BigInt(index), `record ${index} out of order or missing`);
        assert.equal(record.pid, process.pid);
        assert.equal(record.tid, process.pid);
        assert.equal(record.targetPid, process.pid);
        assert.equal(record.signal, 0);
      });
      const comm = fs.readFileSync('/proc/self/comm', 'utf8').trim();
      assert.ok(records.every((record) => record.comm === comm));
      assert.ok(records[0]!.monotonicNs >= before && records.at(-1)!.monotonicNs <= afterNs, 'timestamps are CLOCK_MONOTONIC of this run');
      assert.equal(object.map('drops').perCpuCounters().read(0), 0n, 'no ring-full drops');
    });

    it('counts what did not fit in the ring as drops, exactly', () => {
      const drops = object.map('drops').perCpuCounters();
      const dropsBefore = drops.read(0);
      triggerKill(100);
      const records: ProbeRecord[] = [];
      collect(reader, records);
      // The kernel refuses a record when it would make producer - consumer exceed size - 1.
      const capacity = Math.floor((4096 - 1) / RECORD_BYTES_IN_RING);
      assert.equal(records.length, capacity);
      assert.equal(drops.read(0) - dropsBefore, BigInt(100 - capacity));
    });

    it('wakes a waiting reader when a record lands, and times out when none does', async () => {
      assert.equal(collect(reader, []), 0);
      assert.equal(await reader.wait(50), false);
      const waiting = reader.wait(10_000);
      setImmediate(() => triggerKill(1, 0));
      const started = Date.now();
      assert.equal(await waiting, true);
      assert.ok(Date.now() - started < 5_000, 'woken by the record, not by the timeout');
      const records: ProbeRecord[] = [];
      assert.equal(collect(reader, records), 1);
    });
  });
}
