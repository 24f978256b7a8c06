/**
 * What the kernel programs pinned below a directory lost so far, for benchmarks that must tell a rate the agent
 * keeps up with from one it only survives: every count of their per-CPU `drops` maps (a full ring above all:
 * bpf/include/common.bpf.h names the reasons) plus the runs the kernel skipped (recursion misses, each a lost call
 * or segment). Cumulative: a caller takes the difference around a load. Read from the pins rather than from the
 * agent's logs, which report kernel drops only every few seconds (src/collector/collector.ts). The same counts as
 * the collector's own dropCounters and skippedRuns (src/ebpf/reported-drops.ts), reached through the pins instead
 * of an Installation, which only the agent that loaded the programs holds.
 */
import path from 'node:path';
import { PinnedMap } from '../ebpf/pinned-map.js';
import { pinsBelow } from '../ebpf/pins.js';
import { programStatsOfPins } from '../ebpf/stats.js';

export function kernelLossesOfPins(directory: string): bigint {
  let lost = 0n;
  // `drops` by its exact name: the totals a collector already reported sit beside it as drops_reported.
  for (const pin of pinsBelow(directory, 'maps').filter((pin) => path.basename(pin) === 'drops')) {
    const map = PinnedMap.open(pin);
    if (!map) continue; // unpinned meanwhile
    try {
      for (const count of map.perCpuCounters().readAll()) lost += count;
    } finally {
      map.close();
    }
  }
  for (const program of programStatsOfPins(directory).values()) lost += program.recursionMisses;
  return lost;
}

/**
 * `work`'s result and how far the running total `soFar` moved while it ran: what a load lost. Without a total (a mode
 * with nothing to lose, as the proxies for the benches), the loss is undefined.
 */
export async function lostDuring<T>(soFar: () => bigint, work: () => Promise<T>): Promise<{ result: T; lost: number }>;
export async function lostDuring<T>(soFar: (() => bigint) | undefined, work: () => Promise<T>): Promise<{ result: T; lost: number | undefined }>;
export async function lostDuring<T>(soFar: (() => bigint) | undefined, work: () => Promise<T>): Promise<{ result: T; lost: number | undefined }> {
  const before = soFar?.();
  const result = await work();
  return { result, lost: before === undefined ? undefined : Number(soFar!() - before) };
}
