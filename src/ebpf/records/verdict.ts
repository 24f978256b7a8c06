/**
 * struct sl_verdict_record (bpf/include/records.h), written by bpf/policy.bpf.c: one policy decision. VERDICT_RECORD
 * and the enum mirrors below are registered in ./layouts.ts, whose test compares them with the compiled BTF;
 * test/ebpf/records-golden.test.ts pins decodeVerdictRecord to compiler-made bytes (fixtures/sl_verdict_record.v1.hex).
 */
import { DecodeError } from '../../common/errors.js';
import { formatAddress } from './address.js';
import { RecordType, recordMonotonicNs, recordType, recordVersion } from './header.js';

export const VERDICT_RECORD = {
  struct: 'sl_verdict_record',
  size: 96,
  version: 1,
  offsets: {
    header: 0,
    cgroup_id: 16,
    subject: 24,
    peer: 32,
    peer_prefix: 40,
    src_addr: 48,
    dst_addr: 64,
    src_port: 80,
    dst_port: 82,
    protocol: 84,
    direction: 85,
    verdict: 86,
    hook: 87,
    generation: 88,
    _pad0: 92,
  },
} as const;

export const VERDICT = { enum: 'sl_verdict', prefix: 'SL_VERDICT_', values: { allow: 1, deny: 2, auditDeny: 3, auditAllow: 4 } } as const;
export const Verdict = VERDICT.values;

export const POLICY_HOOK = { enum: 'sl_policy_hook', prefix: 'SL_HOOK_', values: { connect: 1, sendmsg: 2, ingress: 3 } } as const;
export const PolicyHook = POLICY_HOOK.values;

export interface VerdictRecord {
  /** When the decision was made, kernel monotonic ns. */
  monotonicNs: bigint;
  cgroupId: bigint;
  subject: bigint;
  /** Pod identity of the peer address; 0n: not a known pod. */
  peer: bigint;
  /** CIDR identity of the peer address's longest ipBlock prefix; 0n: none. */
  peerPrefix: bigint;
  /** The end that opens the connection or sends the datagram (at egress: all zero before the socket is bound). */
  srcAddress: string;
  dstAddress: string;
  srcPort: number;
  dstPort: number;
  protocol: number;
  /** Verdict.* */
  verdict: number;
  /** PolicyDirection.*: the subject's side. */
  direction: number;
  /** PolicyHook.* */
  hook: number;
  generation: number;
}

const o = VERDICT_RECORD.offsets;

export function decodeVerdictRecord(view: DataView, offset: number, size: number): VerdictRecord {
  if (size < VERDICT_RECORD.size || recordType(view, offset) !== RecordType.verdict || recordVersion(view, offset) !== VERDICT_RECORD.version) {
    throw new DecodeError(
      `verdict record: expected type ${RecordType.verdict} v${VERDICT_RECORD.version} of ${VERDICT_RECORD.size} bytes, got type ${recordType(view, offset)} v${recordVersion(view, offset)} of ${size} bytes`,
      { field: 'header' },
    );
  }
  return {
    monotonicNs: recordMonotonicNs(view, offset),
    cgroupId: view.getBigUint64(offset + o.cgroup_id, true),
    subject: view.getBigUint64(offset + o.subject, true),
    peer: view.getBigUint64(offset + o.peer, true),
    peerPrefix: view.getBigUint64(offset + o.peer_prefix, true),
    srcAddress: formatAddress(view, offset + o.src_addr),
    dstAddress: formatAddress(view, offset + o.dst_addr),
    srcPort: view.getUint16(offset + o.src_port, true),
    dstPort: view.getUint16(offset + o.dst_port, true),
    protocol: view.getUint8(offset + o.protocol),
    direction: view.getUint8(offset + o.direction),
    verdict: view.getUint8(offset + o.verdict),
    hook: view.getUint8(offset + o.hook),
    generation: view.getUint32(offset + o.generation, true),
  };
}
