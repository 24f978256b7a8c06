/**
 * The import directions hold (test/architecture/rules.ts): first the checker on small in-memory graphs, each with
 * one kind of violation, so a passing run on the repository means the check looked and found nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkImports, formatViolation, type ImportGraph } from './architecture/rules.js';
import { importsOf, scanImports } from './architecture/scan.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A tree that takes every allowed direction once. */
const ALLOWED: Record<string, string[]> = {
  'src/cli/main.ts': ['src/cli/command.ts', 'src/collector/index.ts', 'src/lab/demo.ts', 'src/common/config.ts', 'bench/avro.ts'],
  'src/cli/command.ts': [],
  'src/collector/index.ts': ['src/collector/packer.ts', 'src/common/avro.ts', 'src/events/flows.ts', 'src/ebpf/ringbuf.ts'],
  'src/collector/packer.ts': [],
  'src/enricher/index.ts': ['src/metadata/index/history.ts', 'src/events/flows.ts', 'src/common/errors.ts'],
  'src/metadata/index/history.ts': ['src/events/flows.ts'],
  'src/metadata/watch/api.ts': ['src/common/errors.ts'],
  'src/enforcer/apply.ts': ['src/ebpf/ringbuf.ts'],
  'src/events/flows.ts': ['src/common/avro.ts'],
  'src/ebpf/ringbuf.ts': ['src/common/errors.ts'],
  'src/common/avro.ts': ['src/common/errors.ts'],
  'src/common/config.ts': [],
  'src/common/errors.ts': [],
  'src/lab/demo.ts': ['src/lab/pods.ts', 'src/collector/index.ts', 'src/enricher/index.ts', 'src/ebpf/ringbuf.ts'],
  'src/lab/pods.ts': [],
  'bench/avro.ts': ['src/lab/demo.ts', 'src/common/avro.ts'],
  'test/helpers/stack.ts': ['src/lab/pods.ts'],
  'test/x.test.ts': ['src/cli/main.ts', 'src/lab/demo.ts', 'bench/avro.ts', 'test/helpers/stack.ts'],
};

/** The ALLOWED tree plus `file` importing `imports`. */
function withImport(file: string, ...imports: string[]): ImportGraph {
  return new Map(Object.entries({ ...ALLOWED, [file]: [...(ALLOWED[file] ?? []), ...imports] }));
}

const report = (graph: ImportGraph) => checkImports(graph).map(formatViolation);

describe('architecture check, on in-memory graphs', () => {
  it('accepts every allowed direction', () => {
    assert.deepEqual(report(withImport('src/cli/main.ts')), []);
  });

  const ROLE_TO_ROLE = 'no role imports another role (the enricher may import src/metadata/index/)';
  const broken: [file: string, imports: string, rule: string][] = [
    ['src/collector/index.ts', 'src/enricher/index.ts', ROLE_TO_ROLE],
    ['src/enricher/index.ts', 'src/metadata/watch/api.ts', ROLE_TO_ROLE],
    ['src/enforcer/apply.ts', 'src/metadata/index/history.ts', ROLE_TO_ROLE],
    ['src/collector/index.ts', 'src/lab/pods.ts', 'roles import only common, events and ebpf'],
    ['src/enforcer/apply.ts', 'src/cli/command.ts', 'roles import only common, events and ebpf'],
    ['src/collector/index.ts', 'bench/ringbuf.ts', 'roles import only common, events and ebpf'],
    ['src/events/flows.ts', 'src/collector/packer.ts', 'events imports only common'],
    ['src/ebpf/ringbuf.ts', 'src/events/flows.ts', 'ebpf imports only common'],
    ['src/common/config.ts', 'src/ebpf/ringbuf.ts', 'common imports only common'],
    ['src/common/config.ts', 'src/cli/command.ts', 'common imports only common'],
    ['src/common/config.ts', 'src/lab/pods.ts', 'common imports only common'],
    ['src/lab/demo.ts', 'src/cli/command.ts', 'lab imports src, except cli'],
    ['src/lab/demo.ts', 'test/helpers/stack.ts', 'lab imports src, except cli'],
    ['src/cli/main.ts', 'test/helpers/stack.ts', 'cli imports src and bench, not test'],
  ];
  for (const [file, imports, rule] of broken) {
    it(`reports ${file} → ${imports}`, () => {
      assert.deepEqual(report(withImport(file, imports)), [`${file} → ${imports} (${rule})`]);
    });
  }

  it('reports a file in src outside every layer', () => {
    assert.deepEqual(report(withImport('src/util/strings.ts')), ['src/util/strings.ts (every file in src is in a layer of test/architecture/rules.ts)']);
  });

  it('reports one shortest cycle per group of files that import each other', () => {
    const graph = new Map([
      ...withImport('src/common/errors.ts', 'src/common/config.ts'),
      ['src/common/config.ts', ['src/common/avro.ts']], // config → avro → errors → config
      ['src/lab/pods.ts', ['src/lab/pods.ts']],
    ]);
    assert.deepEqual(report(graph), [
      'src/common/avro.ts → src/common/errors.ts (no import cycles: src/common/avro.ts → src/common/errors.ts → src/common/config.ts → src/common/avro.ts)',
      'src/lab/pods.ts → src/lab/pods.ts (no import cycles: src/lab/pods.ts → src/lab/pods.ts)',
    ]);
  });

  it('follows type-only, re-exported and dynamic imports, so they close cycles too', () => {
    const sources: Record<string, string> = {
      'src/lab/a.ts': "import type { B } from './b.js';\nexport type A = B;",
      'src/lab/b.ts': "export * from './c.js';",
      'src/lab/c.ts': "export const load = () => import('./d.js');",
      'src/lab/d.ts': "export type A = typeof import('./a.js');",
    };
    const graph = new Map(Object.entries(sources).map(([file, text]) => [file, importsOf(file, text)]));
    assert.deepEqual(report(graph), ['src/lab/a.ts → src/lab/b.ts (no import cycles: src/lab/a.ts → src/lab/b.ts → src/lab/c.ts → src/lab/d.ts → src/lab/a.ts)']);
  });

  it('reads imports as the compiler does: multi-line ones, not comments or strings, packages left out', () => {
    const text = [
      "import {\n  a,\n  type A,\n} from '../common/a.js';",
      "import fs from 'node:fs';",
      "import avsc from 'avsc';",
      "export { e } from './e.js';",
      'const t = await import(`./t.js`);',
      'const name = "./computed.js";',
      'await import(name);',
      "// import { c } from './comment.js';",
      "const s = \"import { s } from './string.js'\";",
    ].join('\n');
    assert.deepEqual(importsOf('src/lab/x.ts', text), ['src/common/a.ts', 'src/lab/e.ts', 'src/lab/t.ts']);
  });
});

describe('architecture check, on this repository', () => {
  it('finds every import direction allowed and no cycle', () => {
    const graph = scanImports(ROOT, ['src', 'bench', 'test']);
    // The scan sees the real tree, dynamic imports included, so an empty report means something.
    assert.ok(graph.get('src/cli/bench.ts')?.includes('bench/avro.ts'), 'the scan follows cli/bench.ts to bench/avro.ts');
    assert.deepEqual(report(graph), []);
  });
});
