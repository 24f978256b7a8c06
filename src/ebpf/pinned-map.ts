/**
 * A map opened from its pin in bpffs instead of from a loaded object: how a collector reaches the maps of programs
 * another process loaded (src/ebpf/installation.ts), and how user space keeps small maps of its own beside them.
 * It holds one fd; close() releases it, the pin keeps the map.
 */
import path from 'node:path';
import { kernelError } from './errno.js';
import { MapAccess } from './map.js';
import { bpf, koffi, libcCalls, mapInfo } from './native.js';

/** Fields of struct bpf_map_info the kernel reports for a map (the head that `mapInfo` declares). */
export interface MapInfo {
  type: number;
  id: number;
  key_size: number;
  value_size: number;
  max_entries: number;
  map_flags: number;
}

export interface MapShape {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
}

export class PinnedMap extends MapAccess {
  private descriptor: number;

  private constructor(
    fd: number,
    readonly name: string,
    readonly info: Readonly<MapInfo>,
  ) {
    super();
    this.descriptor = fd;
  }

  /** The map pinned at `pinPath`, or undefined when nothing is pinned there. */
  static open(pinPath: string): PinnedMap | undefined {
    const name = path.basename(pinPath);
    const fd = bpf.objGet(pinPath) as number;
    if (fd === -koffi.os.errno.ENOENT!) return undefined;
    if (fd < 0) throw kernelError(`open pinned map ${pinPath}`, -fd, name);
    return PinnedMap.wrap(fd, name, pinPath);
  }

  /** Creates a map and pins it at `pinPath` (named after the pin's file name). */
  static create(pinPath: string, shape: MapShape): PinnedMap {
    const name = path.basename(pinPath);
    const fd = bpf.mapCreate(shape.type, name, shape.keySize, shape.valueSize, shape.maxEntries, null) as number;
    if (fd < 0) throw kernelError(`create map ${name}`, -fd, name);
    const rc = bpf.objPin(fd, pinPath) as number;
    if (rc < 0) {
      libcCalls.close(fd);
      throw kernelError(`pin map at ${pinPath}`, -rc, name);
    }
    return PinnedMap.wrap(fd, name, pinPath);
  }

  private static wrap(fd: number, name: string, pinPath: string): PinnedMap {
    const info: Record<string, number> = {};
    const rc = bpf.objGetInfoByFd(fd, info, [koffi.sizeof(mapInfo)]) as number;
    if (rc < 0) {
      libcCalls.close(fd);
      throw kernelError(`read pinned map ${pinPath}`, -rc, name);
    }
    return new PinnedMap(fd, name, info as unknown as MapInfo);
  }

  get fd(): number {
    return this.descriptor;
  }

  /** The kernel's id of the map: unique among the maps that exist, and not reused soon after one is freed. */
  get id(): number {
    return this.info.id;
  }

  get keySize(): number {
    return this.info.key_size;
  }

  get valueSize(): number {
    return this.info.value_size;
  }

  get maxEntries(): number {
    return this.info.max_entries;
  }

  get type(): number {
    return this.info.type;
  }

  /** Releases the fd; the pin keeps the map. Safe twice. */
  close(): void {
    if (this.descriptor < 0) return;
    libcCalls.close(this.descriptor);
    this.descriptor = -1;
  }
}
