/**
 * What the kernel programs pinned below a directory lost so far, for benchmarks that must tell a rate the agent
 * keeps up with from one it only survives: every count of their per-CPU `drops` maps (a full ring above all:
 * bpf/include/common.bpf.h names the reasons) plus the runs the kernel skipped (recursion misses, each a lost call
 * or segment). Cumulative: a caller takes the difference around a load. Read from the pins rather than from the
 * agent's logs, which report kernel drops only every few seconds (src/collector/collector.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PinnedMap } from '../ebpf/pinned-map.js';
import { programStatsOfPins } from '../ebpf/stats.js';

export function kernelLossesOfPins(directory: string): bigint {
  if (!fs.existsSync(directory)) return 0n;
  let lost = 0n;
  for (const entry of fs.readdirSync(directory, { recursive: true, encoding: 'utf8' })) {
    if (path.basename(entry) !== 'drops' || path.basename(path.dirname(entry)) !== 'maps') continue;
    const map = PinnedMap.open(path.join(directory, entry));
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
