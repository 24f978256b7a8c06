/**
 * The bytes the compiler wrote for each `const` global of an object, read through libbpf without loading the
 * object into the kernel: libbpf keeps a section's initial contents as the initial value of its internal map.
 */
import { Btf } from '../../src/ebpf/btf.js';
import { kernelError } from '../../src/ebpf/errno.js';
import { bpf, koffi, lastErrno } from '../../src/ebpf/native.js';

export function rodataVariables(file: string): Map<string, Buffer> {
  const handle = bpf.objectOpenFile(file, null);
  if (!handle) throw kernelError(`open ${file}`, lastErrno(), file);
  try {
    const size = [0];
    const data = bpf.mapInitialValue(bpf.objectFindMap(handle, '.rodata'), size);
    if (!data) throw new Error(`${file}: no .rodata`);
    const section = Buffer.from(new Uint8Array(koffi.view(data, size[0]!))); // a copy: the view dies with the object
    const variables = new Btf(bpf.objectBtf(handle)).sectionVariables('.rodata');
    return new Map([...variables].map(([name, { offset, size }]) => [name, section.subarray(offset, offset + size)]));
  } finally {
    bpf.objectClose(handle);
  }
}
