import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { Btf } from '../../src/ebpf/btf.js';
import { objectPath } from '../../src/ebpf/object.js';
import { MIRRORS, enumeratorName, type EnumMirror, type StructMirror } from '../../src/ebpf/records/layouts.js';

/**
 * Each TS mirror (src/ebpf/records/layouts.ts) against what clang laid out: the BTF of bpf/selftest/layouts.bpf.c,
 * which names every records.h type. Each check collects every difference and fails with all of them, each saying
 * what C has, so a layout change shows in full at once.
 */
const btf = Btf.fromFile(objectPath('selftest/layouts'));
after(() => btf.free());

const mirrorName = (mirror: StructMirror | EnumMirror) => ('struct' in mirror ? `struct ${mirror.struct}` : `enum ${mirror.enum}`);

function structDifferences(mirror: StructMirror): string[] {
  const compiled = btf.struct(mirror.struct);
  if (!compiled) return [`struct ${mirror.struct}: mirrored in TS, not in the compiled BTF`];
  const differences: string[] = [];
  if (compiled.size !== mirror.size) differences.push(`struct ${mirror.struct}: C size is ${compiled.size}, TS says ${mirror.size}`);
  for (const [field, { offset }] of compiled.fields) {
    const mirrored = mirror.offsets[field];
    if (mirrored === undefined) differences.push(`${mirror.struct}.${field}: C has it at offset ${offset}, TS does not list it`);
    else if (mirrored !== offset) differences.push(`${mirror.struct}.${field}: C offset is ${offset}, TS says ${mirrored}`);
  }
  for (const [field, offset] of Object.entries(mirror.offsets)) {
    if (!compiled.fields.has(field)) differences.push(`${mirror.struct}.${field}: TS lists it at offset ${offset}, C has no such field`);
  }
  return differences;
}

function enumDifferences(mirror: EnumMirror): string[] {
  const compiled = btf.enum(mirror.enum);
  if (!compiled) return [`enum ${mirror.enum}: mirrored in TS, not in the compiled BTF`];
  const differences: string[] = [];
  const mirrored = new Map(Object.entries(mirror.values).map(([key, value]) => [enumeratorName(mirror, key), { key, value }]));
  for (const [name, value] of compiled) {
    const entry = mirrored.get(name);
    if (!entry) differences.push(`enum ${mirror.enum}: C has ${name} = ${value}, TS has no key for it under ${mirror.prefix}`);
    else if (entry.value !== value) differences.push(`enum ${mirror.enum}: C has ${name} = ${value}, TS says ${entry.key} = ${entry.value}`);
  }
  for (const [name, { key, value }] of mirrored) {
    if (!compiled.has(name)) differences.push(`enum ${mirror.enum}: TS has ${key} = ${value}, C has no ${name}`);
  }
  return differences;
}

const compiled = [...btf.names('struct').map((name) => `struct ${name}`), ...btf.names('enum').map((name) => `enum ${name}`)];

describe('records.h layouts match their TS mirrors', () => {
  it('every struct and enum of records.h reaches the layouts object, and no constant is a #define', () => {
    const header = readFileSync(new URL('../../../bpf/include/records.h', import.meta.url), 'utf8');
    const defined = [...header.matchAll(/^(?:struct|enum) sl_\w+(?= \{)/gm)].map(([name]) => name);
    const unnamed = defined.filter((name) => !compiled.includes(name));
    const defines = [...header.matchAll(/^#define (SL_\w+)/gm)].map(([, name]) => name);
    assert.deepEqual({ unnamed, defines }, { unnamed: [], defines: [] }, 'name each type in bpf/selftest/layouts.bpf.c; make each #define an enumerator');
  });

  it('every sl_* struct and enum of the layouts object has exactly one mirror', () => {
    const mirrored = MIRRORS.map(mirrorName);
    const unmirrored = compiled.filter((name) => name.split(' ')[1]!.startsWith('sl_') && !mirrored.includes(name));
    const duplicated = mirrored.filter((name, index) => mirrored.indexOf(name) !== index);
    assert.deepEqual({ unmirrored, duplicated }, { unmirrored: [], duplicated: [] }, 'add each to src/ebpf/records/layouts.ts, once');
  });

  for (const mirror of MIRRORS) {
    it(mirrorName(mirror), () => {
      const differences = 'struct' in mirror ? structDifferences(mirror) : enumDifferences(mirror);
      assert.deepEqual(differences, [], differences.join('\n'));
    });
  }
});
