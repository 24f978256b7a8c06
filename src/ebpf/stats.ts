/**
 * In-kernel cost of BPF programs, for benchmarks: the kernel counts each program's run time only while run-time
 * statistics are on. BPF_ENABLE_STATS turns them on for as long as the returned fd stays open; unlike writing the
 * kernel.bpf_stats_enabled sysctl it is reference-counted, so it never switches statistics off under someone
 * else's measurement, and a crashed run switches them back off by closing the fd.
 */
import fs from 'node:fs';
import { kernelError } from './errno.js';
import { bpf, libcCalls } from './native.js';

const BPF_STATS_RUN_TIME = 0;

export interface ProgramStats {
  runTimeNs: bigint;
  runCount: bigint;
  /** Runs skipped because a tracing program was already running on that CPU (see PLATFORM.md). */
  recursionMisses: bigint;
}

/** Turns run-time statistics on until release() is called. */
export function enableRunTimeStats(): { release(): void } {
  const fd = bpf.enableStats(BPF_STATS_RUN_TIME) as number;
  if (fd < 0) throw kernelError('bpf_enable_stats(BPF_STATS_RUN_TIME)', -fd, 'stats');
  let open = true;
  return {
    release() {
      if (open) (open = false), libcCalls.close(fd);
    },
  };
}

/**
 * The programs a process holds an fd of, by program id, from /proc/<pid>/fdinfo (which reports each program's
 * counters): the programs of an agent that loaded them itself, whatever it was written with.
 */
export function programStatsOfProcess(pid: number): Map<number, ProgramStats> {
  const programs = new Map<number, ProgramStats>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let info: string;
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    const field = (name: string) => BigInt(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(info)?.[1] ?? 0);
    programs.set(Number(field('prog_id')), { runTimeNs: field('run_time_ns'), runCount: field('run_cnt'), recursionMisses: field('recursion_misses') });
  }
  return programs;
}
