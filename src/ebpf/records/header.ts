/**
 * struct sl_record_header (bpf/include/records.h): the 16 bytes every ring record starts with, and the enums that
 * describe any record. The mirrors here are registered in ./layouts.ts, whose test compares them with the compiled
 * BTF; test/ebpf/records-golden.test.ts pins the readers to compiler-made bytes (fixtures/sl_record_header.hex).
 */
export const RECORD_HEADER = {
  struct: 'sl_record_header',
  size: 16,
  offsets: { type: 0, version: 2, size: 4, ts_ns: 8 },
} as const;

export const RECORD_TYPE = { enum: 'sl_record_type', prefix: 'SL_RECORD_', values: { probe: 1, flow: 2, httpChunk: 3, verdict: 4 } } as const;
export const RecordType = RECORD_TYPE.values;

export function recordType(view: DataView, offset: number): number {
  return view.getUint16(offset + RECORD_HEADER.offsets.type, true);
}

export function recordVersion(view: DataView, offset: number): number {
  return view.getUint16(offset + RECORD_HEADER.offsets.version, true);
}

/** Kernel monotonic time of the record; see src/ebpf/clock.ts for the wall-clock conversion. */
export function recordMonotonicNs(view: DataView, offset: number): bigint {
  return view.getBigUint64(offset + RECORD_HEADER.offsets.ts_ns, true);
}

/** enum sl_drop_reason, by index of the per-CPU `drops` map. */
export const KERNEL_DROP_REASONS = ['ringbuf_full', 'conn_table_full', 'tracking_failed', 'call_table_full', 'copy_failed'] as const;

/** The same list as an enum mirror; SL_DROP_REASON_COUNT, the size of `drops`, is the list's length. */
export const DROP_REASON = {
  enum: 'sl_drop_reason',
  prefix: 'SL_DROP_',
  values: { ...Object.fromEntries(KERNEL_DROP_REASONS.map((reason, index) => [reason, index])), reason_count: KERNEL_DROP_REASONS.length },
} as const;
