/**
 * Typed access to a BPF map. Keys and values cross the boundary as fixed-size bytes; a `Codec` per record layout
 * (src/ebpf/records/) turns them into JS values. Lookups reuse one key and one value buffer per map, so a hot
 * loop of lookups allocates only the decoded result.
 */
import fs from 'node:fs';
import { KernelError } from '../common/errors.js';
import { kernelError } from './errno.js';
import { batchOpts, bpf, koffi, type Pointer } from './native.js';

export interface Codec<T> {
  readonly size: number;
  encode(value: T, target: Buffer): void;
  decode(source: Buffer, offset: number): T;
}

export type UpdateMode = 'any' | 'create' | 'replace';
const UPDATE_FLAGS: Record<UpdateMode, bigint> = { any: 0n, create: 1n, replace: 2n };

const BPF_MAP_TYPE_PERCPU_HASH = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
const PER_CPU_TYPES = new Set([BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_LRU_PERCPU_HASH]);

/** How many CPUs the kernel may bring up: per-CPU map values have one slot per possible CPU. */
export const possibleCpus: number = (() => {
  const text = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').trim();
  return text.split(',').reduce((count, range) => {
    const [low, high] = range.split('-').map(Number);
    return count + (high === undefined ? 1 : high - low! + 1);
  }, 0);
})();

/** A map before it is given types, whether it came with a loaded object (BpfMapHandle) or from a pin (PinnedMap). */
export abstract class MapAccess {
  abstract readonly name: string;
  abstract get fd(): number;
  abstract get keySize(): number;
  abstract get valueSize(): number;
  abstract get maxEntries(): number;
  abstract get type(): number;

  /** Gives the map types; the codecs' sizes must match what the compiler laid out. */
  typed<K, V>(key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    if (key.size !== this.keySize || value.size !== this.valueSize) {
      throw new KernelError(
        `${this.name}: codec sizes ${key.size}/${value.size} do not match the map's key/value sizes ${this.keySize}/${this.valueSize}`,
      );
    }
    return new BpfMap(this.fd, this.name, key, value);
  }

  /** A per-CPU map of u64 counters indexed by u32 (drop counters): each value is the sum over CPUs. */
  perCpuCounters(): PerCpuCounters {
    if (!PER_CPU_TYPES.has(this.type) || this.valueSize !== 8 || this.keySize !== 4) {
      throw new KernelError(`${this.name}: not a per-CPU array of u64 counters`);
    }
    return new PerCpuCounters(this.fd, this.name, this.maxEntries);
  }
}

/** A map inside a BpfObject. */
export class BpfMapHandle extends MapAccess {
  constructor(
    readonly handle: Pointer,
    readonly name: string,
  ) {
    super();
  }

  get fd(): number {
    return bpf.mapFd(this.handle) as number;
  }

  get keySize(): number {
    return bpf.mapKeySize(this.handle) as number;
  }

  get valueSize(): number {
    return bpf.mapValueSize(this.handle) as number;
  }

  get maxEntries(): number {
    return bpf.mapMaxEntries(this.handle) as number;
  }

  get type(): number {
    return bpf.mapType(this.handle) as number;
  }

  get flags(): number {
    return bpf.mapFlags(this.handle) as number;
  }
}

export class BpfMap<K, V> {
  private readonly keyBuffer: Buffer;
  private readonly nextKeyBuffer: Buffer;
  private readonly valueBuffer: Buffer;
  private batchSupported = true;

  constructor(
    readonly fd: number,
    readonly name: string,
    private readonly keyCodec: Codec<K>,
    private readonly valueCodec: Codec<V>,
  ) {
    this.keyBuffer = Buffer.alloc(keyCodec.size);
    this.nextKeyBuffer = Buffer.alloc(keyCodec.size);
    this.valueBuffer = Buffer.alloc(valueCodec.size);
  }

  lookup(key: K): V | undefined {
    this.keyCodec.encode(key, this.keyBuffer);
    const rc = bpf.mapLookup(this.fd, this.keyBuffer, this.valueBuffer) as number;
    if (rc === -koffi.os.errno.ENOENT!) return undefined;
    if (rc < 0) throw kernelError(`${this.name}: lookup`, -rc, this.name);
    return this.valueCodec.decode(this.valueBuffer, 0);
  }

  update(key: K, value: V, mode: UpdateMode = 'any'): void {
    this.keyCodec.encode(key, this.keyBuffer);
    this.valueCodec.encode(value, this.valueBuffer);
    const rc = bpf.mapUpdate(this.fd, this.keyBuffer, this.valueBuffer, UPDATE_FLAGS[mode]) as number;
    if (rc < 0) throw kernelError(`${this.name}: update`, -rc, this.name);
  }

  /** Returns false when the key was not there. */
  delete(key: K): boolean {
    this.keyCodec.encode(key, this.keyBuffer);
    const rc = bpf.mapDelete(this.fd, this.keyBuffer) as number;
    if (rc === -koffi.os.errno.ENOENT!) return false;
    if (rc < 0) throw kernelError(`${this.name}: delete`, -rc, this.name);
    return true;
  }

  /** Every key, by walking get_next_key. Entries deleted meanwhile may restart the walk (kernel semantics). */
  *keys(): Generator<K> {
    let previous: Buffer | null = null;
    for (;;) {
      const rc = bpf.mapNextKey(this.fd, previous, this.nextKeyBuffer) as number;
      if (rc === -koffi.os.errno.ENOENT!) return;
      if (rc < 0) throw kernelError(`${this.name}: next key`, -rc, this.name);
      yield this.keyCodec.decode(this.nextKeyBuffer, 0);
      previous = Buffer.from(this.nextKeyBuffer);
    }
  }

  /** Every entry; one syscall per `batchSize` entries where the kernel supports batch lookup (hash maps). */
  entries(batchSize = 256): Array<[K, V]> {
    if (this.batchSupported) {
      const result = this.batchEntries(batchSize);
      if (result) return result;
      this.batchSupported = false;
    }
    const result: Array<[K, V]> = [];
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) result.push([key, value]);
    }
    return result;
  }

  /** Undefined when this map type has no batch support. */
  private batchEntries(batchSize: number): Array<[K, V]> | undefined {
    const keys = Buffer.alloc(this.keyCodec.size * batchSize);
    const values = Buffer.alloc(this.valueCodec.size * batchSize);
    // The kernel's batch cursor is opaque: a u32 bucket index for hash maps, but a whole key for maps on the generic
    // batch walk (LPM tries, arrays), which writes key-size bytes into it.
    const cursor = Buffer.alloc(Math.max(8, this.keyCodec.size));
    const opts = { sz: koffi.sizeof(batchOpts), elem_flags: 0n, flags: 0n };
    const result: Array<[K, V]> = [];
    let first = true;
    for (;;) {
      const count = [batchSize];
      const rc = bpf.mapLookupBatch(this.fd, first ? null : cursor, cursor, keys, values, count, opts) as number;
      first = false;
      const done = rc === -koffi.os.errno.ENOENT!;
      if (rc < 0 && !done) {
        if (result.length === 0 && (rc === -koffi.os.errno.EINVAL! || rc === -524 /* ENOTSUPP */)) return undefined;
        throw kernelError(`${this.name}: batch lookup`, -rc, this.name);
      }
      for (let i = 0; i < count[0]!; i++) {
        result.push([this.keyCodec.decode(keys, i * this.keyCodec.size), this.valueCodec.decode(values, i * this.valueCodec.size)]);
      }
      if (done) return result;
    }
  }
}

/** Counters in a per-CPU array (e.g. the `drops` map of every object), summed over CPUs on read. */
export class PerCpuCounters {
  private readonly key = Buffer.alloc(4);
  private readonly values = Buffer.alloc(8 * possibleCpus);

  constructor(
    readonly fd: number,
    readonly name: string,
    readonly size: number,
  ) {}

  read(index: number): bigint {
    this.key.writeUInt32LE(index);
    const rc = bpf.mapLookup(this.fd, this.key, this.values) as number;
    if (rc < 0) throw kernelError(`${this.name}: lookup`, -rc, this.name);
    let sum = 0n;
    for (let cpu = 0; cpu < possibleCpus; cpu++) sum += this.values.readBigUInt64LE(cpu * 8);
    return sum;
  }

  readAll(): bigint[] {
    return Array.from({ length: this.size }, (_, index) => this.read(index));
  }
}
