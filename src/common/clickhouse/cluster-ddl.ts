/**
 * The migrations as a ClickHouse cluster runs them (`clickhouse.cluster`: the name of a cluster in the servers'
 * `remote_servers`). Each table of a migration becomes two:
 * - `<table>_local` on every node, of the Replicated form of the file's engine (ReplicatedMergeTree, ...), one
 *   ZooKeeper path per shard (`/clickhouse/tables/{shard}/<database>/<table>_local`, replica `{replica}`: the
 *   `macros` every node defines), holding that shard's rows;
 * - `<table>` itself, a Distributed table over the `_local` ones: what the enricher inserts into and Grafana, SQL
 *   and `sidecarless query` read, so no reader or writer names anything else.
 * Materialized views read and write the `_local` tables, so each shard rolls up its own rows as they arrive, and a
 * query of a rollup merges the shards' partial states (the rollups store aggregate states, merged at query time).
 * Every statement runs ON CLUSTER: one `sidecarless init` (or enricher start) creates the schema on every node.
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
 * engine of its own), CREATE VIEW, ALTER TABLE (applied to both tables; the Distributed one takes column changes),
 * and INSERT … SELECT (unchanged: it reads and writes through the Distributed tables).
 */
import { migrationFileError, quotedEnd, statementText, type MigrationFile } from './migration-files.js';

const LOCAL_SUFFIX = '_local';

const NAME = String.raw`\{\{database\}\}\.(\w+)`;
const CREATE_TABLE = new RegExp(String.raw`^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+${NAME}\s*(.*)$`, 'is');
const CREATE_VIEW = new RegExp(String.raw`^CREATE\s+VIEW\s+IF\s+NOT\s+EXISTS\s+${NAME}\s+(AS\b.*)$`, 'is');
const CREATE_MATERIALIZED_VIEW = new RegExp(String.raw`^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+${NAME}\s+((TO|ENGINE)\b.*)$`, 'is');
const ALTER_TABLE = new RegExp(String.raw`^ALTER\s+TABLE\s+${NAME}\s+(.*)$`, 'is');
const INSERT_SELECT = /^INSERT\s+INTO\b/i;
const ENGINE = /\bENGINE\s*=\s*(\w*)MergeTree\b/i;
const SHARDING_COLUMN = /[(,]\s*kafka_partition\s+UInt\d+/i;

/** The ZooKeeper path of a shard's replicas of one table, and the replica's name, from each node's macros. */
const SHARD_REPLICA = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";
/** The migrations' own records live on every node: one path for the whole cluster, one replica per node. */
const EVERY_NODE_REPLICA = "'/clickhouse/tables/all/{database}/{table}', '{shard}-{replica}'";

/** Rewrites the migrations of one directory, in order: a file may name tables only the files before it created. */
export class ClusterRewrite {
  /** Tables created so far (their `_local` and Distributed pair), by name. */
  private readonly tables = new Set<string>();
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
    const sql = statementText(file.text);
    let match: RegExpExecArray | null;
    if ((match = CREATE_TABLE.exec(sql))) return this.createTable(file, match[1]!, match[2]!);
    if ((match = CREATE_MATERIALIZED_VIEW.exec(sql))) return this.createMaterializedView(file, match[1]!, match[2]!, match[3]!.toUpperCase());
    if ((match = CREATE_VIEW.exec(sql))) return [`CREATE VIEW IF NOT EXISTS {{database}}.${match[1]} ${this.onCluster} ${match[2]}`];
    if ((match = ALTER_TABLE.exec(sql))) return this.alterTable(file, match[1]!, match[2]!);
    if (INSERT_SELECT.test(sql)) return [sql];
    throw refusal(file, 'it is none of the statements cluster mode rewrites: CREATE TABLE IF NOT EXISTS … ENGINE = <family>MergeTree, CREATE [MATERIALIZED] VIEW IF NOT EXISTS, ALTER TABLE, INSERT INTO … SELECT');
  }

  private createTable(file: MigrationFile, table: string, body: string): string[] {
    if (!body.startsWith('(')) throw refusal(file, `${table} copies another table's structure, whose engine cluster mode cannot see: list its columns`);
    this.tables.add(table);
    const local = `CREATE TABLE IF NOT EXISTS {{database}}.${table}${LOCAL_SUFFIX} ${this.onCluster} ${replicated(file, table, body)}`;
    const shardingKey = SHARDING_COLUMN.test(body) ? 'kafka_partition' : 'rand()';
    return [local, this.distributed(table, shardingKey)];
  }

  private createMaterializedView(file: MigrationFile, view: string, rest: string, form: string): string[] {
    if (form === 'TO') return [`CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.${view} ${this.onCluster} ${this.localNames(rest)}`];
    // A view with an engine of its own holds rows: it becomes the shard's `_local` view, read through a Distributed table.
    this.tables.add(view);
    const local = `CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.${view}${LOCAL_SUFFIX} ${this.onCluster} ${this.localNames(replicated(file, view, rest))}`;
    return [local, this.distributed(view, 'rand()')];
  }

  private alterTable(file: MigrationFile, table: string, alterations: string): string[] {
    if (!this.tables.has(table)) throw refusal(file, `it alters ${table}, which no earlier migration created`);
    return [
      `ALTER TABLE {{database}}.${table}${LOCAL_SUFFIX} ${this.onCluster} ${alterations}`,
      `ALTER TABLE {{database}}.${table} ${this.onCluster} ${alterations}`,
    ];
  }

  private distributed(table: string, shardingKey: string): string {
    const local = `${table}${LOCAL_SUFFIX}`;
    return `CREATE TABLE IF NOT EXISTS {{database}}.${table} ${this.onCluster} AS {{database}}.${local} ENGINE = Distributed(${this.cluster}, {{database}}, ${local}, ${shardingKey})`;
  }

  /** A view's sources and target: the shard's own tables, never the Distributed ones (no row crosses the network). */
  private localNames(sql: string): string {
    return sql.replace(new RegExp(NAME, 'g'), (name, table: string) => (this.tables.has(table) ? `${name}${LOCAL_SUFFIX}` : name));
  }
}

/** The body with its MergeTree-family engine made Replicated, and the deduplication window setting with it. */
function replicated(file: MigrationFile, table: string, body: string): string {
  const engine = ENGINE.exec(body);
  if (engine === null) throw refusal(file, `${table} has no engine of the MergeTree family, which cluster mode replicates`);
  const family = engine[1]!;
  if (family.toLowerCase().startsWith('replicated')) throw refusal(file, `${table} is Replicated already: write the single-node engine, cluster mode replicates it`);
  // The engine's own arguments (SummingMergeTree((a, b))) follow the replication path and replica name.
  let end = engine.index + engine[0].length;
  let args = '';
  const open = /^\s*\(/.exec(body.slice(end));
  if (open !== null) {
    const close = closingParenthesis(body, end + open[0].length - 1);
    args = body.slice(end + open[0].length, close).trim();
    end = close + 1;
  }
  const engineClause = `ENGINE = Replicated${family}MergeTree(${args === '' ? SHARD_REPLICA : `${SHARD_REPLICA}, ${args}`})`;
  return (body.slice(0, engine.index) + engineClause + body.slice(end)).replace(/\bnon_replicated_deduplication_window\b/g, 'replicated_deduplication_window');
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

function refusal(file: MigrationFile, why: string): Error {
  return migrationFileError(`${file.path} cannot run on a ClickHouse cluster (clickhouse.cluster): ${why}`, file.path);
}
