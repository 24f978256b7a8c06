/**
 * What each component of a bench/overhead mode costs, read from outside as for any process: CPU from its cgroup's
 * cpu.stat (usage_usec: every thread and child, user and system), the BPF programs' in-kernel run time from the
 * kernel's run-time statistics (a program runs in the context of whatever process or softirq triggered it, so its
 * time also shows in that cgroup: it is reported apart, as what the mode's agents cost, never added to a
 * component's), memory as the summed peak RSS of the processes in the cgroup (usage.ts: no memory controller on
 * cgroup v2 here).
 */
import type { Cgroup } from '../src/ebpf/cgroup.js';
import { cgroupCpuUsec, cgroupPeakRssMegabytes, cgroupThreadCpuSeconds, round, type ThreadCpu } from '../src/lab/usage.js';

export interface Component {
  name: string;
  cgroup: Cgroup;
}

/** The components measured in a mode, and where its BPF programs' run time (ns so far, by program name) comes from (ebpf mode only). */
export interface Meter {
  components: readonly Component[];
  bpfRunNs?: () => ReadonlyMap<string, bigint>;
}

export const BPF = 'bpf programs';

export interface Sample {
  atMs: number;
  cpuUsec: Map<string, number>;
  /** Per component, its threads' CPU so far, by thread id (cgroupThreadCpuSeconds). */
  threadCpuSeconds: Map<string, Map<number, ThreadCpu>>;
  bpfRunNs: ReadonlyMap<string, bigint>;
}

export function sample(meter: Meter): Sample {
  return {
    atMs: Date.now(),
    cpuUsec: new Map(meter.components.map((component) => [component.name, cgroupCpuUsec(component.cgroup)])),
    threadCpuSeconds: new Map(meter.components.map((component) => [component.name, cgroupThreadCpuSeconds(component.cgroup)])),
    bpfRunNs: meter.bpfRunNs?.() ?? new Map(),
  };
}

/** Cores of each component (and BPF, when the meter has programs) between two samples, per `seconds`. */
export function coresBetween(meter: Meter, from: Sample, to: Sample, seconds: number): Record<string, number> {
  const cores: Record<string, number> = {};
  for (const [name, usec] of to.cpuUsec) cores[name] = round((usec - from.cpuUsec.get(name)!) / 1e6 / seconds, 4);
  if (meter.bpfRunNs) cores[BPF] = round(Number(totalNs(to.bpfRunNs) - totalNs(from.bpfRunNs)) / 1e9 / seconds, 4);
  return cores;
}

/**
 * Cores of each component's threads between two samples, per `seconds`, by thread name (each thread's CPU between
 * the samples, under its name at the second), the costliest first: where a component's cores go (its JavaScript, the
 * embedded engine's merges and inserts). Threads that ended before the second sample are missing, so a component's
 * threads may sum to less than its cores, never more, and a component whose processes all ended (the load
 * generator's, one per load) is left out.
 */
export function threadCoresBetween(from: Sample, to: Sample, seconds: number): Record<string, Record<string, number>> {
  const cores: Record<string, Record<string, number>> = {};
  for (const [component, threads] of to.threadCpuSeconds) {
    const before = from.threadCpuSeconds.get(component);
    const byName = new Map<string, number>();
    for (const [tid, { name, cpuSeconds }] of threads) {
      byName.set(name, (byName.get(name) ?? 0) + cpuSeconds - (before?.get(tid)?.cpuSeconds ?? 0));
    }
    const used = [...byName].map(([name, cpuSeconds]) => [name, round(cpuSeconds / seconds, 4)] as const);
    const busy = used.filter(([, threadCores]) => threadCores > 0).sort(([, a], [, b]) => b - a);
    if (busy.length > 0) cores[component] = Object.fromEntries(busy);
  }
  return cores;
}

/**
 * Cores of each BPF program between two samples, per `seconds`, the costliest first: where the BPF programs' part
 * goes. A program pinned only after `from` counts from zero.
 */
export function programCoresBetween(from: Sample, to: Sample, seconds: number): Record<string, number> {
  const cores = [...to.bpfRunNs].map(([name, ns]) => [name, round(Number(ns - (from.bpfRunNs.get(name) ?? 0n)) / 1e9 / seconds, 6)] as const);
  return Object.fromEntries(cores.sort(([, a], [, b]) => b - a));
}

const totalNs = (byProgram: ReadonlyMap<string, bigint>) => [...byProgram.values()].reduce((sum, ns) => sum + ns, 0n);

/** Peak RSS of each component's processes, MB, while they still run. */
export function memoryMegabytes(meter: Meter): Record<string, number> {
  return Object.fromEntries(meter.components.map((component) => [component.name, cgroupPeakRssMegabytes(component.cgroup)]));
}
