/**
 * What the machine under a bench does besides the bench, so that figures from two machines of the same kind (or two
 * sessions) can be told apart: the CPU time the hypervisor took from this guest over the run (steal), the kernel's
 * DAMON reclaim running under it (kdamonds that are on, with their schemes' actions: `pageout` takes pages from
 * the bench's processes), the transparent huge page mode, and whether the filesystem the bench writes to keeps a
 * journal (ext4 without one checks every recently deleted inode when it allocates one, so each file the embedded
 * ClickHouse engine creates costs more the more it has deleted: measured 34 -> 51 ms of CPU per small insert
 * within minutes on such a disk, a steady 31-35 ms on tmpfs).
 *
 * Read from /proc and /sys only; what cannot be read is reported as unknown (null), never guessed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';

/** The machine's CPU time so far (/proc/stat, first line), in clock ticks. */
export interface CpuTimes {
  total: number;
  steal: number;
}

export interface Filesystem {
  mountPoint: string;
  type: string;
  source: string;
}

export interface HostConditions {
  /** Share of the machine's CPU time over the run that the hypervisor took (steal), in percent. */
  cpu_steal_percent: number | null;
  /** Each running kdamond's scheme actions (e.g. "pageout"); empty when none runs. */
  damon: string[];
  transparent_hugepage: string | null;
  filesystem: { path: string; type: string; journal: boolean | null } | null;
}

/** user, nice, system, idle, iowait, irq, softirq, steal of the `cpu` line; guest time is inside user already. */
export function parseCpuTimes(procStat: string): CpuTimes | undefined {
  const line = procStat.split('\n').find((text) => text.startsWith('cpu '));
  const fields = line?.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields === undefined || fields.length < 8 || fields.some((value) => !Number.isFinite(value))) return undefined;
  return { total: fields.reduce((sum, value) => sum + value, 0), steal: fields[7]! };
}

export function cpuTimes(): CpuTimes | undefined {
  return parseCpuTimes(readFileSync('/proc/stat', 'utf8'));
}

/** The mount that holds `path` (the longest mount point above it) in /proc/self/mountinfo text. */
export function mountOf(mountinfo: string, path: string): Filesystem | undefined {
  const target = resolve(path);
  let best: Filesystem | undefined;
  for (const line of mountinfo.split('\n')) {
    // <id> <parent> <major:minor> <root> <mount point> <options> [optional fields...] - <type> <source> <super options>
    const [before, after] = line.split(' - ');
    const mountPoint = before?.split(' ')[4]?.replaceAll('\\040', ' ');
    const [type, source] = after?.split(' ') ?? [];
    if (mountPoint === undefined || type === undefined || source === undefined) continue;
    const holds = target === mountPoint || target.startsWith(mountPoint === '/' ? '/' : `${mountPoint}/`);
    if (holds && (best === undefined || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, type, source };
  }
  return best;
}

/**
 * Whether the filesystem keeps a journal: for ext4, whether jbd2 runs for its device; null for other types (xfs
 * and btrfs always log; tmpfs has nothing to log) and when it cannot be told.
 */
function journalOf(filesystem: Filesystem): boolean | null {
  if (filesystem.type !== 'ext4' || !existsSync('/proc/fs/jbd2')) return null;
  const device = basename(filesystem.source);
  return readdirSync('/proc/fs/jbd2').some((name) => name.startsWith(`${device}-`));
}

/** The share of the CPU time between two readings that the hypervisor took, in percent; null when none passed. */
export function stealPercent(start: CpuTimes | undefined, end: CpuTimes | undefined): number | null {
  if (start === undefined || end === undefined || end.total <= start.total) return null;
  return Number((((end.steal - start.steal) / (end.total - start.total)) * 100).toFixed(2));
}

/** The selected mode of sysfs' `transparent_hugepage/enabled` text ("always [madvise] never" -> "madvise"). */
export function transparentHugepageMode(text: string | undefined): string | null {
  return /\[(\w+)\]/.exec(text ?? '')?.[1] ?? null;
}

/** The scheme actions of every kdamond that is on, under DAMON's sysfs admin directory (`root`). */
export function damonActions(root = '/sys/kernel/mm/damon/admin/kdamonds'): string[] {
  const actions: string[] = [];
  for (const kdamond of listNumbered(root)) {
    if (readText(`${root}/${kdamond}/state`) !== 'on') continue;
    for (const context of listNumbered(`${root}/${kdamond}/contexts`)) {
      const schemes = `${root}/${kdamond}/contexts/${context}/schemes`;
      for (const scheme of listNumbered(schemes)) actions.push(readText(`${schemes}/${scheme}/action`) ?? 'unknown');
    }
  }
  return actions;
}

/** The machine's conditions over a run that began at `start` (cpuTimes()), for the filesystem holding `path`. */
export function hostConditions(start: CpuTimes | undefined, path: string): HostConditions {
  const mount = existsSync('/proc/self/mountinfo') ? mountOf(readFileSync('/proc/self/mountinfo', 'utf8'), path) : undefined;
  return {
    cpu_steal_percent: stealPercent(start, cpuTimes()),
    damon: damonActions(),
    transparent_hugepage: transparentHugepageMode(readText('/sys/kernel/mm/transparent_hugepage/enabled')),
    filesystem: mount ? { path: resolve(path), type: mount.type, journal: journalOf(mount) } : null,
  };
}

/** The numbered entries of a sysfs directory (kdamonds, contexts, schemes); none when it does not exist. */
function listNumbered(directory: string): string[] {
  if (!existsSync(directory)) return [];
  return readdirSync(directory).filter((name) => /^\d+$/.test(name));
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}
