/**
 * The kernel's drop counters of an installation (the per-CPU `drops` map, bpf/include/common.bpf.h) read as what is
 * new since the last report. The totals already reported are kept in bpffs beside the counters (`drops_reported`,
 * a map only user space touches): the programs outlive the collector, so the collector that adopts them reports
 * what they dropped while none ran, and nothing that its predecessor already reported. A counter cannot be reset
 * instead: the kernel adds to it on any CPU at any time, and a read-then-zero would lose what lands in between.
 */
import { u32Codec, u64Codec } from './codecs.js';
import type { Installation } from './installation.js';
import type { BpfMap, PerCpuCounters } from './map.js';

const BPF_MAP_TYPE_ARRAY = 2;

export class ReportedDrops {
  private readonly counters: PerCpuCounters;
  private readonly reported: BpfMap<number, bigint>;

  constructor(installation: Installation, countersName = 'drops') {
    this.counters = installation.map(countersName).perCpuCounters();
    const shape = { type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: this.counters.size };
    this.reported = installation.userMap(`${countersName}_reported`, shape).typed(u32Codec, u64Codec);
  }

  /** Per counter index, what was counted since the last report; marks it reported. */
  take(): bigint[] {
    return this.counters.readAll().map((total, index) => {
      const reported = this.reported.lookup(index) ?? 0n;
      if (total === reported) return 0n;
      this.reported.update(index, total);
      return total - reported;
    });
  }
}
