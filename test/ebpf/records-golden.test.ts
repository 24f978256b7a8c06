import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Btf } from '../../src/ebpf/btf.js';
import { objectPath } from '../../src/ebpf/object.js';
import { connStateCodec, type ConnState } from '../../src/ebpf/records/conn-state.js';
import { egress4KeyCodec } from '../../src/ebpf/records/egress4-key.js';
import { FLOW_RECORD, decodeFlowRecord } from '../../src/ebpf/records/flow.js';
import { HTTP_CHUNK_RECORD, decodeHttpChunkEnds, decodeHttpChunkRecord } from '../../src/ebpf/records/http-chunk.js';
import { RECORD_HEADER, recordMonotonicNs, recordType, recordVersion } from '../../src/ebpf/records/header.js';
import type { Codec } from '../../src/ebpf/map.js';
import {
  cgroupIdentityKeyCodec,
  endpointKeyCodec,
  isolationKeyCodec,
  policyKeyCodec,
  prefixKeyCodec,
  udpFlowKeyCodec,
} from '../../src/ebpf/records/policy-keys.js';
import { decodeProbeRecord } from '../../src/ebpf/records/probe.js';
import { decodeVerdictRecord } from '../../src/ebpf/records/verdict.js';
import { rodataVariables } from '../helpers/rodata.js';

/**
 * Golden bytes, made by the compiler: bpf/selftest/layouts.bpf.c initialises one `const sl_golden_<type>` per
 * records.h struct, and each must be byte for byte the committed fixture in test/ebpf/fixtures/. The decoders then
 * read the fixture and must return exactly the values the C initialiser wrote. A layout change in C fails the
 * first check, a decoder that reads the wrong offset, width or sign fails the second.
 */
const layoutsObject = objectPath('selftest/layouts');
const compiled = rodataVariables(layoutsObject);
const btf = Btf.fromFile(layoutsObject);
after(() => btf.free());

/** The fixture of each records.h struct; a new struct needs a golden const, a fixture and a test here. */
const FIXTURES: Record<string, string> = {
  sl_record_header: 'sl_record_header.hex',
  sl_probe_record: 'sl_probe_record.v1.hex',
  sl_flow_record: 'sl_flow_record.v1.hex',
  sl_http_chunk_record: 'sl_http_chunk_record.v1.hex',
  sl_egress4_key: 'sl_egress4_key.hex',
  sl_conn_state: 'sl_conn_state.hex',
  sl_verdict_record: 'sl_verdict_record.v1.hex',
  sl_cgroup_identity_key: 'sl_cgroup_identity_key.hex',
  sl_endpoint_key: 'sl_endpoint_key.hex',
  sl_prefix_key: 'sl_prefix_key.hex',
  sl_isolation_key: 'sl_isolation_key.hex',
  sl_policy_key: 'sl_policy_key.hex',
  sl_udp_flow_key: 'sl_udp_flow_key.hex',
};

/** A fixture: hex, with `#` comments and whitespace ignored. */
function fixture(file: string): Buffer {
  const text = readFileSync(new URL(`../../../test/ebpf/fixtures/${file}`, import.meta.url), 'utf8');
  return Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');
}

/** Compares the compiler's bytes of `sl_golden_<type>` with its fixture, naming each field that differs. */
function assertCompiledAsFixture(struct: string): Buffer {
  const file = FIXTURES[struct]!;
  const expected = fixture(file);
  const actual = compiled.get(`sl_golden_${struct.slice('sl_'.length)}`);
  assert.ok(actual, `sl_golden_${struct.slice('sl_'.length)} is not in the .rodata of ${layoutsObject}`);
  const fields = [...btf.struct(struct)!.fields].sort(([, a], [, b]) => a.offset - b.offset);
  const differences = fields.flatMap(([field, { offset }], index) => {
    const end = fields[index + 1]?.[1].offset ?? Math.max(actual.length, expected.length);
    const [c, fixed] = [actual.subarray(offset, end).toString('hex'), expected.subarray(offset, end).toString('hex')];
    return c === fixed ? [] : [`${struct}.${field} at ${offset}: C lays out ${c}, ${file} has ${fixed}`];
  });
  if (actual.length !== expected.length) differences.push(`${struct}: C has ${actual.length} bytes, ${file} ${expected.length}`);
  assert.deepEqual(differences, [], differences.join('\n'));
  return expected;
}

/** The bytes at a non-zero offset of a larger buffer, as the ring hands them over, so offsets are relative. */
function framed(bytes: Buffer): DataView {
  const buffer = Buffer.concat([Buffer.alloc(8, 0xee), bytes, Buffer.alloc(8, 0xee)]);
  return new DataView(buffer.buffer, buffer.byteOffset + 8, bytes.length);
}

describe('golden bytes: compiler, fixture and decoder agree', () => {
  it('every sl_* struct of the layouts object has a fixture', () => {
    assert.deepEqual(btf.names('struct').filter((name) => name.startsWith('sl_')).sort(), Object.keys(FIXTURES).sort());
  });

  it('sl_record_header', () => {
    const view = framed(assertCompiledAsFixture('sl_record_header'));
    assert.deepEqual(
      { type: recordType(view, 0), version: recordVersion(view, 0), size: view.getUint32(RECORD_HEADER.offsets.size, true), ts: recordMonotonicNs(view, 0) },
      { type: 0x0102, version: 0x0304, size: 0x05060708, ts: 0x090a0b0c0d0e0f10n },
    );
  });

  it('sl_probe_record v1', () => {
    const bytes = assertCompiledAsFixture('sl_probe_record');
    assert.deepEqual(decodeProbeRecord(framed(bytes), 0, bytes.length), {
      monotonicNs: 0x4142434445464748n,
      pid: 74565,
      tid: 74566,
      seq: 0x1000000000000005n,
      targetPid: -1,
      signal: 15,
      comm: 'probe-selftest1',
    });
  });

  it('sl_flow_record v1', () => {
    const bytes = assertCompiledAsFixture('sl_flow_record');
    assert.deepEqual(decodeFlowRecord(framed(bytes), 0, bytes.length), {
      monotonicNs: 0x3132333435363738n,
      connId: 0x0102030405060708n,
      startMonotonicNs: 0x1112131415161718n,
      cgroupId: 0x2122232425262728n,
      bytesSent: 0x0000000312345678n,
      bytesReceived: 0x0000000487654321n,
      segsSent: 3000000001,
      segsReceived: 2000000002,
      srttUs: 12345,
      rttvarUs: 678,
      retransmits: 9,
      synRetransmits: 2,
      connectUs: 4321,
      netnsIno: 4026531992,
      pid: 4242,
      tid: 4243,
      recordSeq: 7,
      family: 10,
      clientPort: 50000,
      serverPort: 443,
      side: 2, // server
      kind: 2, // final
      lastState: 9, // LAST_ACK
      flags: 0x1c, // established | fin sent | fin received
      clientAddress: '10.1.2.3',
      serverAddress: '2001:db8::8a2e:370:7334',
      comm: 'envoy-worker-07',
    });
  });

  it('sl_http_chunk_record v1: the fixed part, then the copied bytes', () => {
    const fixed = assertCompiledAsFixture('sl_http_chunk_record');
    const bytes = Buffer.concat([fixed, Buffer.from('GET /')]);
    const decoded = decodeHttpChunkRecord(framed(bytes), 0, bytes.length);
    assert.deepEqual({ ...decoded, data: decoded.data.toString('latin1') }, {
      monotonicNs: 0x5152535455565758n,
      connId: 0x0102030405060708n,
      cgroupId: 0x2122232425262728n,
      callStartNs: 0x5152535455560000n,
      length: 0x123456789,
      pid: 3000000001,
      tid: 3000000002,
      direction: 2, // received
      flags: 1, // truncated
      data: 'GET /',
    });
    assert.deepEqual(decodeHttpChunkEnds(framed(bytes), 0), { side: 2, clientAddress: '10.1.2.3', clientPort: 49153, serverAddress: 'fd00::1', serverPort: 8080 });
  });

  it('sl_egress4_key: the codec writes and reads the compiler bytes, padding zeroed', () => {
    const bytes = assertCompiledAsFixture('sl_egress4_key');
    const written = Buffer.alloc(bytes.length, 0xff);
    egress4KeyCodec.encode({ daddr: '10.0.0.7', dport: 8080 }, written);
    assert.equal(written.toString('hex'), bytes.toString('hex'));
    assert.deepEqual(egress4KeyCodec.decode(bytes, 0), { daddr: '10.0.0.7', dport: 8080 });
  });

  it('sl_conn_state: the codec reads and writes the compiler bytes, padding zeroed', () => {
    const bytes = assertCompiledAsFixture('sl_conn_state');
    const state: ConnState = {
      connId: 0x0102030405060708n,
      startMonotonicNs: 0x1112131415161718n,
      establishedMonotonicNs: 0x2122232425262728n,
      lastRecordMonotonicNs: 0x3132333435363738n,
      cgroupId: 0x4142434445464748n,
      pid: 3000000001,
      tid: 3000000002,
      synRetransmits: 3,
      records: 2000000004,
      side: 2, // server
      flags: 0x14, // established | fin received
      comm: 'conn-selftest-1',
    };
    assert.deepEqual(connStateCodec.decode(Buffer.concat([Buffer.alloc(8, 0xee), bytes]), 8), state);
    const written = Buffer.alloc(bytes.length, 0xff);
    connStateCodec.encode(state, written);
    assert.equal(written.toString('hex'), bytes.toString('hex'));
  });
});

/** A key codec writes the compiler's bytes over a buffer full of 0xff (padding zeroed) and reads back the value. */
function assertKeyCodec<K>(struct: string, codec: Codec<K>, key: K): void {
  const bytes = assertCompiledAsFixture(struct);
  const written = Buffer.alloc(bytes.length, 0xff);
  codec.encode(key, written);
  assert.equal(written.toString('hex'), bytes.toString('hex'));
  assert.deepEqual(codec.decode(Buffer.concat([Buffer.alloc(8, 0xee), bytes]), 8), key);
}

const V4_MAPPED = 0xffffn << 32n;

describe('golden bytes: the enforcer\'s keys and verdict record', () => {
  it('sl_verdict_record v1', () => {
    const bytes = assertCompiledAsFixture('sl_verdict_record');
    assert.deepEqual(decodeVerdictRecord(framed(bytes), 0, bytes.length), {
      monotonicNs: 0x3132333435363738n,
      cgroupId: 0x2122232425262728n,
      subject: 0x4142434445464748n,
      peer: 0x4a4b4c4d4e4f5051n,
      peerPrefix: 0x8182838485868788n,
      srcAddress: '10.1.2.3',
      dstAddress: '2001:db8::8a2e:370:7334',
      srcPort: 50000,
      dstPort: 443,
      protocol: 6,
      direction: 2, // egress
      verdict: 3, // audit-deny
      hook: 1, // connect
      generation: 3000000001,
    });
  });

  it('sl_cgroup_identity_key', () => assertKeyCodec('sl_cgroup_identity_key', cgroupIdentityKeyCodec, { cgroupId: 0x0102030405060708n, generation: 1 }));

  it('sl_endpoint_key: the address big-endian, v4-mapped', () => assertKeyCodec('sl_endpoint_key', endpointKeyCodec, { address: V4_MAPPED | 0x0a010203n, generation: 1 }));

  it('sl_prefix_key: prefixlen counts the generation bits', () =>
    assertKeyCodec('sl_prefix_key', prefixKeyCodec, { address: V4_MAPPED | 0xac100000n, length: 96 + 12, generation: 1 }));

  it('sl_isolation_key', () => assertKeyCodec('sl_isolation_key', isolationKeyCodec, { subject: 0x4142434445464748n, direction: 2, generation: 1 }));

  it('sl_policy_key: the port big-endian, prefixlen 160 + the block bits', () =>
    assertKeyCodec('sl_policy_key', policyKeyCodec, { generation: 1, direction: 1, protocol: 17, subject: 0x4142434445464748n, peer: 0x8182838485868788n, port: 8008, bits: 13 }));

  it('sl_udp_flow_key', () =>
    assertKeyCodec('sl_udp_flow_key', udpFlowKeyCodec, { socketCookie: 0x1112131415161718n, peerAddress: (0x20010db8n << 96n) | 0x35n, peerPort: 53000 }));
});

describe('decoders reject what they cannot read', () => {
  it('an http chunk record whose copied bytes run past the record, naming the field', () => {
    const bytes = new DataView(new ArrayBuffer(HTTP_CHUNK_RECORD.size + 4));
    bytes.setUint16(0, 3, true);
    bytes.setUint16(2, HTTP_CHUNK_RECORD.version, true);
    bytes.setBigUint64(HTTP_CHUNK_RECORD.offsets.length, 100n, true);
    bytes.setUint32(HTTP_CHUNK_RECORD.offsets.copied, 5, true);
    assert.throws(() => decodeHttpChunkRecord(bytes, 0, bytes.byteLength), new RegExp(`http chunk record: 5 bytes copied of a 100-byte call do not fit a ${HTTP_CHUNK_RECORD.size + 4}-byte record`));
    bytes.setUint32(HTTP_CHUNK_RECORD.offsets.copied, 4, true);
    assert.equal(decodeHttpChunkRecord(bytes, 0, bytes.byteLength).data.length, 4);
  });

  it('a record of another type, naming the field', () => {
    const bytes = Buffer.alloc(56);
    bytes.writeUInt16LE(9, 0);
    assert.throws(() => decodeProbeRecord(new DataView(bytes.buffer, bytes.byteOffset, 56), 0, 56), /probe record: expected type 1.*got type 9/);
  });

  it('a flow record of another layout version, rather than misread it', () => {
    const bytes = new DataView(new ArrayBuffer(FLOW_RECORD.size));
    bytes.setUint16(0, 2, true);
    bytes.setUint16(2, FLOW_RECORD.version + 1, true);
    assert.throws(() => decodeFlowRecord(bytes, 0, FLOW_RECORD.size), /flow record: expected type 2 v1 of 160 bytes, got type 2 v2 of 160 bytes/);
    bytes.setUint16(2, FLOW_RECORD.version, true);
    assert.equal(decodeFlowRecord(bytes, 0, FLOW_RECORD.size).kind, 0);
  });
});
