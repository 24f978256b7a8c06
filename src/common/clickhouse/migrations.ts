/**
 * Numbered ClickHouse migrations: the files NNNN_<what>.sql of a directory (shipped: schemas/clickhouse/), applied
 * in order and each recorded in `<database>.schema_migrations` once it succeeded, on both ways of reaching
 * ClickHouse (client.ts): the embedded engine and a server over HTTP, down to the local stack's 18.16.
 *
 * A migration file
 * 1. is named with the next free four-digit version, e.g. 0002_flows_bytes_total.sql: no gaps, no repeats;
 * 2. holds one statement; comments are fine, the final `;` optional (why: migration-files.ts);
 * 3. can run twice without harm (CREATE … IF NOT EXISTS, ALTER TABLE … ADD COLUMN IF NOT EXISTS where the engine
 *    has it), because two processes may apply it at the same time (see applyOne);
 * 4. never changes once applied anywhere: its checksum is recorded and compared at every start, so a change to the
 *    schema is a new file;
 * 5. names its tables `{{database}}.<table>` and may use `{{ttl_days}}`, filled in from validated configuration;
 * 6. is a statement cluster mode can rewrite (cluster-ddl.ts): with `clickhouse.cluster` set, each file runs as
 *    replicated `_local` tables and Distributed tables under the file's names, ON CLUSTER, and the records are
 *    replicated to every node.
 *
 * Versions recorded in the database that no file here has (a newer release migrated it) are reported, not refused:
 * migrations add to the schema, so an older release keeps working beside them, and a rollback must be able to start.
 */
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { ConfigError, describeError, SidecarlessError } from '../errors.js';
import { ClusterRewrite } from './cluster-ddl.js';
import { fillPlaceholders, migrationFileError, readMigrationFiles, strippedStatement, type MigrationFile } from './migration-files.js';

export const shippedMigrations = fileURLToPath(new URL('../../../../schemas/clickhouse/', import.meta.url));

export interface MigrateOptions {
  database: string;
  ttlDays: number;
  /** Directory of NNNN_<what>.sql files; default: the shipped schemas/clickhouse/. */
  directory?: string;
  /** The cluster (clickhouse.cluster) to create the schema on, as cluster-ddl.ts says; unset: one server. */
  cluster?: string;
  /**
   * Also run the applied files' schema statements again, not recorded again (data statements, INSERT … SELECT,
   * not): each can run twice (rule 3), and on a cluster they run ON CLUSTER, so a node added since gets every
   * table the others have (`sidecarless init --reapply`).
   */
  reapply?: boolean;
}

export interface MigrateResult {
  /** File names this call applied, in order. */
  applied: string[];
  /** Versions recorded in the database that no file here has: a newer release migrated it. */
  newer: number[];
  /** With `reapply`: the applied files gone through again (their schema statements ran; a data-only file runs none). */
  reapplied?: string[];
}

interface Recorded {
  version: number;
  name: string;
  checksum: string;
}

/** Brings `options.database` up to the last migration; returns what it applied. Throws naming the file at fault. */
export async function migrate(client: ClickHouseClient, options: MigrateOptions): Promise<MigrateResult> {
  const { database, ttlDays, directory = shippedMigrations, cluster, reapply = false } = options;
  if (!IDENTIFIER.test(database)) throw new ConfigError('clickhouse.database', 'expected an identifier');
  if (cluster !== undefined && !IDENTIFIER.test(cluster)) throw new ConfigError('clickhouse.cluster', 'expected an identifier');
  if (!Number.isInteger(ttlDays) || ttlDays < 1) throw new ConfigError('clickhouse.ttlDays', 'expected a positive integer');
  const files = readMigrationFiles(directory);
  const rewrite = cluster === undefined ? undefined : new ClusterRewrite(cluster);
  // Every file filled in (and rewritten for a cluster) before ClickHouse is touched: a bad placeholder or statement
  // in a later file stops nothing half way.
  const values = { database, ttl_days: String(ttlDays) };
  const statements = files.map((file) => ({
    file,
    sql: (rewrite?.statements(file) ?? [file.text]).map((text) => fillPlaceholders(file, values, text)),
  }));
  const table = `${database}.schema_migrations`;
  // Created only when missing: on a cluster each statement waits for every node, and a role's start must not
  // depend on every node being up when there is nothing to create (pending migrations do need them all).
  let recordsEngine = await engineOf(client, database, 'schema_migrations');
  if (recordsEngine === undefined || reapply) {
    const createDatabase = rewrite?.createDatabase(database) ?? `CREATE DATABASE IF NOT EXISTS ${database}`;
    await bookkeeping(`create the database ${database}`, () => client.command({ query: createDatabase }));
    // Plain MergeTree and types every supported version has (18.16: no DateTime64, LowCardinality or TTL). A version
    // that two processes recorded at once stays visible as two rows (or one, when a replicated table takes the second
    // for a repeat), which readRecorded accepts when they agree and refuses when they do not; a ReplacingMergeTree
    // could merge a disagreement away unseen.
    const columns = 'version UInt32, name String, checksum String, applied_at DateTime';
    const createTable = rewrite?.createMigrationsTable(table, columns, 'version') ?? `CREATE TABLE IF NOT EXISTS ${table} (${columns}) ENGINE = MergeTree ORDER BY version`;
    await bookkeeping(`create ${table}`, () => client.command({ query: createTable }));
    recordsEngine = await engineOf(client, database, 'schema_migrations');
    if (recordsEngine === undefined) {
      throw new SidecarlessError(
        `${table} is not there after it was created${cluster === undefined ? '' : `: is the server at clickhouse.url a node of the cluster "${cluster}" (clickhouse.cluster, its remote_servers)?`}`,
        { context: { component: 'clickhouse migrations', database } },
      );
    }
  }
  checkLayout(recordsEngine, database, cluster);
  const recorded = await readRecorded(client, table);
  // Every applied file unchanged before anything runs.
  for (const { file } of statements) {
    const record = recorded.get(file.version);
    if (record !== undefined) checkUnchanged(file, record, table, files.length);
  }
  const applied: string[] = [];
  const reapplied: string[] = [];
  for (const { file, sql } of statements) {
    if (!recorded.has(file.version)) {
      await applyOne(client, table, file, sql, files.length);
      applied.push(file.name);
    } else if (reapply) {
      for (const statement of sql.filter((text) => !INSERT.test(strippedStatement(text).sql))) {
        await bookkeeping(`apply ${file.name} again`, () => client.command({ query: statement }));
      }
      reapplied.push(file.name);
    }
  }
  const result: MigrateResult = { applied, newer: [...recorded.keys()].filter((version) => version > files.length) };
  return reapply ? { ...result, reapplied } : result;
}

/**
 * Runs one migration and records it. Two processes may start together (enricher replicas on one server), and
 * ClickHouse offers no transaction or lock around DDL on the versions we support. So instead: the statement is
 * idempotent (rule 3), and whether it succeeded or failed, the record is read again before writing: a version
 * another process recorded meanwhile is not recorded twice, and a failure is accepted when another process
 * recorded the same file (an engine without IF NOT EXISTS for an ALTER refuses the second run). Both processes can
 * still pass the re-read before either writes: that leaves two equal rows, which readRecorded accepts. The
 * embedded engine holds its data directory for one process, so only servers meet this.
 */
async function applyOne(client: ClickHouseClient, table: string, file: MigrationFile, statements: string[], lastFile: number): Promise<void> {
  let failure: unknown;
  try {
    for (const sql of statements) await client.command({ query: sql });
  } catch (error) {
    failure = error;
  }
  const other = (await readRecorded(client, table)).get(file.version);
  if (other !== undefined) return checkUnchanged(file, other, table, lastFile);
  if (failure !== undefined) {
    throw new SidecarlessError(
      `ClickHouse migration ${file.path} failed: ${describeError(failure)}; fix the file (one statement that can run twice) or the database, then start again: the migrations before it are recorded and will be skipped`,
      { cause: failure, context: { component: 'clickhouse migrations', file: file.path } },
    );
  }
  // Seconds since the epoch: unambiguous whatever the server's time zone, and every version parses them.
  const record = { version: file.version, name: file.name, checksum: file.checksum, applied_at: Math.floor(Date.now() / 1000) };
  await bookkeeping(`record ${file.name} in ${table}`, () => client.insert({ table, values: [record], format: 'JSONEachRow' }));
}

/**
 * Refuses a database whose records were made for the other layout: a single server's schema switched to
 * clickhouse.cluster would find every version applied and keep its plain tables on one node, and the reverse would
 * write into Distributed tables the configuration no longer names. Which one it is shows in the records' engine.
 */
function checkLayout(recordsEngine: string, database: string, cluster: string | undefined): void {
  const replicated = recordsEngine.startsWith('Replicated');
  if (replicated === (cluster !== undefined)) return;
  const made = replicated ? 'on a cluster' : 'on a single server';
  throw new SidecarlessError(
    `the ClickHouse database ${database} was migrated ${made}, and clickhouse.cluster is ${cluster === undefined ? 'unset' : `"${cluster}"`}: set clickhouse.cluster as it was when the database was created, or use a new clickhouse.database (its rows stay where they are)`,
    { context: { component: 'clickhouse migrations', database } },
  );
}

/** The engine of a table, undefined when there is none (or no database). Names are validated identifiers. */
async function engineOf(client: ClickHouseClient, database: string, table: string): Promise<string | undefined> {
  const rows = await bookkeeping(`look for ${database}.${table}`, async () => {
    const result = await client.query({ query: `SELECT engine FROM system.tables WHERE database = '${database}' AND name = '${table}'`, format: 'JSONEachRow' });
    return result.json<{ engine: string }>();
  });
  return rows[0]?.engine;
}

/** Recorded migrations by version; throws when two rows of one version name different files. */
async function readRecorded(client: ClickHouseClient, table: string): Promise<Map<number, Recorded>> {
  const rows = await bookkeeping(`read ${table}`, async () => {
    const result = await client.query({ query: `SELECT version, name, checksum FROM ${table} ORDER BY version, applied_at`, format: 'JSONEachRow' });
    return result.json<Recorded>();
  });
  const byVersion = new Map<number, Recorded>();
  for (const row of rows) {
    const version = Number(row.version);
    const first = byVersion.get(version);
    if (first !== undefined && first.checksum !== row.checksum) {
      throw new SidecarlessError(
        `${table} records version ${version} twice with different files (${first.name} ${first.checksum.slice(0, 12)}, ${row.name} ${row.checksum.slice(0, 12)}): two releases migrated at once; find which one the schema holds and delete the other row`,
        { context: { component: 'clickhouse migrations', table } },
      );
    }
    byVersion.set(version, first ?? { ...row, version });
  }
  return byVersion;
}

function checkUnchanged(file: MigrationFile, record: Recorded, table: string, lastFile: number): void {
  if (record.checksum === file.checksum) return;
  throw migrationFileError(
    `${file.path} changed after it was applied (${table} records ${record.name} with checksum ${record.checksum.slice(0, 12)}, the file now has ${file.checksum.slice(0, 12)}): restore the file and put the change in a new migration (${versionText(lastFile + 1)}_<what>.sql)`,
    file.path,
  );
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A data statement: it runs once, when its file is applied. */
const INSERT = /^INSERT\b/i;

function versionText(version: number): string {
  return String(version).padStart(4, '0');
}

/** The migrations' own queries: a failure here is about reaching ClickHouse or its rights, not about a file. */
async function bookkeeping<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new SidecarlessError(
      `cannot ${what} for the ClickHouse migrations: ${describeError(error)}; check that ClickHouse is reachable (clickhouse.url) and that its user may create databases and tables`,
      { cause: error, context: { component: 'clickhouse migrations' } },
    );
  }
}
