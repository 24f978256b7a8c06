/**
 * The migration files of a directory (shipped: schemas/clickhouse/), read and checked before ClickHouse is
 * touched. The rules a file must keep are in migrations.ts; this module refuses the ones it can see in the files
 * alone: a name without a version, a gap or a repeated version, more than one statement, an unknown placeholder.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeError, SidecarlessError } from '../errors.js';

export interface MigrationFile {
  version: number;
  /** File name, e.g. `0002_flows_bytes_total.sql`: what the records and every error name. */
  name: string;
  path: string;
  /** The file exactly as shipped, placeholders unfilled. */
  text: string;
  /** sha256 of `text`, hex: a filled-in value (the TTL) may change between runs, the file may not. */
  checksum: string;
}

const FILE_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** A problem with the files themselves: the message names the file and what to change. */
export function migrationFileError(message: string, path: string): SidecarlessError {
  return new SidecarlessError(message, { context: { component: 'clickhouse migrations', file: path } });
}

/** Every migration in `directory`, by version; throws unless they run 1, 2, 3 … each in one file. */
export function readMigrationFiles(directory: string): MigrationFile[] {
  let names: string[];
  try {
    names = readdirSync(directory).filter((name) => name.endsWith('.sql'));
  } catch (error) {
    throw migrationFileError(`cannot read the ClickHouse migrations directory ${directory}: ${describeError(error)}`, directory);
  }
  const files = names.map((name) => {
    const path = join(directory, name);
    const version = FILE_NAME.exec(name)?.[1];
    if (version === undefined) throw migrationFileError(`${path} is not named NNNN_<what>.sql (four digits, lower-case name): rename it, or move it out of ${directory}`, path);
    const text = readFileSync(path, 'utf8');
    const second = secondStatementAt(text);
    if (second >= 0) {
      const line = text.slice(0, second).split('\n').length;
      throw migrationFileError(`${path} holds more than one statement (the second starts on line ${line}): put each statement in its own numbered file`, path);
    }
    return { version: Number(version), name, path, text, checksum: createHash('sha256').update(text).digest('hex') };
  });
  files.sort((a, b) => a.version - b.version || a.name.localeCompare(b.name));
  files.forEach((file, i) => {
    const previous = files[i - 1];
    if (previous?.version === file.version) {
      throw migrationFileError(`${previous.name} and ${file.name} in ${directory} both have version ${file.version}: give one of them the next free number`, file.path);
    }
    if (file.version !== i + 1) {
      const after = previous === undefined ? 'is the first file' : `follows ${previous.name}`;
      throw migrationFileError(`version ${i + 1} is missing from ${directory} (${file.name} ${after}): number migrations 0001, 0002, … without gaps`, file.path);
    }
  });
  return files;
}

/**
 * The file's statement (or `text`, what cluster mode made of it) with its `{{placeholder}}`s replaced. The values come from validated configuration (an
 * identifier, an integer): nothing else ever reaches migration SQL, as no migration can take query parameters.
 */
export function fillPlaceholders(file: MigrationFile, values: Readonly<Record<string, string>>, text = file.text): string {
  return text.replace(/\{\{(\w+)\}\}/g, (placeholder, key: string) => {
    const value = values[key];
    if (value === undefined) throw migrationFileError(`${file.path} uses ${placeholder}; the placeholders are ${Object.keys(values).map((k) => `{{${k}}}`).join(', ')}`, file.path);
    return value;
  });
}

/**
 * The statement without its comments (each replaced by one space) and without the final `;`, and beside it its
 * mask: the same text with the contents of its strings and quoted names blanked, of the same length, so a position
 * found in the mask is the position in the text. What the cluster rewrite (cluster-ddl.ts) reads, so that words in
 * a comment or a string never look like SQL.
 */
export function strippedStatement(text: string): { sql: string; mask: string } {
  let sql = '';
  let mask = '';
  for (let i = 0; i < text.length; i++) {
    const comment = commentEnd(text, i);
    if (comment !== undefined) {
      sql += ' ';
      mask += ' ';
      i = comment;
    } else if (text[i] === "'" || text[i] === '"' || text[i] === '`') {
      const end = Math.min(quotedEnd(text, i), text.length - 1);
      const quoted = text.slice(i, end + 1);
      sql += quoted;
      mask += quoted.length < 2 ? quoted : quoted[0] + ' '.repeat(quoted.length - 2) + quoted.at(-1);
      i = end;
    } else {
      sql += text[i];
      mask += text[i];
    }
  }
  const trimmed = sql.trim().replace(/;$/, '').trim();
  const start = sql.length - sql.trimStart().length;
  return { sql: trimmed, mask: mask.slice(start, start + trimmed.length) };
}

/**
 * Where a second statement starts, or -1. The embedded engine runs every statement of a text while a server
 * refuses more than one, and ClickHouse DDL has no transactions: one statement per file keeps both engines alike
 * and a migration either recorded or not at all. Skips strings, quoted names and comments; a final `;` is fine.
 */
function secondStatementAt(sql: string): number {
  let ended = false;
  for (let i = 0; i < sql.length; i++) {
    if (/\s/.test(sql[i]!)) continue;
    const comment = commentEnd(sql, i);
    if (comment !== undefined) i = comment;
    else if (ended) return i;
    else if (sql[i] === ';') ended = true;
    else if (sql[i] === "'" || sql[i] === '"' || sql[i] === '`') i = quotedEnd(sql, i);
  }
  return -1;
}

/** Index of the last character of the comment that starts at `start`, or undefined when none starts there. */
function commentEnd(sql: string, start: number): number | undefined {
  if (sql.startsWith('--', start)) {
    const newline = sql.indexOf('\n', start);
    return newline < 0 ? sql.length : newline;
  }
  if (sql.startsWith('/*', start)) {
    const close = sql.indexOf('*/', start + 2);
    return close < 0 ? sql.length : close + 1;
  }
  return undefined;
}

/** Index of the quote that closes the string or name opened at `start` (backslash escapes, doubled quotes). */
export function quotedEnd(sql: string, start: number): number {
  const quote = sql[start];
  for (let i = start + 1; i < sql.length; i++) {
    if (sql[i] === '\\') i++;
    else if (sql[i] === quote) {
      if (sql[i + 1] !== quote) return i;
      i++;
    }
  }
  return sql.length;
}
