/**
 * The import graph of the repository's TypeScript, read with the compiler's parser (typescript is already a
 * devDependency) rather than a regex, so multi-line imports, comments and strings that look like imports are
 * handled as the compiler handles them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import ts from 'typescript';
import type { ImportGraph } from './rules.js';

/**
 * The repository files a file imports: `import … from`, `import type`, `export … from`, `import('…')` with a
 * literal path and `typeof import('…')`. Packages and node: built-ins are left out (the layer rules do not cover
 * them), and so is a dynamic import of a computed path, which cannot be followed.
 */
export function importsOf(file: string, text: string): string[] {
  return specifiers(file, text).flatMap((specifier) => resolve(file, specifier) ?? []);
}

function specifiers(fileName: string, text: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (argument !== undefined && ts.isStringLiteralLike(argument)) found.push(argument.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS));
  return found;
}

/** The repository path a relative specifier names (`../common/avro.js` → `src/common/avro.ts`). */
function resolve(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return posix.normalize(posix.join(posix.dirname(file), specifier)).replace(/\.js$/, '.ts');
}

/** file → files it imports, for every .ts file below `folders` of `root`, as repository paths. */
export function scanImports(root: string, folders: readonly string[]): ImportGraph {
  const graph = new Map<string, string[]>();
  for (const folder of folders) {
    for (const entry of readdirSync(join(root, folder), { recursive: true, encoding: 'utf8' })) {
      if (!entry.endsWith('.ts') || entry.endsWith('.d.ts')) continue;
      const file = posix.join(folder, entry);
      graph.set(file, importsOf(file, readFileSync(join(root, file), 'utf8')));
    }
  }
  return graph;
}
