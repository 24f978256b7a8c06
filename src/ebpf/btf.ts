/**
 * Reads layouts out of an object's BTF: struct member offsets and enum values (to check the TS mirrors of
 * records.h against what the compiler produced) and the offsets of `const volatile` globals in .rodata (to
 * configure a program before load). Walks libbpf's in-memory `struct btf_type` records, whose layout is kernel UAPI.
 */
import { kernelError } from './errno.js';
import { bpf, koffi, lastErrno, type Pointer } from './native.js';

const BTF_KIND = { struct: 4, enum: 6 } as const;
const BTF_KIND_DATASEC = 15;

/** The kinds of named type the layout checks walk; 64-bit enums (ENUM64) are not among them, records.h has none. */
export type BtfKind = keyof typeof BTF_KIND;

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
    const id = bpf.btfFindByNameKind(this.handle, name, BTF_KIND.struct) as number;
    if (id < 0) return undefined;
    const [size, fields] = this.entries(id, 3, (word): [string, FieldLayout] => [
      this.name(word(0)),
      // Bitfield structs pack the bit size into the high byte; records.h has none, so offsets are whole bytes.
      { offset: (word(2) & 0xffffff) / 8, size: this.sizeOf(word(1)) },
    ]);
    return { size, fields: new Map(fields) };
  }

  /** Enumerators of `enum name` with their values; undefined when the object's BTF does not contain it. */
  enum(name: string): Map<string, number> | undefined {
    const id = bpf.btfFindByNameKind(this.handle, name, BTF_KIND.enum) as number;
    if (id < 0) return undefined;
    const signed = this.header(id)[1]! >>> 31 === 1; // kflag: the enum has a negative enumerator
    const [, values] = this.entries(id, 2, (word): [string, number] => [this.name(word(0)), signed ? word(1) | 0 : word(1)]);
    return new Map(values);
  }

  /** Names of every named type of one kind, in BTF order. */
  names(kind: BtfKind): string[] {
    const names: string[] = [];
    const count = bpf.btfTypeCount(this.handle) as number;
    for (let id = 1; id < count; id++) {
      const [nameOff, info] = this.header(id);
      if (nameOff !== 0 && ((info! >>> 24) & 0x1f) === BTF_KIND[kind]) names.push(this.name(nameOff!));
    }
    return names;
  }

  /** Variables of a data section (".rodata", ".bss", ".data") by name. */
  sectionVariables(section: string): Map<string, FieldLayout> {
    const id = bpf.btfFindByNameKind(this.handle, section, BTF_KIND_DATASEC) as number;
    if (id < 0) return new Map();
    const [, variables] = this.entries(id, 3, (word): [string, FieldLayout] => [
      this.name(this.header(word(0))[0]!),
      { offset: word(1), size: word(2) },
    ]);
    return new Map(variables);
  }

  /** name_off, info and size (or type) of a type: the 12 bytes every `struct btf_type` starts with. */
  private header(id: number): Uint32Array {
    return koffi.decode(bpf.btfTypeById(this.handle, id), u32Array(3)) as Uint32Array;
  }

  /**
   * [size, each entry read by `read`] of a type whose entries follow its header: STRUCT and DATASEC carry three
   * u32 per entry (name or type, type or offset, offset or size), ENUM two (name, value).
   */
  private entries<T>(id: number, width: 2 | 3, read: (word: (index: number) => number) => T): [number, T[]] {
    const header = this.header(id);
    const vlen = header[1]! & 0xffff;
    const words = koffi.decode(bpf.btfTypeById(this.handle, id), u32Array(3 + width * vlen)) as Uint32Array;
    const entries: T[] = [];
    for (let i = 0; i < vlen; i++) entries.push(read((index) => words[3 + width * i + index]!));
    return [header[2]!, entries];
  }

  private name(offset: number): string {
    return bpf.btfNameByOffset(this.handle, offset) as string;
  }

  private sizeOf(typeId: number): number {
    return Number(bpf.btfResolveSize(this.handle, typeId));
  }
}
