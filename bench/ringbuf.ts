/**
 * bench/ringbuf: records/s drained and decoded by the mapped ring reader vs libbpf's callback path, same run.
 *
 *   1. Load bpf/selftest/probe.bpf.c with a 16 MiB ring and `burst` records per traced kill(2): one syscall fills the ring
 *      with BURST records, so the producer's cost stays out of the measured drain.
 *   2. For each round and each reader (alternating, so machine noise hits both alike): fill, then time the drain
 *      with a decode of every field into one reused object (CPU time of this process, i.e. one core).
 *   3. Print one JSON line: records/s per reader, their ratio, kernel drops, and whether the floor (mapped >= 5 M/s
 *      and >= 5x callback) holds.
 */
import { BpfObject, objectPath } from '../src/ebpf/object.js';
import { openRingReader, type RecordHandler, type RingReader } from '../src/ebpf/ringbuf.js';
import { PROBE_RECORD } from '../src/ebpf/records/probe.js';

const RING_BYTES = 16 * 1024 * 1024;
const BURST = 200_000; // 200k * 64 B = 12.8 MB: fits the ring, so a full drain never meets a drop
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const FLOOR_RECORDS_PER_S = 5_000_000;
const FLOOR_RATIO = 5;

/** Decodes every field of sl_probe_record into one reused object (no allocation per record on our side). */
function decodingHandler(): RecordHandler {
  const o = PROBE_RECORD.offsets;
  const current = { ts: 0n, pid: 0, tid: 0, seq: 0n, targetPid: 0, signal: 0, comm0: 0 };
  return (view, offset) => {
    current.ts = view.getBigUint64(offset + 8, true);
    current.pid = view.getUint32(offset + o.pid, true);
    current.tid = view.getUint32(offset + o.tid, true);
    current.seq = view.getBigUint64(offset + o.seq, true);
    current.targetPid = view.getInt32(offset + o.target_pid, true);
    current.signal = view.getInt32(offset + o.signal, true);
    current.comm0 = view.getUint8(offset + o.comm);
  };
}

function cpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

function measureDrain(reader: RingReader, handler: RecordHandler): { records: number; seconds: number } {
  process.kill(process.pid, 0); // fills the ring with BURST records
  const start = cpuSeconds();
  let records = 0;
  for (let drained = reader.drain(handler); drained > 0; drained = reader.drain(handler)) records += drained;
  return { records, seconds: cpuSeconds() - start };
}

export async function run(): Promise<Record<string, unknown>> {
  const object = BpfObject.load(objectPath('selftest/probe'), {
    rodata: { target_tgid: process.pid, burst: BURST },
    maxEntries: { probe_ring: RING_BYTES },
  });
  try {
    object.program('probe_kill').attachTracepoint('syscalls', 'sys_enter_kill');
    const readers = { mapped: openRingReader(object, 'probe_ring', 'mapped'), callback: openRingReader(object, 'probe_ring', 'callback') };
    const totals = { mapped: { records: 0, seconds: 0 }, callback: { records: 0, seconds: 0 } };
    const handler = decodingHandler();
    // Warm-up (JIT, page faults of the fresh mapping), counted as read but not timed.
    const warmUp = measureDrain(readers.mapped, handler).records + measureDrain(readers.callback, handler).records;
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of ['mapped', 'callback'] as const) {
        const { records, seconds } = measureDrain(readers[kind], handler);
        totals[kind].records += records;
        totals[kind].seconds += seconds;
      }
    }
    const rate = (kind: 'mapped' | 'callback') => Math.round(totals[kind].records / totals[kind].seconds);
    const drops = object.map('drops').perCpuCounters().read(0);
    const mapped = rate('mapped');
    const callback = rate('callback');
    const ratio = Number((mapped / callback).toFixed(2));
    return {
      bench: 'ringbuf',
      rounds: ROUNDS,
      records_per_round: BURST,
      record_bytes: PROBE_RECORD.size,
      mapped_records_per_cpu_s: mapped,
      callback_records_per_cpu_s: callback,
      mapped_vs_callback: ratio,
      records_expected: (ROUNDS + 1) * BURST * 2,
      records_read: totals.mapped.records + totals.callback.records + warmUp,
      kernel_drops: Number(drops),
      floor: { mapped_records_per_cpu_s: FLOOR_RECORDS_PER_S, mapped_vs_callback: FLOOR_RATIO },
      meets_floor: mapped >= FLOOR_RECORDS_PER_S && ratio >= FLOOR_RATIO && drops === 0n,
    };
  } finally {
    object.close();
  }
}
