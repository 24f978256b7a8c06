import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Btf } from '../../src/ebpf/btf.js';
import { objectPath } from '../../src/ebpf/object.js';
import { CONN_STATE, connStateCodec } from '../../src/ebpf/records/conn-state.js';
import { EGRESS4_KEY, egress4KeyCodec } from '../../src/ebpf/records/egress4-key.js';
import { RECORD_HEADER } from '../../src/ebpf/records/header.js';
import { PROBE_RECORD, decodeProbeRecord } from '../../src/ebpf/records/probe.js';

/** Each TS layout description, checked field by field against what clang laid out (bpf/selftest/layouts.bpf.c BTF). */
const layouts = [RECORD_HEADER, PROBE_RECORD, EGRESS4_KEY, CONN_STATE];

describe('record layouts match the compiled objects', () => {
  const btf = Btf.fromFile(objectPath('selftest/layouts'));
  after(() => btf.free());

  for (const layout of layouts) {
    it(`${layout.struct}: size and every field offset`, () => {
      const compiled = btf.struct(layout.struct);
      assert.ok(compiled, `struct ${layout.struct} is not in bpf/.output/selftest/layouts.bpf.o`);
      assert.equal(compiled.size, layout.size);
      const compiledOffsets = Object.fromEntries([...compiled.fields].map(([name, field]) => [name, field.offset]));
      assert.deepEqual(compiledOffsets, layout.offsets);
    });
  }
});

describe('decoders read golden bytes', () => {
  it('sl_probe_record', () => {
    // type=1 version=1 size=56 ts=0x0102030405060708 pid=4242 tid=4243 seq=2^60+5 target=-1 signal=15 comm="curl"
    const golden = Buffer.from(
      '01000100380000000807060504030201' +
        '92100000931000000500000000000010' +
        'ffffffff0f0000006375726c00000000' +
        '0000000000000000',
      'hex',
    );
    const framed = Buffer.concat([Buffer.alloc(8, 0xee), golden]);
    const view = new DataView(framed.buffer, framed.byteOffset, framed.length);
    assert.deepEqual(decodeProbeRecord(view, 8, golden.length), {
      monotonicNs: 0x0102030405060708n,
      pid: 4242,
      tid: 4243,
      seq: 2n ** 60n + 5n,
      targetPid: -1,
      signal: 15,
      comm: 'curl',
    });
  });

  it('rejects a record of another type, naming the field', () => {
    const bytes = Buffer.alloc(56);
    bytes.writeUInt16LE(9, 0);
    assert.throws(() => decodeProbeRecord(new DataView(bytes.buffer, bytes.byteOffset, 56), 0, 56), /probe record: expected type 1.*got type 9/);
  });

  it('sl_egress4_key', () => {
    const target = Buffer.alloc(8, 0xff);
    egress4KeyCodec.encode({ daddr: '10.0.0.7', dport: 8080 }, target);
    assert.equal(target.toString('hex'), '0a000007901f0000');
    assert.deepEqual(egress4KeyCodec.decode(target, 0), { daddr: '10.0.0.7', dport: 8080 });
  });

  it('sl_conn_state', () => {
    // conn_id=7 start=2^40 established=2^40+1 last=2^40+2 cgroup=99 pid=4242 tid=4243 syn=1 records=3 side=2 flags=0x0c comm="nginx"
    const golden =
      '0700000000000000' + '0000000000010000' + '0100000000010000' + '0200000000010000' +
      '6300000000000000' + '92100000' + '93100000' + '01000000' + '03000000' +
      '02' + '0c' + '000000000000' + '6e67696e780000000000000000000000';
    const state = {
      connId: 7n,
      startMonotonicNs: 2n ** 40n,
      establishedMonotonicNs: 2n ** 40n + 1n,
      lastRecordMonotonicNs: 2n ** 40n + 2n,
      cgroupId: 99n,
      pid: 4242,
      tid: 4243,
      synRetransmits: 1,
      records: 3,
      side: 2,
      flags: 0x0c,
      comm: 'nginx',
    };
    const target = Buffer.alloc(CONN_STATE.size, 0xee);
    connStateCodec.encode(state, target);
    assert.equal(target.toString('hex'), golden);
    assert.deepEqual(connStateCodec.decode(Buffer.concat([Buffer.alloc(8), target]), 8), state);
  });
});

describe('record versions', () => {
  it('a flow record of another layout version is rejected, not misread', async () => {
    const { FLOW_RECORD, decodeFlowRecord } = await import('../../src/ebpf/records/flow.js');
    const bytes = new DataView(new ArrayBuffer(FLOW_RECORD.size));
    bytes.setUint16(0, 2, true);
    bytes.setUint16(2, FLOW_RECORD.version + 1, true);
    assert.throws(() => decodeFlowRecord(bytes, 0, FLOW_RECORD.size), /flow record: expected type 2 v1 of 160 bytes, got type 2 v2 of 160 bytes/);
    bytes.setUint16(2, FLOW_RECORD.version, true);
    assert.equal(decodeFlowRecord(bytes, 0, FLOW_RECORD.size).kind, 0);
  });
});
