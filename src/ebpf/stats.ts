/**
 * In-kernel cost of BPF programs, for benchmarks: the kernel counts each program's run time only while run-time
 * statistics are on. BPF_ENABLE_STATS turns them on for as long as the returned fd stays open; unlike writing the
 * kernel.bpf_stats_enabled sysctl it is reference-counted, so it never switches statistics off under someone
 * else's measurement, and a crashed run switches them back off by closing the fd.
 */
import fs from 'node:fs';
import path from 'node:path';
import { kernelError } from './errno.js';
import { bpf, libcCalls } from './native.js';
import { pinsBelow } from './pins.js';

const BPF_STATS_RUN_TIME = 0;

export interface ProgramStats {
  /** The pin's file name, which is the program's name (src/ebpf/installation.ts); '' for a program found by its fd (fdinfo names none). */
  name: string;
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
    addProgram(programs, info, '');
  }
  return programs;
}

/**
 * The programs pinned below `directory` (in its programs/ folders, src/ebpf/installation.ts): those of an agent
 * whose programs outlive it, which holds no fd of them. Each is opened for a moment to read its counters.
 */
export function programStatsOfPins(directory: string): Map<number, ProgramStats> {
  const programs = new Map<number, ProgramStats>();
  for (const pin of pinsBelow(directory, 'programs')) {
    const fd = bpf.objGet(pin) as number;
    if (fd < 0) continue; // unpinned meanwhile
    try {
      addProgram(programs, fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'), path.basename(pin));
    } finally {
      libcCalls.close(fd);
    }
  }
  return programs;
}

/** One program's counters from its fdinfo text. */
function addProgram(programs: Map<number, ProgramStats>, info: string, name: string): void {
  const field = (key: string) => BigInt(new RegExp(`^${key}:\\s+(\\d+)$`, 'm').exec(info)?.[1] ?? 0);
  programs.set(Number(field('prog_id')), { name, runTimeNs: field('run_time_ns'), runCount: field('run_cnt'), recursionMisses: field('recursion_misses') });
}
