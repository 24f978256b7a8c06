/**
 * Reads layouts out of a loaded object's BTF: struct member offsets (to check the TS record decoders against
 * what the compiler produced) and the offsets of `const volatile` globals in .rodata (to configure a program
 * before load). Walks libbpf's in-memory `struct btf_type` records, whose layout is kernel UAPI.
 */
import { kernelError } from './errno.js';
import { bpf, koffi, lastErrno, type Pointer } from './native.js';

const BTF_KIND_STRUCT = 4;
const BTF_KIND_DATASEC = 15;

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout {
  size: number;
  fields: Map<string, FieldLayout>;
}

const u32Array = (count: number) => koffi.array('uint32_t', count, 'Typed');

export class Btf {
  constructor(private readonly handle: Pointer) {}

  /** Parses the BTF of an object file without loading it; call free() when done. */
  static fromFile(file: string): Btf & { free(): void } {
    const handle = bpf.btfParse(file, null);
    if (!handle) throw kernelError(`parse BTF of ${file}`, lastErrno(), file);
    return Object.assign(new Btf(handle), { free: () => bpf.btfFree(handle) });
  }

  /** Layout of `struct name`; undefined when the object's BTF does not contain it. */
  struct(name: string): StructLayout | undefined {
    const id = bpf.btfFindByNameKind(this.handle, name, BTF_KIND_STRUCT) as number;
    if (id < 0) return undefined;
    const [size, entries] = this.entries(id);
    const fields = new Map<string, FieldLayout>();
    for (const [nameOff, typeId, bitOffset] of entries) {
      // Bitfield structs pack the bit size into the high byte; records.h has none, so offsets are whole bytes.
      fields.set(this.name(nameOff), { offset: (bitOffset & 0xffffff) / 8, size: this.sizeOf(typeId) });
    }
    return { size, fields };
  }

  /** Variables of a data section (".rodata", ".bss", ".data") by name. */
  sectionVariables(section: string): Map<string, FieldLayout> {
    const variables = new Map<string, FieldLayout>();
    const id = bpf.btfFindByNameKind(this.handle, section, BTF_KIND_DATASEC) as number;
    if (id < 0) return variables;
    const [, entries] = this.entries(id);
    for (const [varTypeId, offset, size] of entries) {
      const varType = bpf.btfTypeById(this.handle, varTypeId);
      const nameOff = (koffi.decode(varType, u32Array(1)) as Uint32Array)[0]!;
      variables.set(this.name(nameOff), { offset, size });
    }
    return variables;
  }

  /** [size, vlen triples] of a STRUCT or DATASEC type; both carry three u32 per entry after the 12-byte header. */
  private entries(id: number): [number, Array<[number, number, number]>] {
    const type = bpf.btfTypeById(this.handle, id);
    const header = koffi.decode(type, u32Array(3)) as Uint32Array;
    const vlen = header[1]! & 0xffff;
    const words = koffi.decode(type, u32Array(3 + 3 * vlen)) as Uint32Array;
    const entries: Array<[number, number, number]> = [];
    for (let i = 0; i < vlen; i++) {
      const base = 3 + 3 * i;
      entries.push([words[base]!, words[base + 1]!, words[base + 2]!]);
    }
    return [header[2]!, entries];
  }

  private name(offset: number): string {
    return bpf.btfNameByOffset(this.handle, offset) as string;
  }

  private sizeOf(typeId: number): number {
    return Number(bpf.btfResolveSize(this.handle, typeId));
  }
}
