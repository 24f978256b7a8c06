/**
 * Every TS mirror of a bpf/include/records.h type, in one list. test/ebpf/records-layout.test.ts requires a mirror
 * here for each sl_* struct and enum of the compiled layouts object (bpf/selftest/layouts.bpf.c), a type there for
 * each mirror, and the two to agree in size, field offsets and enum values; a new records.h type or TS copy of
 * one is added on both sides or the test fails.
 *
 * A struct mirror lists every field C declares, explicit `_pad*` fields included, so that it accounts for every
 * byte of the layout and an encoder finds each padding field it must zero. Field sizes are not mirrored: with
 * no field left out, a field whose width changes moves the next offset or the struct size.
 *
 * An enum mirror gives its C enumerators as a prefix and TS keys: `prefix` + the key in upper snake case
 * (FlowFlag.rstSent under SL_FLOW_FLAG_ is SL_FLOW_FLAG_RST_SENT).
 */
import { CGROUP_MARK, CONN_STATE } from './conn-state.js';
import { EGRESS4_KEY } from './egress4-key.js';
import { FLOW_FLAG, FLOW_KIND, FLOW_RECORD, FLOW_SIDE } from './flow.js';
import { DROP_REASON, RECORD_HEADER, RECORD_TYPE } from './header.js';
import { HTTP_CAPTURE, HTTP_CHUNK_FLAG, HTTP_CHUNK_RECORD, HTTP_DIRECTION } from './http-chunk.js';
import { CGROUP_IDENTITY_KEY, ENDPOINT_KEY, ISOLATION_KEY, POLICY_DIRECTION, POLICY_FLAG, POLICY_KEY, PREFIX_KEY, UDP_FLOW_KEY } from './policy-keys.js';
import { PROBE_RECORD } from './probe.js';
import { POLICY_HOOK, VERDICT, VERDICT_RECORD } from './verdict.js';

export interface StructMirror {
  readonly struct: string;
  readonly size: number;
  readonly offsets: Readonly<Record<string, number>>;
}

export interface EnumMirror {
  readonly enum: string;
  readonly prefix: string;
  readonly values: Readonly<Record<string, number>>;
}

/** Versions live on the record mirrors; header.ts cannot import them (they import it), so they meet here. */
const RECORD_VERSION: EnumMirror = {
  enum: 'sl_record_version',
  prefix: 'SL_RECORD_VERSION_',
  values: { probe: PROBE_RECORD.version, flow: FLOW_RECORD.version, httpChunk: HTTP_CHUNK_RECORD.version, verdict: VERDICT_RECORD.version },
};

export const MIRRORS: ReadonlyArray<StructMirror | EnumMirror> = [
  RECORD_HEADER,
  PROBE_RECORD,
  FLOW_RECORD,
  HTTP_CHUNK_RECORD,
  EGRESS4_KEY,
  CONN_STATE,
  RECORD_TYPE,
  RECORD_VERSION,
  DROP_REASON,
  FLOW_SIDE,
  FLOW_KIND,
  FLOW_FLAG,
  CGROUP_MARK,
  HTTP_DIRECTION,
  HTTP_CHUNK_FLAG,
  HTTP_CAPTURE,
  VERDICT_RECORD,
  CGROUP_IDENTITY_KEY,
  ENDPOINT_KEY,
  PREFIX_KEY,
  ISOLATION_KEY,
  POLICY_KEY,
  UDP_FLOW_KEY,
  POLICY_DIRECTION,
  POLICY_FLAG,
  VERDICT,
  POLICY_HOOK,
];

/** The C enumerator a mirror's key stands for. */
export function enumeratorName(mirror: EnumMirror, key: string): string {
  return mirror.prefix + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}
