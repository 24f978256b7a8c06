/**
 * Kernel counters of an installation read as what is new since the last report: the per-CPU `drops` map
 * (bpf/include/common.bpf.h) and the recursion misses of its pinned programs. The totals already reported are kept
 * in bpffs beside them (`<name>_reported`, a map only user space touches): the programs outlive the collector, so
 * the collector that adopts them reports what happened while none ran, and nothing that its predecessor already
 * reported. A counter cannot be reset instead: the kernel adds to it on any CPU at any time, and a read-then-zero
 * would lose what lands in between.
 */
import { u32Codec, u64Codec } from './codecs.js';
import type { Installation } from './installation.js';
import type { BpfMap } from './map.js';

const BPF_MAP_TYPE_ARRAY = 2;

/** Cumulative kernel totals, one per index, and the name their reported copy is kept under. */
export interface KernelTotals {
  name: string;
  size: number;
  read(): bigint[];
}

/** The installation's per-CPU drop counters (`drops`, indexed by enum sl_drop_reason), summed over the CPUs. */
export function dropCounters(installation: Installation, name = 'drops'): KernelTotals {
  const counters = installation.map(name).perCpuCounters();
  return { name, size: counters.size, read: () => counters.readAll() };
}

/** One total: the runs the kernel skipped of the installation's pinned `programs`, summed. */
export function skippedRuns(installation: Installation, programs: readonly string[]): KernelTotals {
  return { name: 'skipped', size: 1, read: () => [programs.reduce((sum, program) => sum + installation.recursionMisses(program), 0n)] };
}

export class ReportedTotals {
  private readonly reported: BpfMap<number, bigint>;
  /**
   * The map's contents, read once: only the collector holding the pin directory's lock writes it, so a report
   * (every 5 s when idle) costs a write only when a total moved, not a lookup per index.
   */
  private readonly known: bigint[];

  constructor(
    installation: Installation,
    private readonly totals: KernelTotals,
  ) {
    const shape = { type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 8, maxEntries: totals.size };
    this.reported = installation.userMap(`${totals.name}_reported`, shape).typed(u32Codec, u64Codec);
    this.known = Array.from({ length: totals.size }, (_, index) => this.reported.lookup(index) ?? 0n);
  }

  /** Per index, what was counted since the last report; marks it reported. */
  take(): bigint[] {
    return this.totals.read().map((total, index) => {
      const reported = this.known[index] ?? 0n;
      if (total <= reported) return 0n;
      this.reported.update(index, total);
      this.known[index] = total;
      return total - reported;
    });
  }
}
