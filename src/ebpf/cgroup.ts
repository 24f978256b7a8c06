/**
 * cgroup v2 directories for the processes sidecarless traces or guards: create, move a process in, read the id
 * the kernel reports (bpf_get_current_cgroup_id() is the directory's inode number), walk a subtree, remove.
 */
import fs from 'node:fs';
import path from 'node:path';
import { KernelError } from '../common/errors.js';
import { cgroup2Root } from './preflight.js';

/** How long remove() waits for exiting processes to leave a cgroup. */
const REMOVE_WAIT_MS = 2_000;
/** Something to block on for a few milliseconds between remove()'s attempts (it is synchronous). */
const pause = new Int32Array(new SharedArrayBuffer(4));

export class Cgroup {
  /**
   * `root`: the cgroup v2 mount it is below, found once (from /proc/self/mountinfo) rather than on every walk: the
   * collector walks its traced cgroups every collector.cgroupScanMs, and reading the mount table was half of a walk.
   */
  private constructor(
    readonly path: string,
    private readonly root: string,
  ) {}

  /** Creates (or reuses) a cgroup below the cgroup v2 root, e.g. Cgroup.create('sidecarless-test-1234'). */
  static create(relativePath: string): Cgroup {
    const root = cgroup2Root();
    const full = path.join(root, relativePath);
    fs.mkdirSync(full, { recursive: true });
    return new Cgroup(full, root);
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
    return new Cgroup(full, root);
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
    const root = this.root;
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

  /**
   * Moves any processes left back to the root, then removes the directory. Safe to call twice. A process that was
   * just killed leaves its cgroup only once the kernel has torn it down, a moment after it is gone from
   * cgroup.procs; until then rmdir fails with EBUSY, so it is retried for up to REMOVE_WAIT_MS.
   */
  remove(): void {
    if (!fs.existsSync(this.path)) return;
    const root = this.root;
    const deadline = Date.now() + REMOVE_WAIT_MS;
    for (;;) {
      const leftovers = fs.readFileSync(path.join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
      for (const pid of leftovers) {
        try {
          fs.writeFileSync(path.join(root, 'cgroup.procs'), pid);
        } catch {
          // the process exited meanwhile
        }
      }
      try {
        fs.rmdirSync(this.path);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EBUSY' || Date.now() >= deadline) throw error;
        Atomics.wait(pause, 0, 0, 10);
      }
    }
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

/**
 * The cgroup v2 directory a process belongs to. /proc/<pid>/cgroup names it ("0::<path>") relative to this
 * process's cgroup namespace: on a host, below the cgroup v2 mount. A container with a namespace of its own
 * (Kubernetes gives one to every unprivileged container on cgroup v2) reads "0::/" for its own cgroup, while the
 * collector's and enforcer's pods mount the host's tree: mountinfo shows that mount's root as seen from the
 * namespace ("/../.." when the namespace's root is two levels below it), so the directory is searched that many
 * levels deeper, as the one whose cgroup.procs lists the process. Taken as a path below the mount, "/" would name the
 * host's root, and the collector would not leave its own connections out.
 */
export function cgroupOfProcess(pid: number | 'self' = 'self'): Cgroup {
  const line = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'));
  const inNamespace = line?.slice(3) ?? '/';
  const root = cgroup2Root();
  const levelsAbove = namespaceLevelsAbove(fs.readFileSync('/proc/self/mountinfo', 'utf8'), root);
  if (levelsAbove === 0) return Cgroup.at(path.join(root, inNamespace));
  const members = String(pid === 'self' ? process.pid : pid);
  const depth = levelsAbove + segments(inNamespace).length;
  const suffix = inNamespace === '/' ? '' : inNamespace;
  const found = Cgroup.at(root)
    .descendants()
    .filter((cgroup) => segments(cgroup.path).length === depth && cgroup.path.endsWith(suffix))
    .find((cgroup) => listsProcess(path.join(root, cgroup.path), members));
  if (found === undefined) {
    throw new KernelError(`no cgroup below ${root} lists process ${members} (its cgroup namespace's root is ${levelsAbove} levels below the mount)`, {
      context: { component: 'cgroup' },
    });
  }
  return Cgroup.at(path.join(root, found.path));
}

/**
 * How many levels the cgroup v2 mount at `mountPoint` (the visible one: the last listed) reaches above this
 * process's cgroup namespace: its mountinfo root is "/" when the namespace's root is the mount's, "/.." repeated
 * when the namespace's root is below it.
 */
export function namespaceLevelsAbove(mountinfo: string, mountPoint: string): number {
  const mount = mountinfo
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[4] === mountPoint && fields[fields.indexOf('-') + 1] === 'cgroup2')
    .at(-1);
  const above = /^((?:\/\.\.)+)$/.exec(mount?.[3] ?? '/');
  return above ? above[1]!.length / 3 : 0;
}

function segments(cgroupPath: string): string[] {
  return cgroupPath.split('/').filter((segment) => segment !== '');
}

function listsProcess(directory: string, pid: string): boolean {
  try {
    return fs.readFileSync(path.join(directory, 'cgroup.procs'), 'utf8').split('\n').includes(pid);
  } catch {
    // Removed while searched: not the process's, which lives.
    return false;
  }
}
