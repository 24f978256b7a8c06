/**
 * struct sl_record_header (bpf/include/records.h): the 16 bytes every ring record starts with.
 * Offsets are pinned by test/ebpf/records-layout.test.ts against the compiled objects' BTF.
 */
export const RECORD_HEADER = {
  struct: 'sl_record_header',
  size: 16,
  offsets: { type: 0, version: 2, size: 4, ts_ns: 8 },
} as const;

/** enum sl_record_type */
export const RecordType = {
  probe: 1,
  flow: 2,
} as const;

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
export const KERNEL_DROP_REASONS = ['ringbuf_full', 'conn_table_full'] as const;
