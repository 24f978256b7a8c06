/**
 * The migrations as a ClickHouse cluster runs them (`clickhouse.cluster`: the name of a cluster in the servers'
 * `remote_servers`, its shards with `internal_replication` true). Each table of a migration becomes two:
 * - `<table>_local` on every node, of the Replicated form of the file's engine (ReplicatedMergeTree, ...), one
 *   ZooKeeper path per shard (`/clickhouse/tables/{shard}/<database>/<table>_local`, replica `{replica}`: the
 *   `macros` every node defines), holding that shard's rows;
 * - `<table>` itself, a Distributed table over the `_local` ones: what the enricher inserts into and Grafana, SQL
 *   and `sidecarless query` read, so no reader or writer names anything else.
 * Materialized views read and write the `_local` tables, so each shard rolls up its own rows as they arrive, and a
 * query of a rollup merges the shards' partial states (the rollups store aggregate states, merged at query time).
 * Every DDL statement runs ON CLUSTER: one `sidecarless init` (or enricher start) creates the schema on every node.
 *
 * Sharding: a table with a `kafka_partition` column is sharded by it, so every batch the enricher inserts (one
 * topic partition's messages) lands whole on one shard, and its replay after a crash lands on the same shard, where
 * the replicated table's deduplication finds the batch's token (exactly once, src/enricher/clickhouse-sink.ts).
 * Other tables (rollups, benchmark runs) are sharded at random: their rows are written by views on the shards or
 * merged at query time. The deduplication window setting of the files (`non_replicated_deduplication_window`)
 * becomes its replicated twin.
 *
 * Only the statement kinds the shipped files use are rewritten, and anything else is refused naming the file, rather
 * than guessed at: CREATE TABLE … ENGINE = <family>MergeTree, CREATE MATERIALIZED VIEW (TO a table, or with an
 * engine of its own), CREATE VIEW, ALTER TABLE (the Distributed table takes the column changes, the `_local` one
 * every change), and INSERT … SELECT (unchanged: it reads and writes through the Distributed tables). The rules
 * match on the statement with its quoted text blanked, so a comment string never looks like SQL.
 */
import { migrationFileError, quotedEnd, strippedStatement, type MigrationFile } from './migration-files.js';

const LOCAL_SUFFIX = '_local';

const NAME = String.raw`\{\{database\}\}\.(\w+)`;
const CREATE_TABLE = new RegExp(String.raw`^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+${NAME}\s*(.*)$`, 'is');
const CREATE_VIEW = new RegExp(String.raw`^CREATE\s+VIEW\s+IF\s+NOT\s+EXISTS\s+${NAME}\s+(AS\b.*)$`, 'is');
const CREATE_MATERIALIZED_VIEW = new RegExp(String.raw`^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+${NAME}\s+((TO|ENGINE)\b.*)$`, 'is');
const ALTER_TABLE = new RegExp(String.raw`^ALTER\s+TABLE\s+${NAME}\s+(.*)$`, 'is');
const INSERT_SELECT = /^INSERT\s+INTO\s+\S+(\s*\([^)]*\))?\s+SELECT\b/is;
const ON_CLUSTER = /\bON\s+CLUSTER\b/i;
const ENGINE = /\bENGINE\s*=\s*(\w*)MergeTree\b/i;
/** A column definition of kafka_partition, and whether its type is the plain unsigned integer a sharding key needs. */
const PARTITION_COLUMN = /[(,]\s*kafka_partition\s+(\S+)/i;
/** Alterations a Distributed table takes: it has columns, and nothing else (no parts, TTL, indexes or settings). */
const COLUMN_ALTERATION = /^\s*(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b/i;

/** The ZooKeeper path of a shard's replicas of one table, and the replica's name, from each node's macros. */
const SHARD_REPLICA = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";
/** The migrations' own records live on every node: one path for the whole cluster, one replica per node. */
const EVERY_NODE_REPLICA = "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'";

/** A statement's text beside its mask (migration-files.ts strippedStatement), sliced alike. */
class Masked {
  constructor(
    readonly sql: string,
    readonly mask: string,
  ) {}

  /** The text from `start` (a position in the mask) on. */
  from(start: number): Masked {
    return this.slice(start, this.sql.length);
  }

  slice(start: number, end: number): Masked {
    return new Masked(this.sql.slice(start, end), this.mask.slice(start, end));
  }
}

/** Rewrites the migrations of one directory, in order: a file may name tables only the files before it created. */
export class ClusterRewrite {
  /** Tables created so far (each a `_local` and Distributed pair), by name. */
  private readonly tables = new Set<string>();
  /** Of those, the materialized views with an engine of their own: an ALTER of one is not rewritten. */
  private readonly views = new Set<string>();
  private readonly onCluster: string;

  constructor(private readonly cluster: string) {
    this.onCluster = `ON CLUSTER ${cluster}`;
  }

  createDatabase(database: string): string {
    return `CREATE DATABASE IF NOT EXISTS ${database} ${this.onCluster}`;
  }

  /** The migrations' bookkeeping table (migrations.ts), replicated to every node so each reads what init applied. */
  createMigrationsTable(table: string, columns: string, orderBy: string): string {
    return `CREATE TABLE IF NOT EXISTS ${table} ${this.onCluster} (${columns}) ENGINE = ReplicatedMergeTree(${EVERY_NODE_REPLICA}) ORDER BY ${orderBy}`;
  }

  /** The statements (templates, placeholders unfilled) that stand for one file's, in the order they must run. */
  statements(file: MigrationFile): string[] {
    const stripped = strippedStatement(file.text);
    const statement = new Masked(stripped.sql, stripped.mask);
    const { mask } = statement;
    if (ON_CLUSTER.test(mask)) throw refusal(file, 'it says ON CLUSTER itself: write the single-server statement, cluster mode adds it');
    let match: RegExpExecArray | null;
    if ((match = CREATE_TABLE.exec(mask))) return this.createTable(file, this.named(file, match[1]!), rest(statement, match, 2));
    if ((match = CREATE_MATERIALIZED_VIEW.exec(mask))) {
      return this.createMaterializedView(file, this.named(file, match[1]!), rest(statement, match, 2), match[3]!.toUpperCase() === 'TO');
    }
    if ((match = CREATE_VIEW.exec(mask))) return [`CREATE VIEW IF NOT EXISTS {{database}}.${match[1]} ${this.onCluster} ${rest(statement, match, 2).sql}`];
    if ((match = ALTER_TABLE.exec(mask))) return this.alterTable(file, match[1]!, rest(statement, match, 2));
    if (INSERT_SELECT.test(mask)) return [statement.sql];
    throw refusal(file, 'it is none of the statements cluster mode rewrites: CREATE TABLE IF NOT EXISTS … ENGINE = <family>MergeTree, CREATE [MATERIALIZED] VIEW IF NOT EXISTS, ALTER TABLE, INSERT INTO … SELECT');
  }

  /** A new table's or view's name, which must not collide with the `_local` names cluster mode makes. */
  private named(file: MigrationFile, name: string): string {
    if (name.endsWith(LOCAL_SUFFIX)) throw refusal(file, `${name} ends in ${LOCAL_SUFFIX}, which cluster mode gives the shard tables: choose another name`);
    return name;
  }

  private createTable(file: MigrationFile, table: string, body: Masked): string[] {
    if (!body.mask.startsWith('(')) throw refusal(file, `${table} copies another table's structure, whose engine cluster mode cannot see: list its columns`);
    const columnsEnd = closingParenthesis(body.mask, 0) + 1;
    const partition = PARTITION_COLUMN.exec(body.mask.slice(0, columnsEnd));
    if (partition !== null && !/^UInt(8|16|32|64)$/.test(partition[1]!.replace(/,$/, ''))) {
      throw refusal(file, `${table}'s kafka_partition is ${partition[1]}, not a plain unsigned integer: the cluster shards by it, and a batch's replay must land on the shard of its first insert`);
    }
    this.tables.add(table);
    const local = `CREATE TABLE IF NOT EXISTS {{database}}.${table}${LOCAL_SUFFIX} ${this.onCluster} ${body.sql.slice(0, columnsEnd)}${replicated(file, table, body.from(columnsEnd))}`;
    return [local, this.distributed(table, partition === null ? 'rand()' : 'kafka_partition')];
  }

  private createMaterializedView(file: MigrationFile, view: string, body: Masked, intoTable: boolean): string[] {
    if (intoTable) return [`CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.${view} ${this.onCluster} ${this.localNames(body)}`];
    // A view with an engine of its own holds rows: it becomes the shard's `_local` view, read through a Distributed table.
    const asSelect = /\bAS\s+SELECT\b/i.exec(body.mask);
    if (asSelect === null) throw refusal(file, `${view} has an engine but no AS SELECT`);
    this.tables.add(view);
    this.views.add(view);
    const engine = replicated(file, view, body.slice(0, asSelect.index));
    const local = `CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.${view}${LOCAL_SUFFIX} ${this.onCluster} ${engine}${this.localNames(body.from(asSelect.index))}`;
    return [local, this.distributed(view, 'rand()')];
  }

  /** Every alteration goes to the shard table; the column ones to the Distributed table too, in the same order. */
  private alterTable(file: MigrationFile, table: string, alterations: Masked): string[] {
    if (!this.tables.has(table)) throw refusal(file, `it alters ${table}, which no earlier migration created`);
    if (this.views.has(table)) throw refusal(file, `it alters ${table}, a view with an engine of its own: create a new view instead`);
    const columnChanges = topLevelParts(alterations)
      .filter((part) => COLUMN_ALTERATION.test(part.mask))
      .map((part) => part.sql.trim());
    const statements = [`ALTER TABLE {{database}}.${table}${LOCAL_SUFFIX} ${this.onCluster} ${alterations.sql}`];
    if (columnChanges.length > 0) statements.push(`ALTER TABLE {{database}}.${table} ${this.onCluster} ${columnChanges.join(', ')}`);
    return statements;
  }

  private distributed(table: string, shardingKey: string): string {
    const local = `${table}${LOCAL_SUFFIX}`;
    return `CREATE TABLE IF NOT EXISTS {{database}}.${table} ${this.onCluster} AS {{database}}.${local} ENGINE = Distributed(${this.cluster}, {{database}}, ${local}, ${shardingKey})`;
  }

  /** A view's sources and target: the shard's own tables, never the Distributed ones (no row crosses the network). */
  private localNames(text: Masked): string {
    return replaceUnquoted(text, new RegExp(NAME, 'g'), (match) => (this.tables.has(match[1]!) ? `${match[0]}${LOCAL_SUFFIX}` : undefined));
  }
}

/** The text with each match of `pattern` outside quoted text replaced by what `replace` gives for it (undefined: kept). */
function replaceUnquoted(text: Masked, pattern: RegExp, replace: (match: RegExpMatchArray) => string | undefined): string {
  let out = '';
  let last = 0;
  for (const match of text.mask.matchAll(pattern)) {
    const replacement = replace(match);
    if (replacement === undefined) continue;
    out += text.sql.slice(last, match.index) + replacement;
    last = match.index! + match[0].length;
  }
  return out + text.sql.slice(last);
}

/** The statement from a trailing capture group of a match on its mask. */
function rest(statement: Masked, match: RegExpExecArray, group: number): Masked {
  return statement.from(match.index + match[0].length - match[group]!.length);
}

/** An engine clause (and what follows it) with its MergeTree-family engine made Replicated, and the deduplication window setting with it. */
function replicated(file: MigrationFile, table: string, text: Masked): string {
  const engine = ENGINE.exec(text.mask);
  if (engine === null) throw refusal(file, `${table} has no engine of the MergeTree family, which cluster mode replicates`);
  const family = engine[1]!;
  if (family.toLowerCase().startsWith('replicated')) throw refusal(file, `${table} is Replicated already: write the single-node engine, cluster mode replicates it`);
  // The engine's own arguments (SummingMergeTree((a, b))) follow the replication path and replica name.
  let end = engine.index + engine[0].length;
  let args = '';
  const open = /^\s*\(/.exec(text.mask.slice(end));
  if (open !== null) {
    const close = closingParenthesis(text.mask, end + open[0].length - 1);
    args = text.sql.slice(end + open[0].length, close).trim();
    end = close + 1;
  }
  const engineClause = `ENGINE = Replicated${family}MergeTree(${args === '' ? SHARD_REPLICA : `${SHARD_REPLICA}, ${args}`})`;
  const settings = replaceUnquoted(text.from(end), /\bnon_replicated_deduplication_window\b/g, () => 'replicated_deduplication_window');
  return text.sql.slice(0, engine.index) + engineClause + settings;
}

/** Index of the `)` that closes the `(` at `open`, past nested ones and quoted text; the text's end if none. */
function closingParenthesis(sql: string, open: number): number {
  let depth = 0;
  for (let i = open; i < sql.length; i++) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === '`') i = quotedEnd(sql, i);
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return sql.length;
}

/** The comma-separated parts of a list, commas inside parentheses or quotes not counting. */
function topLevelParts(text: Masked): Masked[] {
  const parts: Masked[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.mask.length; i++) {
    const c = text.mask[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.from(start));
  return parts;
}

function refusal(file: MigrationFile, why: string): Error {
  return migrationFileError(`${file.path} cannot run on a ClickHouse cluster (clickhouse.cluster): ${why}`, file.path);
}
