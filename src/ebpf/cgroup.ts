/**
 * cgroup v2 directories for the processes sidecarless traces or guards: create, move a process in, read the id
 * the kernel reports (bpf_get_current_cgroup_id() is the directory's inode number), walk a subtree, remove.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KernelError } from '../common/errors.js';
import { cgroup2Root } from './preflight.js';

export class Cgroup {
  private constructor(readonly path: string) {}

  /** Creates (or reuses) a cgroup below the cgroup v2 root, e.g. Cgroup.create('sidecarless-test-1234'). */
  static create(relativePath: string): Cgroup {
    const full = path.join(cgroup2Root(), relativePath);
    fs.mkdirSync(full, { recursive: true });
    return new Cgroup(full);
  }

  /**
   * An existing cgroup, by absolute path below the cgroup v2 mount or by path relative to it. An absolute path
   * elsewhere is refused rather than moved below the mount: it names something else than the caller thinks.
   */
  static at(cgroupPath: string): Cgroup {
    const root = cgroup2Root();
    const full = path.isAbsolute(cgroupPath) ? path.normalize(cgroupPath) : path.join(root, cgroupPath);
    if (full !== root && !full.startsWith(`${root}/`)) {
      throw new KernelError(`${cgroupPath} is not below the cgroup v2 mount ${root}: give a path below it, or relative to it`, {
        context: { component: 'cgroup' },
      });
    }
    if (!fs.existsSync(full)) throw new KernelError(`no cgroup at ${full}`, { context: { component: 'cgroup' } });
    return new Cgroup(full);
  }

  /** The id the kernel uses for this cgroup in BPF helpers. */
  get id(): bigint {
    return idAt(this.path);
  }

  /**
   * This cgroup and every one below it: id and path below the cgroup v2 mount ("/a/b", as /proc/<pid>/cgroup
   * writes it). A cgroup removed while the walk runs is left out with what was below it (it is gone); any other
   * error is thrown, so a walk that returns has seen every cgroup that lived throughout it.
   */
  descendants(): Array<{ id: bigint; path: string }> {
    const root = cgroup2Root();
    const found: Array<{ id: bigint; path: string }> = [];
    const pending = [this.path];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      let entries: fs.Dirent[];
      try {
        found.push({ id: idAt(dir), path: `/${path.relative(root, dir)}` });
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      for (const entry of entries) if (entry.isDirectory()) pending.push(path.join(dir, entry.name));
    }
    return found;
  }

  addProcess(pid: number): void {
    fs.writeFileSync(path.join(this.path, 'cgroup.procs'), String(pid));
  }

  /** Moves any processes left back to the root, then removes the directory. Safe to call twice. */
  remove(): void {
    if (!fs.existsSync(this.path)) return;
    const root = cgroup2Root();
    const leftovers = fs.readFileSync(path.join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const pid of leftovers) {
      try {
        fs.writeFileSync(path.join(root, 'cgroup.procs'), pid);
      } catch {
        // the process exited meanwhile
      }
    }
    fs.rmdirSync(this.path);
  }
}

/** The id of the cgroup at `fullPath`: bpf_get_current_cgroup_id() and kernfs ids are the directory's inode number. */
function idAt(fullPath: string): bigint {
  return fs.statSync(fullPath, { bigint: true }).ino;
}

/** Whether `inner` is `outer` or below it. */
function isWithin(inner: Cgroup, outer: Cgroup): boolean {
  return inner.path === outer.path || inner.path.startsWith(outer.path.endsWith('/') ? outer.path : `${outer.path}/`);
}

/** The cgroups of a list that are below no other of it, each once: a program attached to them, or a walk of them, covers the list. */
export function outermost(cgroups: readonly Cgroup[]): Cgroup[] {
  const distinct = cgroups.filter((cgroup, index) => cgroups.findIndex((other) => other.path === cgroup.path) === index);
  return distinct.filter((cgroup) => !distinct.some((other) => other !== cgroup && isWithin(cgroup, other)));
}

/** The cgroup v2 directory a process belongs to (its "0::" line in /proc/<pid>/cgroup). */
export function cgroupOfProcess(pid: number | 'self' = 'self'): Cgroup {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  return Cgroup.at(path.join(cgroup2Root(), line?.slice(3) ?? '/'));
}
