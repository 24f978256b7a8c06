/**
 * Kernel programs that outlive the process that loaded them. An installation is one object's programs, attached
 * through pinned links, and the maps user space reads, pinned beside them, in a pin directory (one per node):
 *
 *   <pins>/maps/<name>                        maps shared by every object (bpf/include/conn.h), pinned by name
 *   <pins>/<kind>/<layout>/links/<link>       one pinned link per attachment (a program may have several)
 *   <pins>/<kind>/<layout>/programs/<program> the programs whose info user space reads (recursion misses)
 *   <pins>/<kind>/<layout>/maps/<name>        the object's own maps user space reads (ring, drop counters), and
 *                                             maps user space keeps beside them (userMap)
 *
 * <layout> is a digest of everything that makes the loaded programs what they are: the object file's bytes, the
 * load options (tunables, map sizes) and where its tracepoint programs are attached. Which cgroups a cgroup
 * program is attached to is not part of it: `attachToCgroups` makes those links match a list on every start, adopted
 * or installed, through the program pinned in programs/. `open` adopts the installation of its
 * layout when one is complete (loading nothing), else installs it. Any other difference, a new version of the
 * object or another setting, is another layout, installed beside the old one; `others()` finds the old ones so
 * that the caller can retire them once it has read what they hold. Adopting old programs after an upgrade would
 * keep old code running; the shared maps (open connections, conn ids) carry over a replacement all the same.
 *
 * A pinned link holds its program and the program its maps, so nothing here needs the loading process to live on.
 * Unpinning the links (detach, remove) stops the programs once no process holds those links either: the kernel
 * detaches them from a worker, a moment later (src/collector/installed-source.ts stops them first, where it can).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { KernelError } from '../common/errors.js';
import { BpfObject, type LoadOptions } from './object.js';
import { PinnedMap, type MapShape } from './pinned-map.js';
import type { PinDirectory } from './pins.js';
import { recursionMissesOf, type BpfProgram, type Detachable, type Link } from './program.js';
import { bpf, libcCalls } from './native.js';
import { kernelError } from './errno.js';

/** Where a link attaches its program: a classic tracepoint (`category/event`) or a raw tracepoint (`event`). */
export type Hook = { tracepoint: `${string}/${string}` } | { rawTracepoint: string };

/** Links of programs to raw tracepoints, from program → event. */
export function rawTracepointLinks(events: Readonly<Record<string, string>>): Record<string, Hook> {
  return Object.fromEntries(Object.entries(events).map(([program, event]) => [program, { rawTracepoint: event }]));
}

/** enum bpf_attach_type of the cgroup programs an installation attaches (uapi/linux/bpf.h). */
export const CgroupAttachType = { inetIngress: 0, sockOps: 3, inet4Connect: 10, inet6Connect: 11, udp4Sendmsg: 14, udp6Sendmsg: 15 } as const;

/** A cgroup a cgroup program is attached to: its id names the link, its path opens it. */
export interface CgroupTarget {
  id: bigint;
  path: string;
}

export interface InstallationSpec {
  /** Directory below the pin directory holding this kind's installations, e.g. `flows`. */
  kind: string;
  objectFile: string;
  load: Pick<LoadOptions, 'rodata' | 'maxEntries'>;
  /** The object's own maps user space reads (its ring, its drop counters): pinned in the installation. */
  maps: readonly string[];
  /** Program name -> where it is attached; each link is pinned under its program's name. */
  links: Readonly<Record<string, Hook>>;
  /**
   * Programs pinned beside the links, so that any process can read their recursion misses or attach them to
   * cgroups (attachToCgroups).
   */
  programs?: readonly string[];
}

export class Installation {
  private readonly maps = new Map<string, PinnedMap>();
  /** fds of pinned programs, by name. */
  private readonly programs = new Map<string, number>();
  private readonly resources: Detachable[] = [];

  private constructor(
    private readonly pins: PinDirectory,
    readonly kind: string,
    readonly layout: string,
    /** True when this process loaded the programs, false when it found them running. */
    readonly installedNow: boolean,
  ) {}

  /** The installation of the spec's layout: adopted when complete, else installed (programs loaded and attached). */
  static open(pins: PinDirectory, spec: InstallationSpec): Installation {
    const layout = layoutOf(spec);
    const directory = pins.child(spec.kind).child(layout);
    const complete =
      Object.keys(spec.links).every((link) => fs.existsSync(directory.linkPath(link))) &&
      (spec.programs ?? []).every((program) => fs.existsSync(directory.programPath(program))) &&
      spec.maps.every((name) => fs.existsSync(directory.mapPath(name)));
    if (!complete) install(pins, directory, spec);
    return new Installation(pins, spec.kind, layout, !complete);
  }

  get directory(): PinDirectory {
    return this.pins.child(this.kind).child(this.layout);
  }

  /** The kind's installations of other layouts, left running by earlier versions or configurations. */
  others(): Installation[] {
    return this.pins
      .child(this.kind)
      .childNames()
      .filter((layout) => layout !== this.layout)
      .map((layout) => new Installation(this.pins, this.kind, layout, false));
  }

  /** A pinned map of this installation, or a shared one of the pin directory; undefined when neither is pinned. */
  findMap(name: string): PinnedMap | undefined {
    let map = this.maps.get(name);
    if (!map) {
      map = PinnedMap.open(this.directory.mapPath(name)) ?? PinnedMap.open(this.pins.mapPath(name));
      if (map) this.maps.set(name, map);
    }
    return map;
  }

  map(name: string): PinnedMap {
    const map = this.findMap(name);
    if (!map) throw new KernelError(`${this.kind}: no map ${name} pinned in ${this.directory.path} or ${this.pins.path}`, { context: { component: this.kind } });
    return map;
  }

  /** A map user space keeps beside the programs' (they never see it): pinned in the installation, created if missing. */
  userMap(name: string, shape: MapShape): PinnedMap {
    let map = this.findMap(name);
    if (!map) {
      map = PinnedMap.create(this.directory.mapPath(name), shape);
      this.maps.set(name, map);
    }
    return map;
  }

  /**
   * How many times the kernel skipped a pinned program (spec.programs) because it fired while already running on
   * that CPU; 0 when the program is not pinned (a retired installation of another layout).
   */
  recursionMisses(program: string): bigint {
    const fd = this.programFd(program);
    return fd === undefined ? 0n : recursionMissesOf(fd, `${this.kind}/${program}`);
  }

  /**
   * Makes the links of a pinned cgroup program (`<program>@<cgroup id>`) match `targets`: attaches it where it is
   * not yet, and unpins the links of cgroups no longer listed (the program then stops running for them).
   */
  attachToCgroups(program: string, attachType: number, targets: readonly CgroupTarget[]): void {
    const prefix = `${program}@`;
    const wanted = new Map(targets.map((target) => [`${prefix}${target.id}`, target]));
    const linksDirectory = this.directory.linkPath('');
    const existing = fs.existsSync(linksDirectory) ? fs.readdirSync(linksDirectory).filter((name) => name.startsWith(prefix)) : [];
    for (const name of existing) if (!wanted.has(name)) fs.rmSync(this.directory.linkPath(name));
    const missing = [...wanted].filter(([name]) => !existing.includes(name));
    if (missing.length === 0) return;
    const programFd = this.programFd(program);
    if (programFd === undefined) throw new KernelError(`${this.kind}: no program ${program} pinned in ${this.directory.path}`, { context: { component: this.kind } });
    for (const [name, target] of missing) pinCgroupLink(programFd, attachType, target, this.directory.linkPath(name), this.kind);
  }

  /** A pinned program's fd, opened once (it is read on every poll) and closed by close(); undefined when not pinned. */
  private programFd(program: string): number | undefined {
    let fd = this.programs.get(program);
    if (fd === undefined) {
      const pinPath = this.directory.programPath(program);
      if (!fs.existsSync(pinPath)) return undefined;
      fd = bpf.objGet(pinPath) as number;
      if (fd < 0) throw kernelError(`open pinned program ${pinPath}`, -fd, this.kind);
      this.programs.set(program, fd);
    }
    return fd;
  }

  /** Registers something to release before the maps' fds close (ring readers over them). */
  own(resource: Detachable): void {
    this.resources.push(resource);
  }

  /** Unpins the links: the programs stop, a moment later (see above). The maps stay pinned, to be read, until remove(). */
  detach(): void {
    fs.rmSync(this.directory.linkPath(''), { recursive: true, force: true });
  }

  /** Releases this process's fds and removes every pin of the installation. */
  remove(): void {
    this.close();
    this.directory.remove();
  }

  /** Releases this process's fds; the pins, and the programs with them, stay. Safe twice. */
  close(): void {
    for (const resource of this.resources.splice(0).reverse()) resource.detach();
    for (const map of this.maps.values()) map.close();
    this.maps.clear();
    for (const fd of this.programs.values()) libcCalls.close(fd);
    this.programs.clear();
  }
}

function layoutOf(spec: InstallationSpec): string {
  const options = JSON.stringify({ load: spec.load, maps: spec.maps, links: spec.links, programs: spec.programs }, (_key, value: unknown) =>
    typeof value === 'bigint' ? value.toString() : value,
  );
  return createHash('sha256').update(fs.readFileSync(spec.objectFile)).update(options).digest('hex').slice(0, 16);
}

function install(pins: PinDirectory, directory: PinDirectory, spec: InstallationSpec): void {
  // What an install that did not finish left (its process killed midway): its links, if any, are unpinned here.
  directory.remove();
  const object = BpfObject.load(spec.objectFile, { ...spec.load, pins, pinMaps: { directory, names: spec.maps } });
  try {
    for (const [program, hook] of Object.entries(spec.links)) attach(object.program(program), hook).pin(directory.linkPath(program));
    for (const program of spec.programs ?? []) object.program(program).pin(directory.programPath(program));
  } catch (error) {
    object.close();
    directory.remove();
    throw error;
  }
  // Closing the object closes this process's fds of links, programs and maps; the pins hold all of them.
  object.close();
}

function attach(program: BpfProgram, hook: Hook): Link {
  if ('rawTracepoint' in hook) return program.attachRawTracepoint(hook.rawTracepoint);
  const [category, event] = hook.tracepoint.split('/') as [string, string];
  return program.attachTracepoint(category, event);
}

/** Links a program (by fd) to a cgroup and pins the link; this process's fds close, the pin holds the link. */
function pinCgroupLink(programFd: number, attachType: number, target: CgroupTarget, pinPath: string, component: string): void {
  const cgroupFd = fs.openSync(target.path, 'r');
  let linkFd: number;
  try {
    linkFd = bpf.linkCreate(programFd, cgroupFd, attachType, null) as number;
  } finally {
    fs.closeSync(cgroupFd); // the link holds its own reference to the cgroup
  }
  if (linkFd < 0) throw kernelError(`attach to cgroup ${target.path}`, -linkFd, component);
  try {
    fs.mkdirSync(path.dirname(pinPath), { recursive: true });
    const rc = bpf.objPin(linkFd, pinPath) as number;
    if (rc < 0) throw kernelError(`pin link at ${pinPath}`, -rc, component);
  } finally {
    libcCalls.close(linkFd);
  }
}
