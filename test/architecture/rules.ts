/**
 * The import directions of the design (DESIGN.md, "Layout"), checked on an import graph: file →
 * files it imports, as repository-relative paths. Pure, so a test can feed it a synthetic graph and see it fail.
 *
 * Layers: a top-level folder of src (cli, the roles, events, common, ebpf, lab), bench and test.
 *   cli → anything in src, and bench (the bench sub-command runs them)
 *   role (collector, enricher, metadata, enforcer) → itself, common, events, ebpf; never another role, except that
 *     the enricher may import metadata's event-time index (src/metadata/index/)
 *   events, ebpf → themselves and common; common → common
 *   lab (dev-only) → anything in src but cli
 *   bench, test → anything
 * So nothing in src outside cli imports cli, only cli, lab, bench and test import lab, and nothing in src imports
 * test. A file in src outside every layer is reported too, so a new folder gets its rule before it gets imports.
 *
 * No cycles, among all imports: `import type` and `typeof import('…')` count as much as value and dynamic
 * imports. A type-only cycle does not fail at run time, but it couples the two modules as tightly (neither compiles
 * or moves without the other), and TS already erases value imports used only as types, so "type-only" is not a
 * property of the syntax one could rely on anyway.
 */

export type ImportGraph = ReadonlyMap<string, readonly string[]>;

export interface Violation {
  file: string;
  /** The imported file; absent when the file itself breaks the rule. */
  import?: string;
  rule: string;
}

export function formatViolation(violation: Violation): string {
  return violation.import === undefined ? `${violation.file} (${violation.rule})` : `${violation.file} → ${violation.import} (${violation.rule})`;
}

interface Place {
  path: string;
  layer: string;
}

/** The rule an import from `from` to `to` breaks, if any. */
type Check = (to: Place, from: Place) => string | undefined;

const ROLES = new Set(['collector', 'enricher', 'metadata', 'enforcer']);
const ROLE_FOUNDATIONS = new Set(['common', 'events', 'ebpf']);
const METADATA_INDEX = 'src/metadata/index/';

const inSrc = (place: Place) => place.path.startsWith('src/');
const only =
  (rule: string, allowed: (to: Place, from: Place) => boolean): Check =>
  (to, from) =>
    allowed(to, from) ? undefined : rule;
const selfOr = (...layers: string[]) => (to: Place, from: Place) => to.layer === from.layer || layers.includes(to.layer);

const role: Check = (to, from) => {
  if (ROLES.has(to.layer) && to.layer !== from.layer) {
    const exception = from.layer === 'enricher' && to.path.startsWith(METADATA_INDEX);
    return exception ? undefined : `no role imports another role (the enricher may import ${METADATA_INDEX})`;
  }
  return to.layer === from.layer || ROLE_FOUNDATIONS.has(to.layer) ? undefined : 'roles import only common, events and ebpf';
};

const SRC_LAYERS: Record<string, Check> = {
  cli: only('cli imports src and bench, not test', (to) => to.layer !== 'test'),
  lab: only('lab imports src, except cli', (to) => inSrc(to) && to.layer !== 'cli'),
  events: only('events imports only common', selfOr('common')),
  ebpf: only('ebpf imports only common', selfOr('common')),
  common: only('common imports only common', selfOr()),
  ...Object.fromEntries([...ROLES].map((name) => [name, role])),
};
const TOP_LAYERS: Record<string, Check> = { bench: () => undefined, test: () => undefined };

/** The layer of a repository path, or undefined outside every layer. */
function layerOf(path: string): string | undefined {
  const [top, folder] = path.split('/');
  if (top === 'src') return folder !== undefined && Object.hasOwn(SRC_LAYERS, folder) ? folder : undefined;
  return top !== undefined && Object.hasOwn(TOP_LAYERS, top) ? top : undefined;
}

function checkOf(layer: string): Check {
  return (SRC_LAYERS[layer] ?? TOP_LAYERS[layer])!;
}

/** Every broken direction and one cycle per group of files that import each other, in file order. */
export function checkImports(graph: ImportGraph): Violation[] {
  const violations: Violation[] = [];
  for (const [file, imports] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const layer = layerOf(file);
    if (layer === undefined) {
      if (file.startsWith('src/')) violations.push({ file, rule: 'every file in src is in a layer of test/architecture/rules.ts' });
      continue;
    }
    for (const path of imports) {
      const target = layerOf(path);
      // A target outside every layer is either reported as a file above or outside the checked tree (a JSON file).
      const rule = target === undefined ? undefined : checkOf(layer)({ path, layer: target }, { path: file, layer });
      if (rule !== undefined) violations.push({ file, import: path, rule });
    }
  }
  return [...violations, ...cycles(graph)];
}

/** One shortest cycle per strongly connected group of files, starting at the group's first file. */
function cycles(graph: ImportGraph): Violation[] {
  const reverse = new Map<string, string[]>();
  for (const [file, imports] of graph) {
    for (const path of imports) {
      const importers = reverse.get(path);
      if (importers === undefined) reverse.set(path, [file]);
      else importers.push(file);
    }
  }
  const violations: Violation[] = [];
  const reported = new Set<string>();
  for (const start of [...graph.keys()].sort()) {
    if (reported.has(start)) continue;
    const forward = breadthFirst(graph, start);
    if (!forward.has(start)) continue;
    const backward = breadthFirst(reverse, start);
    for (const file of forward.keys()) if (backward.has(file)) reported.add(file);
    // Parents lead from start back along the shortest cycle: start ← last ← … ← first import ← start.
    const path = [start];
    for (let at = forward.get(start)!; at !== start; at = forward.get(at)!) path.push(at);
    path.push(start);
    path.reverse();
    violations.push({ file: start, import: path[1]!, rule: `no import cycles: ${path.join(' → ')}` });
  }
  return violations;
}

/** Files reachable from `start` (start itself only through a cycle), each with the file it was first reached from. */
function breadthFirst(edges: ReadonlyMap<string, readonly string[]>, start: string): Map<string, string> {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i]!;
    for (const next of edges.get(at) ?? []) {
      if (parent.has(next)) continue;
      parent.set(next, at);
      queue.push(next);
    }
  }
  return parent;
}
