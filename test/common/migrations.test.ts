/**
 * src/common/clickhouse/migrations.ts on both engines, the embedded one (chdb, in a temporary directory) and the
 * local stack's ClickHouse 18.16 over HTTP, each test in a database of its own that is dropped whatever the
 * result; the upgrade of the shipped flows table by a second migration; and the checks on the files alone.
 * Fixtures: test/fixtures/clickhouse-migrations/ (its README says what each directory shows).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { fillPlaceholders, readMigrationFiles } from '../../src/common/clickhouse/migration-files.js';
import { migrate, shippedMigrations } from '../../src/common/clickhouse/migrations.js';
import { ConfigError, SidecarlessError } from '../../src/common/errors.js';
import { BatchLedger, replayable } from '../../src/enricher/batch-ledger.js';
import { clickHouseHttpPort, localClickHouseUrl, localHost } from '../../src/lab/stack/endpoints.js';
import { queryRows } from '../helpers/clickhouse.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/clickhouse-migrations/', import.meta.url));
const BASIC = join(FIXTURES, 'basic');
const BASIC_FILES = ['0001_events.sql', '0002_events_copy.sql', '0003_retention_view.sql'];

const checksum = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A temporary directory holding `files` (name -> text), removed after `run` whatever happened. */
async function withDirectory<T>(files: Record<string, string>, run: (directory: string) => Promise<T>): Promise<T> {
  const directory = mkdtempSync(join(tmpdir(), 'sidecarless-migrations-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(directory, name), text);
    return await run(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

const basicFiles = () => Object.fromEntries(BASIC_FILES.map((name) => [name, readFileSync(join(BASIC, name), 'utf8')]));

/** A database name no other run uses, dropped after `run` whatever happened. */
async function withDatabase(client: ClickHouseClient, run: (database: string) => Promise<void>): Promise<void> {
  const database = uniqueName('test_migrations_');
  try {
    await run(database);
  } finally {
    await client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  }
}

async function refusal(run: Promise<unknown> | (() => unknown)): Promise<SidecarlessError> {
  const error = await (typeof run === 'function' ? Promise.resolve().then(run) : run).then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SidecarlessError, `expected a SidecarlessError, got ${String(error)}`);
  return error;
}

interface Recorded {
  version: number;
  name: string;
  checksum: string;
  applied_at: number;
}

const recorded = (client: ClickHouseClient, database: string) =>
  queryRows<Recorded>(client, `SELECT version, name, checksum, toUnixTimestamp(applied_at) AS applied_at FROM ${database}.schema_migrations ORDER BY version, applied_at`);

/** A row of migration 1's flows table, timed now: inside the TTL (the server's time zone does not matter at 7 days). */
function flowsRow(values: Record<string, unknown>): Record<string, unknown> {
  const time = new Date().toISOString().replace('T', ' ').replace('Z', '');
  return {
    time, start_time: time, connection_id: 'c', record_kind: 'final', observer_side: 'client', network_transport: 'tcp', network_type: 'ipv4',
    client_address: '::ffff:10.0.0.1', server_address: '::ffff:10.0.0.2', server_port: 80,
    ...values,
  };
}

const shippedFiles = () => readdirSync(shippedMigrations).filter((name) => name.endsWith('.sql')).sort();

/** The first `count` shipped migrations, whatever later ones ship: the schema of a database made by an older release. */
const shippedThrough = (count: number) =>
  Object.fromEntries(shippedFiles().slice(0, count).map((name) => [name, readFileSync(join(shippedMigrations, name), 'utf8')]));

/** Migration 1 alone: the schema of a database created by release 1. */
const release1 = () => shippedThrough(1);

const versions = async (client: ClickHouseClient, database: string) => (await recorded(client, database)).map((row) => row.version);

/** The same tests on either engine: only SQL that both understand (the basic fixtures). */
function engineTests(connection: () => ClickHouseClient): void {
  it('applies the files in order, fills in the placeholders and records each with its checksum and time', async () => {
    const client = connection();
    await withDatabase(client, async (database) => {
      const start = Math.floor(Date.now() / 1000);
      assert.deepEqual(await migrate(client, { database, ttlDays: 11, directory: BASIC }), { applied: BASIC_FILES, newer: [] });
      const end = Math.ceil(Date.now() / 1000);
      const rows = await recorded(client, database);
      assert.deepEqual(
        rows.map(({ version, name, checksum }) => ({ version, name, checksum })),
        BASIC_FILES.map((name, i) => ({ version: i + 1, name, checksum: checksum(join(BASIC, name)) })),
      );
      rows.forEach((row, i) => assert.ok(row.applied_at >= Math.max(start, rows[i - 1]?.applied_at ?? 0) && row.applied_at <= end, `applied_at ${row.applied_at} of version ${row.version}`));
      const tables = await queryRows<{ name: string }>(client, `SELECT name FROM system.tables WHERE database = '${database}' ORDER BY name`);
      assert.deepEqual(tables.map((t) => t.name), ['events', 'events_copy', 'retention', 'schema_migrations']);
      assert.deepEqual(await queryRows(client, `SELECT ttl_days, text FROM ${database}.retention`), [{ ttl_days: 11, text: 'a;b' }]);
    });
  });

  it('applies nothing the second time', async () => {
    const client = connection();
    await withDatabase(client, async (database) => {
      await migrate(client, { database, ttlDays: 7, directory: BASIC });
      assert.deepEqual(await migrate(client, { database, ttlDays: 7, directory: BASIC }), { applied: [], newer: [] });
      assert.deepEqual(await versions(client, database), [1, 2, 3]);
    });
  });

  it('reports, and accepts, versions that a newer release recorded', async () => {
    const client = connection();
    await withDatabase(client, async (database) => {
      await migrate(client, { database, ttlDays: 7, directory: BASIC });
      await client.insert({ table: `${database}.schema_migrations`, values: [{ version: 4, name: '0004_later.sql', checksum: 'ab', applied_at: 1 }], format: 'JSONEachRow' });
      assert.deepEqual(await migrate(client, { database, ttlDays: 7, directory: BASIC }), { applied: [], newer: [4] });
    });
  });

  it('refuses an applied file that changed, naming it, and applies nothing after it', async () => {
    const client = connection();
    await withDirectory(basicFiles(), (directory) =>
      withDatabase(client, async (database) => {
        await migrate(client, { database, ttlDays: 7, directory });
        appendFileSync(join(directory, '0002_events_copy.sql'), '-- an edit after release\n');
        writeFileSync(join(directory, '0004_more.sql'), 'CREATE TABLE IF NOT EXISTS {{database}}.more (id UInt64) ENGINE = MergeTree ORDER BY id\n');
        const error = await refusal(migrate(client, { database, ttlDays: 7, directory }));
        assert.equal(error.context.file, join(directory, '0002_events_copy.sql'));
        assert.match(error.message, /0002_events_copy\.sql changed after it was applied .*put the change in a new migration \(0005_<what>\.sql\)/);
        assert.deepEqual(await versions(client, database), [1, 2, 3]);
        assert.deepEqual(await queryRows(client, `SELECT name FROM system.tables WHERE database = '${database}' AND name = 'more'`), []);
      }),
    );
  });

  it('refuses a gap in the versions before it touches the database', async () => {
    const client = connection();
    const { '0002_events_copy.sql': _, ...files } = basicFiles();
    await withDirectory(files, (directory) =>
      withDatabase(client, async (database) => {
        const error = await refusal(migrate(client, { database, ttlDays: 7, directory }));
        assert.equal(error.context.file, join(directory, '0003_retention_view.sql'));
        assert.match(error.message, /version 2 is missing .*\(0003_retention_view\.sql follows 0001_events\.sql\): number migrations 0001, 0002, … without gaps/);
        assert.deepEqual(await queryRows(client, `SELECT count() AS n FROM system.databases WHERE name = '${database}'`), [{ n: '0' }]);
      }),
    );
  });

  it('stops at a failing file, naming it, with the files before it recorded; a fixed file applies on the next start', async () => {
    const client = connection();
    const broken = 'CREATE TABLE IF NOT EXISTS {{database}}.broken (id NoSuchType) ENGINE = MergeTree ORDER BY id\n';
    await withDirectory({ ...basicFiles(), '0004_broken.sql': broken }, (directory) =>
      withDatabase(client, async (database) => {
        const error = await refusal(migrate(client, { database, ttlDays: 7, directory }));
        assert.equal(error.context.file, join(directory, '0004_broken.sql'));
        assert.match(error.message, /^ClickHouse migration .*0004_broken\.sql failed: .*NoSuchType.*the migrations before it are recorded/s);
        assert.deepEqual(await versions(client, database), [1, 2, 3]);
        writeFileSync(join(directory, '0004_broken.sql'), broken.replace('NoSuchType', 'UInt64'));
        assert.deepEqual(await migrate(client, { database, ttlDays: 7, directory }), { applied: ['0004_broken.sql'], newer: [] });
        assert.deepEqual(await versions(client, database), [1, 2, 3, 4]);
      }),
    );
  });
}

describe('migrations on the embedded engine (chdb)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sidecarless-chdb-'));
  let client: ClickHouseClient;
  before(async () => {
    client = await createClickHouse({ embeddedPath: dataDir });
  });
  after(async () => {
    await client?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  engineTests(() => client);

  it('refuses a database name that is not an identifier, naming the setting', async () => {
    const error = await refusal(migrate(client, { database: 'x; DROP TABLE y', ttlDays: 7 }));
    assert.ok(error instanceof ConfigError);
    assert.equal(error.context.configKey, 'clickhouse.database');
  });

  it('runs every shipped migration twice without harm, as two processes starting together may', async () => {
    await withDatabase(client, async (database) => {
      const shipped = shippedFiles();
      assert.deepEqual((await migrate(client, { database, ttlDays: 7 })).applied, shipped);
      await client.command({ query: `TRUNCATE TABLE ${database}.schema_migrations` });
      assert.deepEqual((await migrate(client, { database, ttlDays: 7 })).applied, shipped);
    });
  });

  it('upgrades a flows table created by migration 1: the new column holds exact values for old and new rows', async () => {
    await withDirectory(release1(), (directory) =>
      withDatabase(client, async (database) => {
        assert.deepEqual((await migrate(client, { database, ttlDays: 7, directory })).applied, ['0001_flows.sql']);
        const row = (connection_id: string, toServer: string, toClient: string) =>
          flowsRow({ connection_id, bytes_client_to_server: toServer, bytes_server_to_client: toClient });
        const table = `${database}.flows`;
        await client.insert({ table, format: 'JSONEachRow', values: [row('old-1', '9007199254740993', '7'), row('old-2', '100', '23')] });

        const upgrade = await migrate(client, { database, ttlDays: 7, directory: join(FIXTURES, 'flows-upgrade') });
        assert.deepEqual(upgrade, { applied: ['0002_flows_bytes_total.sql'], newer: [] });
        assert.deepEqual(
          await queryRows(client, `SELECT type, default_kind, default_expression FROM system.columns WHERE database = {database:String} AND table = 'flows' AND name = 'bytes_total'`, { database }),
          [{ type: 'UInt64', default_kind: 'DEFAULT', default_expression: 'bytes_client_to_server + bytes_server_to_client' }],
        );
        await client.insert({ table, format: 'JSONEachRow', values: [row('new-1', '18446744073709551000', '615'), row('new-2', '0', '0')] });

        const expected = [
          { connection_id: 'new-1', bytes_total: '18446744073709551615' },
          { connection_id: 'new-2', bytes_total: '0' },
          { connection_id: 'old-1', bytes_total: '9007199254741000' },
          { connection_id: 'old-2', bytes_total: '123' },
        ];
        const totals = () => queryRows(client, `SELECT connection_id, bytes_total FROM ${table} ORDER BY connection_id`);
        assert.deepEqual(await totals(), expected);
        // Old parts compute the column on read; a merge writes it: the values must not change.
        await client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
        assert.deepEqual(await totals(), expected);
      }),
    );
  });

  it('gives old flows rows identity columns that say they were never joined, and rolls up only rows inserted after', async () => {
    await withDirectory(shippedThrough(3), (directory) =>
      withDatabase(client, async (database) => {
        await migrate(client, { database, ttlDays: 7, directory });
        const table = `${database}.flows`;
        await client.insert({
          table,
          format: 'JSONEachRow',
          values: [flowsRow({ connection_id: 'old-final', record_kind: 'final', bytes_client_to_server: '10' }), flowsRow({ connection_id: 'old-interim', record_kind: 'interim' })],
        });
        const upgrade = await migrate(client, { database, ttlDays: 7 });
        assert.deepEqual(upgrade, { applied: shippedFiles().slice(3), newer: [] });
        assert.deepEqual(shippedFiles().slice(3, 6), ['0004_flows_identity.sql', '0005_flow_edges_1m.sql', '0006_flow_edges_1m_view.sql']);

        const joined = {
          client_k8s_namespace_name: 'shop',
          client_k8s_pod_name: 'checkout-7d9-x2',
          client_k8s_pod_uid: 'uid-1',
          client_k8s_workload_kind: 'Deployment',
          client_k8s_workload_name: 'checkout',
          client_k8s_node_name: 'n1',
          client_endpoint_kind: 'pod',
          client_labels: { app: 'checkout' },
          client_enrichment: 'hit',
          server_k8s_namespace_name: 'shop',
          server_k8s_service_name: 'payments',
          server_endpoint_kind: 'service',
          server_enrichment: 'hit',
        };
        await client.insert({
          table,
          format: 'JSONEachRow',
          values: [flowsRow({ connection_id: 'new-final', record_kind: 'final', bytes_client_to_server: '5', rtt_us: 40, ...joined })],
        });
        const identities = () =>
          queryRows(
            client,
            `SELECT connection_id, client_k8s_namespace_name, client_k8s_pod_name, client_k8s_pod_uid, client_k8s_workload_kind, client_k8s_workload_name,
                    client_k8s_service_name, client_k8s_node_name, client_endpoint_kind, client_labels, client_enrichment,
                    server_k8s_namespace_name, server_k8s_workload_name, server_k8s_service_name, server_endpoint_kind, server_labels, server_enrichment
             FROM ${table} ORDER BY connection_id`,
          );
        const never = {
          client_k8s_namespace_name: '',
          client_k8s_pod_name: '',
          client_k8s_pod_uid: '',
          client_k8s_workload_kind: '',
          client_k8s_workload_name: '',
          client_k8s_service_name: '',
          client_k8s_node_name: '',
          client_endpoint_kind: 'unknown',
          client_labels: {},
          client_enrichment: 'late',
          server_k8s_namespace_name: '',
          server_k8s_workload_name: '',
          server_k8s_service_name: '',
          server_endpoint_kind: 'unknown',
          server_labels: {},
          server_enrichment: 'late',
        };
        const expected = [
          { connection_id: 'new-final', ...never, ...joined, client_k8s_service_name: '', server_k8s_workload_name: '' },
          { connection_id: 'old-final', ...never },
          { connection_id: 'old-interim', ...never },
        ];
        assert.deepEqual(await identities(), expected);
        // Old parts read the defaults; a merge writes them: the values must not change.
        await client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
        assert.deepEqual(await identities(), expected);
        assert.deepEqual(
          await queryRows(
            client,
            `SELECT client_k8s_workload_name, server_k8s_service_name, sum(connections) AS connections, sum(bytes_client_to_server) AS bytes,
                    arrayMap(code -> round(exp(code / 56)), quantilesTimingMerge(0.5)(rtt_code)) AS rtt
             FROM ${database}.flow_edges_1m GROUP BY client_k8s_workload_name, server_k8s_service_name`,
          ),
          [{ client_k8s_workload_name: 'checkout', server_k8s_service_name: 'payments', connections: '1', bytes: '5', rtt: [40] }],
        );
      }),
    );
  });

  it('starts the batch ledger of a release-1 database at the highest offset each partition stored, the same however often it runs', async () => {
    await withDirectory(release1(), (directory) =>
      withDatabase(client, async (database) => {
        await migrate(client, { database, ttlDays: 7, directory });
        const row = (kafka_topic: string, kafka_partition: number, kafka_offset: string) => flowsRow({ kafka_topic, kafka_partition, kafka_offset });
        await client.insert({
          table: `${database}.flows`,
          format: 'JSONEachRow',
          values: [row('a', 0, '4'), row('a', 0, '9007199254740993'), row('a', 1, '3'), row('b', 0, '9'), row('b', 0, '0')],
        });
        const upgrade = await migrate(client, { database, ttlDays: 7 });
        assert.deepEqual(upgrade, { applied: shippedFiles().slice(1), newer: [] });
        const ledger = () =>
          queryRows(
            client,
            `SELECT DISTINCT kafka_topic, kafka_partition, generation, toString(first_offset) AS first, toString(last_offset) AS last, first_fingerprint, last_fingerprint
             FROM ${database}.kafka_batches ORDER BY kafka_topic, kafka_partition`,
          );
        const at = (kafka_topic: string, kafka_partition: number, offset: string) =>
          ({ kafka_topic, kafka_partition, generation: 0, first: offset, last: offset, first_fingerprint: '', last_fingerprint: '' });
        const expected = [at('a', 0, '9007199254740993'), at('a', 1, '3'), at('b', 0, '9')];
        assert.deepEqual(await ledger(), expected);
        // Two processes may both apply it: the second run adds equal rows, and the ledger reads the same.
        await client.command({ query: `TRUNCATE TABLE ${database}.schema_migrations` });
        await migrate(client, { database, ttlDays: 7 });
        assert.deepEqual(await ledger(), expected);
        const latest = await new BatchLedger(client, `${database}.kafka_batches`).latest('a', 0);
        assert.deepEqual(latest, { topic: 'a', partition: 0, generation: 0, first: 9007199254740993n, last: 9007199254740993n, firstFingerprint: '', lastFingerprint: '' });
        assert.equal(replayable(latest!), false, 'a position without its batch: never replayed');
      }),
    );
  });
});

describe('migrations on ClickHouse 18.16 over HTTP', () => {
  let client: ClickHouseClient;
  before(async () => {
    await requireStackService('ClickHouse', localHost, clickHouseHttpPort);
    client = await createClickHouse({ url: localClickHouseUrl });
  });
  after(async () => {
    await client?.close();
  });

  engineTests(() => client);

  it('two processes that start together both succeed, and every version is recorded with its file', async () => {
    const other = await createClickHouse({ url: localClickHouseUrl });
    try {
      await withDatabase(client, async (database) => {
        const results = await Promise.all([client, other].map((c) => migrate(c, { database, ttlDays: 7, directory: BASIC })));
        assert.deepEqual([...new Set(results.flatMap((r) => r.applied))].sort(), BASIC_FILES);
        const rows = await queryRows<{ version: number; checksum: string }>(client, `SELECT DISTINCT version, checksum FROM ${database}.schema_migrations ORDER BY version`);
        assert.deepEqual(rows, BASIC_FILES.map((name, i) => ({ version: i + 1, checksum: checksum(join(BASIC, name)) })));
        assert.deepEqual(await migrate(other, { database, ttlDays: 7, directory: BASIC }), { applied: [], newer: [] });
      });
    } finally {
      await other.close();
    }
  });
});

describe('migration files', () => {
  it('accept one statement with semicolons in strings, quoted names and comments', async () => {
    assert.deepEqual(readMigrationFiles(BASIC).map((file) => file.name), BASIC_FILES);
    const sql = "SELECT 'a;b', 'it''s;', 'back\\';slash', \"x;y\", `c;d` -- e;f\n/* g; h */ ; -- done\n";
    await withDirectory({ '0001_one.sql': sql }, async (directory) => assert.equal(readMigrationFiles(directory)[0]!.text, sql));
  });

  const refusals: Array<[what: string, files: Record<string, string>, message: RegExp]> = [
    ['a .sql file without a version (the old flows.sql)', { '0001_a.sql': 'SELECT 1', 'flows.sql': 'SELECT 1' }, /flows\.sql is not named NNNN_<what>\.sql/],
    ['two files of one version', { '0001_a.sql': 'SELECT 1', '0001_b.sql': 'SELECT 1' }, /0001_a\.sql and 0001_b\.sql .* both have version 1: give one of them the next free number/],
    ['a first version other than 1', { '0002_a.sql': 'SELECT 1' }, /version 1 is missing .*\(0002_a\.sql is the first file\)/],
    ['two statements in one file', { '0001_a.sql': 'SELECT 1;\n-- next\nSELECT 2;' }, /0001_a\.sql holds more than one statement \(the second starts on line 3\)/],
  ];
  for (const [what, files, message] of refusals) {
    it(`refuse ${what}`, () =>
      withDirectory(files, async (directory) => {
        const error = await refusal(() => readMigrationFiles(directory));
        assert.match(error.message, message);
        assert.match(String(error.context.file), new RegExp(`^${directory}/`));
      }));
  }

  it('fill in every placeholder, and refuse one that configuration does not fill', () =>
    withDirectory({ '0001_a.sql': 'SELECT {{ttl_days}} FROM {{database}}.t', '0002_b.sql': 'SELECT {{retention}} FROM {{database}}.t' }, async (directory) => {
      const [good, bad] = readMigrationFiles(directory);
      assert.equal(fillPlaceholders(good!, { database: 'db', ttl_days: '7' }), 'SELECT 7 FROM db.t');
      const error = await refusal(() => fillPlaceholders(bad!, { database: 'db', ttl_days: '7' }));
      assert.match(error.message, /0002_b\.sql uses \{\{retention\}\}; the placeholders are \{\{database\}\}, \{\{ttl_days\}\}/);
    }));
});
