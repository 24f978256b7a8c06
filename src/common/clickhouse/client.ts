/**
 * One ClickHouse client type for both ways of reaching ClickHouse (DESIGN.md, Storage): a server over HTTP(S)
 * when a URL is configured, otherwise the embedded engine (chdb) in this process. Callers write the same SQL and
 * the same @clickhouse/client calls either way.
 *
 * Differences callers must still respect:
 * - chdb: `clickhouse_settings` passed on one call stay in force for later calls of the same client (one
 *   session); pass the same settings everywhere or none. RowBinary results come back corrupted: use JSON or
 *   TabSeparated formats. One on-disk path per process: a second client on another path is refused while the
 *   first is open.
 * - Old servers (the Debian 18.16 package of the local stack) lack JSONCompactEachRow, the client's default
 *   insert format (pass `format: 'JSONEachRow'`), and modern types (DateTime64, IPv6, TTL, query parameters).
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { ConfigError, describeError } from '../errors.js';

export interface ClickHouseOptions {
  /** http(s)://host:port of a server. Without it, ClickHouse runs embedded. */
  url?: string;
  username?: string;
  password?: string;
  database?: string;
  /** PEM file paths; only with an https:// url. */
  tls?: { caPath?: string; certPath?: string; keyPath?: string };
  /** Data directory of the embedded engine; relative paths are resolved against the working directory. */
  embeddedPath?: string;
  /** clickhouse.cluster: the tables are Distributed over a cluster's shards (cluster-ddl.ts); needs a url. */
  cluster?: string;
}

export const defaultEmbeddedPath = '.stack/chdb';

/**
 * The embedded engine's own calls, for what the client's contract cannot carry (a binary insert: the chdb
 * connection turns an insert body into text). SQL run here goes to the same session as the client's.
 */
export interface EmbeddedEngine {
  queryAsync(sql: string, options?: { format?: string }): Promise<unknown>;
  /** The session's data directory. */
  readonly session: { readonly path: string };
}

const embeddedEngines = new WeakMap<ClickHouseClient, EmbeddedEngine>();

/** The embedded engine behind a client from createClickHouse, or undefined for a server over HTTP. */
export function embeddedEngine(client: ClickHouseClient): EmbeddedEngine | undefined {
  return embeddedEngines.get(client);
}

function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(key, `cannot read PEM file ${path}: ${describeError(error)}`);
  }
}

function tlsOptions(url: string, tls: NonNullable<ClickHouseOptions['tls']>): ClickHouseClientConfigOptions['tls'] {
  if (!url.startsWith('https://')) throw new ConfigError('clickhouse.tls', `TLS files are set but the url ${url} is not https://`);
  if (tls.caPath === undefined) throw new ConfigError('clickhouse.tls.caPath', 'TLS to ClickHouse needs the CA certificate that signed the server');
  const ca_cert = readPem(tls.caPath, 'clickhouse.tls.caPath');
  if (tls.certPath === undefined && tls.keyPath === undefined) return { ca_cert };
  if (tls.certPath === undefined || tls.keyPath === undefined) {
    throw new ConfigError(tls.certPath === undefined ? 'clickhouse.tls.certPath' : 'clickhouse.tls.keyPath', 'a client certificate and its key go together: set both or neither');
  }
  return { ca_cert, cert: readPem(tls.certPath, 'clickhouse.tls.certPath'), key: readPem(tls.keyPath, 'clickhouse.tls.keyPath') };
}

async function embeddedConnection(path: string): Promise<NonNullable<ClickHouseClientConfigOptions['connection']>> {
  mkdirSync(path, { recursive: true });
  // Loaded only here: chdb maps a ~500 MB engine into the process, which an HTTP-only role must not pay for.
  const { createChdbConnection } = await import('chdb/connection');
  try {
    // chdb implements the client's Connection contract against its own copy of the contract's types, which
    // TypeScript cannot identify with the client's; the cast states that they are the same contract.
    return createChdbConnection({ path }) as unknown as NonNullable<ClickHouseClientConfigOptions['connection']>;
  } catch (error) {
    const holder = holderOf(path);
    if (holder === undefined) throw error;
    throw new ConfigError(
      'clickhouse.embeddedPath',
      `the embedded ClickHouse at ${path} is open in process ${holder} (a running enricher, the demo): one process at a time can open it; stop that one, or set clickhouse.url to a ClickHouse server`,
    );
  }
}

/**
 * The live process other than this one that has the engine's directory open, if any. The engine locks the file
 * `status` there and writes its pid into it while open, and removes it on close; the lock itself is not visible from
 * here (chdb prints the engine's "Cannot lock file" on stderr and reports only that the connection failed).
 */
function holderOf(path: string): number | undefined {
  let pid: number;
  try {
    pid = Number(/^PID: (\d+)$/m.exec(readFileSync(join(path, 'status'), 'utf8'))?.[1]);
  } catch {
    return undefined; // no status file: nobody has it open
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

export async function createClickHouse(options: ClickHouseOptions = {}): Promise<ClickHouseClient> {
  const common: ClickHouseClientConfigOptions = {
    application: 'sidecarless',
    // 64-bit integers (byte counters, nanosecond timestamps) as JSON strings on every transport: chdb and current
    // servers print them as numbers by default, which JavaScript silently rounds above 2^53.
    clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
  };
  if (options.database !== undefined) common.database = options.database;
  // The configuration always has a tls section; it means TLS only when a file is named in it.
  const tls = options.tls && Object.values(options.tls).some((path) => path !== undefined) ? options.tls : undefined;
  if (options.url === undefined) {
    if (tls !== undefined) throw new ConfigError('clickhouse.tls', 'TLS files are set but no clickhouse url: the embedded engine has no network');
    if (options.cluster !== undefined) throw new ConfigError('clickhouse.cluster', 'a cluster is set but no clickhouse url: the embedded engine is one node');
    const connection = await embeddedConnection(resolve(options.embeddedPath ?? defaultEmbeddedPath));
    const client = createClient({ ...common, connection });
    embeddedEngines.set(client, (connection as unknown as { chdb: EmbeddedEngine }).chdb);
    return client;
  }
  try {
    new URL(options.url);
  } catch {
    throw new ConfigError('clickhouse.url', `"${options.url}" is not a URL (expected http(s)://host:port)`);
  }
  const config: ClickHouseClientConfigOptions = { ...common, url: options.url };
  // On a cluster an insert into a Distributed table returns once its shard has the rows, not once the receiving
  // node queued them for sending: offsets are committed after the insert, and the shard's replicated table applies
  // the batch's deduplication token then (the setting's older name, which every version since 2018 accepts). An ON
  // CLUSTER statement (the migrations) waits for every node: the server gives up first, naming the nodes that did
  // not answer, where the client's 30 s request timeout could say only "Timeout error".
  if (options.cluster !== undefined) {
    config.clickhouse_settings = { ...common.clickhouse_settings, insert_distributed_sync: 1, distributed_ddl_task_timeout: '25' };
  }
  if (options.username !== undefined) config.username = options.username;
  if (options.password !== undefined) config.password = options.password;
  if (tls !== undefined) config.tls = tlsOptions(options.url, tls);
  return createClient(config);
}
