/**
 * Kernel state shared through bpffs: a directory the caller chooses (one per node, e.g.
 * /sys/fs/bpf/sidecarless/<node>) in which objects pin what they share and find what others pinned.
 *
 *   const pins = new PinDirectory(`/sys/fs/bpf/sidecarless/${node}`);
 *   const flows = BpfObject.load(objectPath('flows'), { pins }); // creates and pins conns, conn_ids, traced_cgroups
 *   const http = BpfObject.load(objectPath('http'), { pins });   // reuses them: the same kernel maps
 *   ...
 *   pins.remove(); // when nothing should survive: the loaded objects keep their maps until they close
 *
 * Which maps are shared is said by the kernel code (`pinning LIBBPF_PIN_BY_NAME`, see bpf/include/conn.h); where
 * they are pinned is said here. Layout: <dir>/maps/<map name>, <dir>/links/<link name> and <dir>/programs/<program
 * name>; a directory holds
 * others below it (src/ebpf/installation.ts keeps one per record kind and layout there).
 */
import fs from 'node:fs';
import path from 'node:path';
import { KernelError } from '../common/errors.js';
import { kernelError } from './errno.js';
import type { BpfMapHandle } from './map.js';
import { bpf, koffi, lastErrno, libcCalls } from './native.js';
import { PinnedMap } from './pinned-map.js';

/** statfs f_type of a bpf filesystem (linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;
const LOCK_EX = 2;
const LOCK_NB = 4;

export class PinDirectory {
  readonly path: string;

  constructor(directory: string) {
    this.path = path.resolve(directory);
  }

  mapPath(name: string): string {
    return path.join(this.mapsDirectory, name);
  }

  linkPath(name: string): string {
    return path.join(this.path, 'links', name);
  }

  programPath(name: string): string {
    return path.join(this.path, 'programs', name);
  }

  /** A directory below this one. */
  child(name: string): PinDirectory {
    return new PinDirectory(path.join(this.path, name));
  }

  /** Names of the directories below this one (maps/, links/ and programs/ excepted); none when it does not exist. */
  childNames(): string[] {
    if (!fs.existsSync(this.path)) return [];
    return fs
      .readdirSync(this.path, { withFileTypes: true })
      .filter((entry) => entry.isDirectory() && !['maps', 'links', 'programs'].includes(entry.name))
      .map((entry) => entry.name)
      .sort();
  }

  exists(): boolean {
    return fs.existsSync(this.path);
  }

  /** Checks that the directory lies on a mounted bpffs, then creates it. */
  prepare(): void {
    let existing = this.path;
    while (!fs.existsSync(existing)) existing = path.dirname(existing);
    const dotted = path.relative(existing, this.path).split(path.sep).find((name) => name.includes('.'));
    if (dotted !== undefined) {
      throw new KernelError(`pin directory ${this.path}: bpffs refuses names with a dot ("${dotted}"): choose a name without dots`, {
        context: { component: 'pins' },
      });
    }
    if (fs.statfsSync(existing).type !== BPF_FS_MAGIC) {
      throw new KernelError(
        `pin directory ${this.path} is not on a bpf filesystem (${existing} is not bpffs): mount it with \`mount -t bpf bpf /sys/fs/bpf\` and pin below /sys/fs/bpf`,
        { context: { component: 'pins' } },
      );
    }
    fs.mkdirSync(this.mapsDirectory, { recursive: true });
  }

  /**
   * Creates the directory and takes an exclusive lock on it for as long as this process lives, or until the returned
   * release is called; undefined when another process holds it. The kernel drops the lock of a process that dies.
   */
  lock(): (() => void) | undefined {
    this.prepare();
    const fd = fs.openSync(this.path, 'r');
    if ((libcCalls.flock(fd, LOCK_EX | LOCK_NB) as number) === 0) return () => fs.closeSync(fd);
    const errno = lastErrno();
    fs.closeSync(fd);
    if (errno === koffi.os.errno.EWOULDBLOCK) return undefined;
    throw kernelError(`lock ${this.path}`, errno, 'pins');
  }

  /**
   * Unpins everything below the directory and removes it: a program attached through a link pinned here stops once
   * no process holds that link either; maps live on while a program or a process uses them. Safe twice.
   */
  remove(): void {
    fs.rmSync(this.path, { recursive: true, force: true });
  }

  private get mapsDirectory(): string {
    return path.join(this.path, 'maps');
  }
}

/**
 * Between open and load: points a map at its pin in `pins`, where libbpf's load reuses the pinned map or creates and
 * pins one; without `pins`, clears the pin path (for a map declared `pinning LIBBPF_PIN_BY_NAME` libbpf's default is
 * the bpffs root) so the map is private to this object. A pinned map of another shape is refused here, naming the
 * differences and the remedy, instead of by libbpf's bare EINVAL.
 */
export function placeMapPin(map: BpfMapHandle, mapName: string, pins: PinDirectory | undefined): void {
  let pinPath: string | null = null;
  if (pins) {
    pinPath = pins.mapPath(mapName);
    checkPinnedShape(map, pins, pinPath);
  }
  const rc = bpf.mapSetPinPath(map.handle, pinPath) as number;
  if (rc < 0) throw kernelError(`${map.name}: set pin path`, -rc, map.name);
}

function checkPinnedShape(map: BpfMapHandle, pins: PinDirectory, pinPath: string): void {
  const pinned = PinnedMap.open(pinPath);
  if (!pinned) return;
  const info: Record<string, number> = { ...pinned.info };
  pinned.close();
  const wanted: Record<string, number> = {
    type: map.type,
    key_size: map.keySize,
    value_size: map.valueSize,
    max_entries: map.maxEntries,
    map_flags: map.flags,
  };
  const differences = Object.entries(wanted)
    .filter(([field, value]) => info[field] !== value)
    .map(([field, value]) => `${field} ${info[field]} pinned, ${value} here`);
  if (differences.length === 0) return;
  throw new KernelError(
    `${map.name}: the map pinned at ${pinPath} has another shape (${differences.join(', ')}). Either its layout ` +
      `changed, and a changed layout needs a new map name, or its capacity is configured differently from the ` +
      `program that pinned it. Remove the pins, which also stops the sidecarless programs attached through them ` +
      `(\`sidecarless collector --uninstall\` does it): rm -r ${pins.path}`,
    { context: { component: map.name } },
  );
}

/**
 * Every pin of one kind below `directory`, at any depth (a pin directory holds others below it: one per record kind
 * and layout), as paths: the pins in each `maps`, `links` or `programs` folder. None when the directory is absent.
 */
export function pinsBelow(directory: string, kind: 'maps' | 'links' | 'programs'): string[] {
  if (!fs.existsSync(directory)) return [];
  return fs
    .readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((entry) => path.basename(path.dirname(entry)) === kind)
    .map((entry) => path.join(directory, entry));
}
