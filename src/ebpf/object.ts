/**
 * A compiled BPF object (bpf/.output/*.bpf.o) opened, configured and loaded into the kernel.
 *
 *   const object = BpfObject.load(objectPath('selftest/probe'), { rodata: { target_tgid: process.pid } });
 *   const link = object.program('probe_kill').attachTracepoint('syscalls', 'sys_enter_kill');
 *   ...
 *   object.close(); // destroys every link made through it, then frees maps and programs
 *
 * `.rodata` values, map sizes and where shared maps are pinned are set between open and load, the only moment libbpf
 * allows it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KernelError } from '../common/errors.js';
import { Btf } from './btf.js';
import { kernelError } from './errno.js';
import { captureLibbpfLog, takeRecentLibbpfLog } from './libbpf-log.js';
import { BpfMapHandle } from './map.js';
import { placeMapPin, type PinDirectory } from './pins.js';
import { BpfProgram, type Detachable } from './program.js';
import { bpf, koffi, lastErrno, type Pointer } from './native.js';

export type RodataValue = number | bigint | boolean | Buffer;

export interface LoadOptions {
  /** Values of `const volatile` globals, by variable name. */
  rodata?: Record<string, RodataValue>;
  /** Overrides of map max_entries by map name (ring sizes, table capacities). */
  maxEntries?: Record<string, number>;
  /**
   * Where the maps the object declares `pinning LIBBPF_PIN_BY_NAME` are shared: each is reused from this directory
   * when pinned there (refused if its shape differs), else created and pinned there. Without it, they are private
   * to this object.
   */
  pins?: PinDirectory;
  /**
   * Maps declared without pinning that are pinned anyway, in `directory`: reused when pinned there (refused if their
   * shape differs), else created and pinned there. How an installation keeps its ring and counters past the process
   * (src/ebpf/installation.ts).
   */
  pinMaps?: { directory: PinDirectory; names: readonly string[] };
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Path of a compiled object built by bpf/Makefile, e.g. objectPath('selftest/probe'). */
export function objectPath(name: string): string {
  return path.join(repoRoot, 'bpf', '.output', `${name}.bpf.o`);
}

export class BpfObject {
  readonly btf: Btf;
  private readonly attachments = new Set<Detachable>();
  private closed = false;

  private constructor(
    private readonly handle: Pointer,
    readonly name: string,
  ) {
    this.btf = new Btf(bpf.objectBtf(handle));
  }

  static load(file: string, options: LoadOptions = {}): BpfObject {
    captureLibbpfLog();
    const handle = bpf.objectOpenFile(file, null);
    if (!handle) throw kernelError(`open ${file}`, lastErrno(), file);
    const object = new BpfObject(handle, path.basename(file, '.bpf.o'));
    try {
      object.configure(options);
      const rc = bpf.objectLoad(handle) as number;
      if (rc < 0) {
        const log = takeRecentLibbpfLog().join('\n');
        const error = kernelError(`load ${file}`, -rc, file);
        throw log ? new KernelError(`${error.message}\nlibbpf log:\n${log}`, { errno: error.errno, context: error.context }) : error;
      }
      return object;
    } catch (error) {
      object.close();
      throw error;
    }
  }

  program(name: string): BpfProgram {
    const handle = this.live() && bpf.objectFindProgram(this.handle, name);
    if (!handle) throw new KernelError(`${this.name}: no program named ${name}`, { context: { component: this.name } });
    return new BpfProgram(handle, `${this.name}/${name}`, this.attachments);
  }

  map(name: string): BpfMapHandle {
    const handle = this.live() && bpf.objectFindMap(this.handle, name);
    if (!handle) throw new KernelError(`${this.name}: no map named ${name}`, { context: { component: this.name } });
    return new BpfMapHandle(handle, `${this.name}/${name}`);
  }

  /** Registers something to tear down before the object's fds close (ring readers over its maps). */
  own(resource: Detachable): void {
    this.attachments.add(resource);
  }

  /** Destroys links, then the object. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const failures: string[] = [];
    for (const attachment of [...this.attachments].reverse()) {
      try {
        attachment.detach();
      } catch (error) {
        failures.push(String(error));
      }
    }
    this.attachments.clear();
    bpf.objectClose(this.handle);
    if (failures.length > 0) throw new KernelError(`${this.name}: close left errors: ${failures.join('; ')}`);
  }

  private live(): true {
    if (this.closed) throw new KernelError(`${this.name}: object is closed`);
    return true;
  }

  private configure(options: LoadOptions): void {
    for (const [mapName, entries] of Object.entries(options.maxEntries ?? {})) {
      const rc = bpf.mapSetMaxEntries(this.map(mapName).handle, entries) as number;
      if (rc < 0) throw kernelError(`${this.name}: set max_entries of ${mapName}`, -rc, this.name);
    }
    this.placeSharedMaps(options.pins);
    if (options.pinMaps) {
      options.pinMaps.directory.prepare();
      for (const name of options.pinMaps.names) placeMapPin(this.map(name), name, options.pinMaps.directory);
    }
    const values = Object.entries(options.rodata ?? {});
    if (values.length === 0) return;
    const variables = this.btf.sectionVariables('.rodata');
    const rodata = this.map('.rodata').handle;
    const size = [0];
    const data = bpf.mapInitialValue(rodata, size);
    if (!data) throw new KernelError(`${this.name}: .rodata is not mapped`);
    const view = new DataView(koffi.view(data, size[0]!));
    for (const [name, value] of values) {
      const variable = variables.get(name);
      if (!variable) throw new KernelError(`${this.name}: no const volatile named ${name} in .rodata`);
      writeValue(view, variable.offset, variable.size, value, name);
    }
  }

  /** After max_entries are final: the pinned map's shape is compared with the configured one. */
  private placeSharedMaps(pins: PinDirectory | undefined): void {
    pins?.prepare();
    for (let map = bpf.objectNextMap(this.handle, null); map; map = bpf.objectNextMap(this.handle, map)) {
      // libbpf gives a pin path at open exactly to the maps declared LIBBPF_PIN_BY_NAME.
      if (bpf.mapPinPath(map) === null) continue;
      const name = bpf.mapName(map) as string;
      placeMapPin(new BpfMapHandle(map, `${this.name}/${name}`), name, pins);
    }
  }
}

function writeValue(view: DataView, offset: number, size: number, value: RodataValue, name: string): void {
  if (Buffer.isBuffer(value)) {
    if (value.length !== size) throw new KernelError(`rodata ${name}: expected ${size} bytes, got ${value.length}`);
    new Uint8Array(view.buffer, view.byteOffset + offset, size).set(value);
    return;
  }
  const number = typeof value === 'boolean' ? Number(value) : value;
  switch (size) {
    case 1: view.setUint8(offset, Number(number)); break;
    case 2: view.setUint16(offset, Number(number), true); break;
    case 4: view.setUint32(offset, Number(number) >>> 0, true); break;
    case 8: view.setBigUint64(offset, BigInt.asUintN(64, BigInt(number)), true); break;
    default: throw new KernelError(`rodata ${name}: ${size}-byte variable needs a Buffer value`);
  }
}
