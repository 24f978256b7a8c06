/**
 * struct sl_probe_record (bpf/include/records.h), written by bpf/selftest/probe.bpf.c for each traced kill(2).
 * PROBE_RECORD is registered in ./layouts.ts, whose test compares it with the compiled BTF;
 * test/ebpf/records-golden.test.ts pins decodeProbeRecord to compiler-made bytes (fixtures/sl_probe_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { decodeComm } from './comm.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';

export const PROBE_RECORD = {
  struct: 'sl_probe_record',
  size: 56,
  version: 1,
  offsets: { header: 0, pid: 16, tid: 20, seq: 24, target_pid: 32, signal: 36, comm: 40 },
} as const;

export interface ProbeRecord {
  monotonicNs: bigint;
  pid: number;
  tid: number;
  seq: bigint;
  targetPid: number;
  signal: number;
  comm: string;
}

const o = PROBE_RECORD.offsets;

export function decodeProbeRecord(view: DataView, offset: number, size: number): ProbeRecord {
  if (size < PROBE_RECORD.size || recordType(view, offset) !== RecordType.probe || recordVersion(view, offset) !== PROBE_RECORD.version) {
    throw new DecodeError(`probe record: expected type ${RecordType.probe} v${PROBE_RECORD.version} of ${PROBE_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`, { field: 'header' });
  }
  return {
    monotonicNs: recordMonotonicNs(view, offset),
    pid: view.getUint32(offset + o.pid, true),
    tid: view.getUint32(offset + o.tid, true),
    seq: view.getBigUint64(offset + o.seq, true),
    targetPid: view.getInt32(offset + o.target_pid, true),
    signal: view.getInt32(offset + o.signal, true),
    comm: decodeComm(view, offset + o.comm),
  };
}
