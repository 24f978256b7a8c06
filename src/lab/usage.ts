/**
 * What an agent process costs, read from outside so that any agent (ours, a peer in Go) is measured the same way:
 * CPU time from its own cgroup's cpu.stat (every thread and child, user and system time), the in-kernel run time
 * of the BPF programs it holds or pinned (../ebpf/stats.ts; needs run-time statistics on), memory from
 * /proc/<pid>/status.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type { Cgroup } from '../ebpf/cgroup.js';
import { programStatsOfPins, programStatsOfProcess } from '../ebpf/stats.js';

export interface MeasuredProcess {
  pid: number;
  cgroup: Cgroup;
  /** Where it pins programs that outlive it (and of which it holds no fd), when it does. */
  pinDirectory?: string;
}

export interface UsageSample {
  atMs: number;
  cpuUsec: number;
  bpfRunNs: bigint;
  recursionMisses: bigint;
}

export interface Usage {
  /** The agent process's CPU (user + system time) per second of the window. */
  process_cores: number;
  /** Its BPF programs' in-kernel run time per second of the window. */
  bpf_cores: number;
  total_cores: number;
  /** Runs of its programs the kernel skipped (nested tracing programs): events it never saw. */
  recursion_misses: number;
}

/** CPU time (user + system) of every process that ran in the cgroup and its descendants, in µs. */
export function cgroupCpuUsec(cgroup: Cgroup): number {
  return Number(/^usage_usec (\d+)$/m.exec(readFileSync(`${cgroup.path}/cpu.stat`, 'utf8'))?.[1]);
}

/** One thread's CPU so far and its name now (threads rename themselves: a pool thread takes each job's name). */
export interface ThreadCpu {
  name: string;
  cpuSeconds: number;
}

/**
 * CPU time (seconds) of the threads of the processes in the cgroup now, by thread id, with each thread's name: a
 * process's main thread as `main thread`, the others by their name (comm). Where a process's CPU goes: a Node role's
 * JavaScript runs on its main thread, the embedded ClickHouse engine's work on threads it names (MergeMutate: merges;
 * QueryCompPipeEx: queries and inserts). Keyed by id, not name: the engine's pool threads rename themselves per job,
 * so a name's total between two readings could hold what a thread ran under another name before the first.
 * From each thread's schedstat, the nanoseconds it ran as the scheduler charged them (to its cgroup's cpu.stat too),
 * not /proc's utime and stime, which are cut to 10 ms ticks. Threads that ended are not counted, nor processes that
 * ended; the cgroup's cpu.stat holds them all.
 */
export function cgroupThreadCpuSeconds(cgroup: Cgroup): Map<number, ThreadCpu> {
  const byThread = new Map<number, ThreadCpu>();
  for (const pid of readFileSync(`${cgroup.path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue; // exited since the list was read
    }
    for (const tid of tids) {
      try {
        const cpuSeconds = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e9;
        const name = tid === pid ? 'main thread' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trimEnd();
        byThread.set(Number(tid), { name, cpuSeconds });
      } catch {
        continue; // ended meanwhile
      }
    }
  }
  return byThread;
}

export function sampleUsage(agent: MeasuredProcess): UsageSample {
  const cpuUsec = cgroupCpuUsec(agent.cgroup);
  let bpfRunNs = 0n;
  let recursionMisses = 0n;
  const programs = new Map([...programStatsOfProcess(agent.pid), ...(agent.pinDirectory ? programStatsOfPins(agent.pinDirectory) : [])]);
  for (const stats of programs.values()) {
    bpfRunNs += stats.runTimeNs;
    recursionMisses += stats.recursionMisses;
  }
  return { atMs: Date.now(), cpuUsec, bpfRunNs, recursionMisses };
}

/** Cores between two samples; `seconds` divides instead of the time between them (work spread past a window). */
export function usageBetween(from: UsageSample, to: UsageSample, seconds = (to.atMs - from.atMs) / 1000): Usage {
  const processCores = (to.cpuUsec - from.cpuUsec) / 1e6 / seconds;
  const bpfCores = Number(to.bpfRunNs - from.bpfRunNs) / 1e9 / seconds;
  return {
    process_cores: round(processCores, 4),
    bpf_cores: round(bpfCores, 4),
    total_cores: round(processCores + bpfCores, 4),
    recursion_misses: Number(to.recursionMisses - from.recursionMisses),
  };
}

/** Peak resident memory of the process so far (VmHWM), in MB. */
export function peakRssMegabytes(pid: number): number {
  return Math.round(peakRssKb(pid) / 1024);
}

function peakRssKb(pid: number): number {
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
}

/**
 * The peak resident memory of the processes in the cgroup now, summed, in MB: where no memory controller is
 * enabled for cgroup v2 (a hybrid hierarchy, as here) there is no memory.peak to read. Pages two processes share
 * count twice. A process that ended meanwhile counts nothing.
 */
export function cgroupPeakRssMegabytes(cgroup: Cgroup): number {
  const pids = readFileSync(`${cgroup.path}/cgroup.procs`, 'utf8').split('\n').filter(Boolean).map(Number);
  const kb = pids.reduce((sum, pid) => {
    try {
      return sum + peakRssKb(pid);
    } catch {
      return sum; // exited since the list was read
    }
  }, 0);
  return round(kb / 1024, 1);
}

export function round(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}
