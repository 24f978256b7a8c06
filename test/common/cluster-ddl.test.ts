/**
 * src/common/clickhouse/cluster-ddl.ts: the statements clickhouse.cluster makes of each kind of migration, exactly;
 * the ones it refuses, naming the file; and every shipped migration rewritten, each statement parsed by ClickHouse
 * 26.7 (the embedded engine's EXPLAIN AST, in a temporary directory); the batch ledger's cluster settings known to
 * 26.7. Running them on a live cluster:
 * test/common/clickhouse-cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { ClusterRewrite } from '../../src/common/clickhouse/cluster-ddl.js';
import { fillPlaceholders, readMigrationFiles, type MigrationFile } from '../../src/common/clickhouse/migration-files.js';
import { shippedMigrations } from '../../src/common/clickhouse/migrations.js';
import { SidecarlessError } from '../../src/common/errors.js';
import { CLUSTER_LEDGER_SETTINGS } from '../../src/enricher/batch-ledger.js';

const file = (name: string, text: string): MigrationFile => ({ version: 1, name, path: `/migrations/${name}`, text, checksum: '' });
const PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";

/** A rewrite that has seen `events` created (with a Kafka partition), `per_minute` (without) and the view `counts`. */
function rewriteWithTables(): ClusterRewrite {
  const rewrite = new ClusterRewrite('main');
  rewrite.statements(file('0001_events.sql', 'CREATE TABLE IF NOT EXISTS {{database}}.events (kafka_partition UInt32, bytes UInt64) ENGINE = MergeTree ORDER BY bytes'));
  rewrite.statements(file('0002_per_minute.sql', 'CREATE TABLE IF NOT EXISTS {{database}}.per_minute (minute DateTime, bytes UInt64) ENGINE = SummingMergeTree ORDER BY minute'));
  rewrite.statements(file('0003_counts.sql', 'CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.counts ENGINE = SummingMergeTree ORDER BY bytes AS SELECT bytes, count() AS n FROM {{database}}.events GROUP BY bytes'));
  return rewrite;
}

function refusal(run: () => unknown): SidecarlessError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof SidecarlessError, `expected a SidecarlessError, got ${String(error)}`);
    return error;
  }
  return assert.fail('expected a refusal');
}

describe('cluster DDL (clickhouse.cluster)', () => {
  it('makes a table a replicated _local table sharded by its Kafka partition and a Distributed table under its name, without the comments', () => {
    const statements = new ClusterRewrite('main').statements(
      file(
        '0001_flows.sql',
        `-- a comment that says ENGINE = Log and FROM {{database}}.other
CREATE TABLE IF NOT EXISTS {{database}}.flows (
    time DateTime COMMENT 'when (not -- a comment)',
    kafka_partition UInt32
)
ENGINE = ReplacingMergeTree(time) /* the version column */
ORDER BY time
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 10000;`,
      ),
    );
    assert.deepEqual(statements, [
      `CREATE TABLE IF NOT EXISTS {{database}}.flows_local ON CLUSTER main (
    time DateTime COMMENT 'when (not -- a comment)',
    kafka_partition UInt32
)
ENGINE = ReplicatedReplacingMergeTree(${PATH}, time)  
ORDER BY time
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000`,
      'CREATE TABLE IF NOT EXISTS {{database}}.flows ON CLUSTER main AS {{database}}.flows_local ENGINE = Distributed(main, {{database}}, flows_local, kafka_partition)',
    ]);
  });

  it('shards a table without a Kafka partition at random, and keeps engine arguments that nest parentheses', () => {
    assert.deepEqual(
      new ClusterRewrite('main').statements(file('0005_sums.sql', 'CREATE TABLE IF NOT EXISTS {{database}}.sums (a UInt64, b UInt64) ENGINE = SummingMergeTree((a, b)) ORDER BY a')),
      [
        `CREATE TABLE IF NOT EXISTS {{database}}.sums_local ON CLUSTER main (a UInt64, b UInt64) ENGINE = ReplicatedSummingMergeTree(${PATH}, (a, b)) ORDER BY a`,
        'CREATE TABLE IF NOT EXISTS {{database}}.sums ON CLUSTER main AS {{database}}.sums_local ENGINE = Distributed(main, {{database}}, sums_local, rand())',
      ],
    );
  });

  it('points a view TO a table at the shard tables, and names only the tables earlier migrations created', () => {
    const rewrite = rewriteWithTables();
    assert.deepEqual(
      rewrite.statements(
        file(
          '0003_per_minute_view.sql',
          'CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.per_minute_view TO {{database}}.per_minute AS SELECT toStartOfMinute(now()) AS minute, sum(bytes) AS bytes FROM {{database}}.events WHERE bytes NOT IN (SELECT bytes FROM {{database}}.elsewhere)',
        ),
      ),
      [
        'CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.per_minute_view ON CLUSTER main TO {{database}}.per_minute_local AS SELECT toStartOfMinute(now()) AS minute, sum(bytes) AS bytes FROM {{database}}.events_local WHERE bytes NOT IN (SELECT bytes FROM {{database}}.elsewhere)',
      ],
    );
  });

  it('makes a view with an engine a replicated _local view over the shard table, read through a Distributed table', () => {
    assert.deepEqual(
      rewriteWithTables().statements(
        file('0004_tallies.sql', 'CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.tallies ENGINE = SummingMergeTree ORDER BY bytes AS SELECT bytes, count() AS n FROM {{database}}.events GROUP BY bytes'),
      ),
      [
        `CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.tallies_local ON CLUSTER main ENGINE = ReplicatedSummingMergeTree(${PATH}) ORDER BY bytes AS SELECT bytes, count() AS n FROM {{database}}.events_local GROUP BY bytes`,
        'CREATE TABLE IF NOT EXISTS {{database}}.tallies ON CLUSTER main AS {{database}}.tallies_local ENGINE = Distributed(main, {{database}}, tallies_local, rand())',
      ],
    );
  });

  it('alters the shard table and the Distributed table alike, leaves INSERT … SELECT alone and runs a plain view on every node', () => {
    const rewrite = rewriteWithTables();
    assert.deepEqual(rewrite.statements(file('0005_kind.sql', "ALTER TABLE {{database}}.events ADD COLUMN IF NOT EXISTS kind String DEFAULT 'tcp'")), [
      "ALTER TABLE {{database}}.events_local ON CLUSTER main ADD COLUMN IF NOT EXISTS kind String DEFAULT 'tcp'",
      "ALTER TABLE {{database}}.events ON CLUSTER main ADD COLUMN IF NOT EXISTS kind String DEFAULT 'tcp'",
    ]);
    assert.deepEqual(rewrite.statements(file('0006_copy.sql', 'INSERT INTO {{database}}.per_minute SELECT now(), bytes FROM {{database}}.events;')), [
      'INSERT INTO {{database}}.per_minute SELECT now(), bytes FROM {{database}}.events',
    ]);
    assert.deepEqual(rewrite.statements(file('0007_total.sql', 'CREATE VIEW IF NOT EXISTS {{database}}.total AS SELECT sum(bytes) FROM {{database}}.events')), [
      'CREATE VIEW IF NOT EXISTS {{database}}.total ON CLUSTER main AS SELECT sum(bytes) FROM {{database}}.events',
    ]);
  });

  it('reads nothing inside quoted text as SQL: an engine or setting named in a comment string stays as written', () => {
    assert.deepEqual(
      new ClusterRewrite('main').statements(
        file(
          '0001_t.sql',
          "CREATE TABLE IF NOT EXISTS {{database}}.t (a UInt8 COMMENT 'ENGINE = MergeTree, kafka_partition UInt32, non_replicated_deduplication_window') ENGINE = ReplacingMergeTree(a) ORDER BY a SETTINGS non_replicated_deduplication_window = 5",
        ),
      ),
      [
        `CREATE TABLE IF NOT EXISTS {{database}}.t_local ON CLUSTER main (a UInt8 COMMENT 'ENGINE = MergeTree, kafka_partition UInt32, non_replicated_deduplication_window') ENGINE = ReplicatedReplacingMergeTree(${PATH}, a) ORDER BY a SETTINGS replicated_deduplication_window = 5`,
        'CREATE TABLE IF NOT EXISTS {{database}}.t ON CLUSTER main AS {{database}}.t_local ENGINE = Distributed(main, {{database}}, t_local, rand())',
      ],
    );
  });

  it('gives the Distributed table only the column changes of an ALTER, and nothing when it has none', () => {
    const rewrite = rewriteWithTables();
    assert.deepEqual(rewrite.statements(file('0005_mixed.sql', "ALTER TABLE {{database}}.events ADD COLUMN IF NOT EXISTS kind String DEFAULT 'a,b', MODIFY TTL now() + INTERVAL 1 DAY, COMMENT COLUMN kind 'x'")), [
      "ALTER TABLE {{database}}.events_local ON CLUSTER main ADD COLUMN IF NOT EXISTS kind String DEFAULT 'a,b', MODIFY TTL now() + INTERVAL 1 DAY, COMMENT COLUMN kind 'x'",
      "ALTER TABLE {{database}}.events ON CLUSTER main ADD COLUMN IF NOT EXISTS kind String DEFAULT 'a,b', COMMENT COLUMN kind 'x'",
    ]);
    assert.deepEqual(rewrite.statements(file('0006_ttl.sql', 'ALTER TABLE {{database}}.events MODIFY TTL toDateTime(now()) + INTERVAL 2 DAY')), [
      'ALTER TABLE {{database}}.events_local ON CLUSTER main MODIFY TTL toDateTime(now()) + INTERVAL 2 DAY',
    ]);
  });

  for (const [what, text, reason] of [
    ['a name that ends as the shard tables do', 'CREATE TABLE IF NOT EXISTS {{database}}.events_local (a UInt8) ENGINE = MergeTree ORDER BY a', 'events_local ends in _local'],
    ['a statement that says ON CLUSTER itself', 'CREATE TABLE IF NOT EXISTS {{database}}.x ON CLUSTER main (a UInt8) ENGINE = MergeTree ORDER BY a', 'it says ON CLUSTER itself'],
    ['a Kafka partition that is not a plain unsigned integer', 'CREATE TABLE IF NOT EXISTS {{database}}.x (kafka_partition LowCardinality(UInt32)) ENGINE = MergeTree ORDER BY tuple()', "x's kafka_partition is LowCardinality(UInt32)"],
    ['an ALTER of a view with an engine of its own', 'ALTER TABLE {{database}}.counts MODIFY QUERY SELECT 1', 'counts, a view with an engine of its own'],
    ['an INSERT of values', 'INSERT INTO {{database}}.events VALUES (1, 2)', 'it is none of the statements cluster mode rewrites'],
    ['a table copied from another', 'CREATE TABLE IF NOT EXISTS {{database}}.copy AS {{database}}.events', "copy copies another table's structure"],
    ['an engine outside the MergeTree family', 'CREATE TABLE IF NOT EXISTS {{database}}.log (a UInt8) ENGINE = Log', 'log has no engine of the MergeTree family'],
    ['an engine that is Replicated already', "CREATE TABLE IF NOT EXISTS {{database}}.r (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", 'r is Replicated already'],
    ['an ALTER of a table no migration created', 'ALTER TABLE {{database}}.nowhere ADD COLUMN a UInt8', 'it alters nowhere, which no earlier migration created'],
    ['a statement of another kind', 'DROP TABLE IF EXISTS {{database}}.events', 'it is none of the statements cluster mode rewrites'],
  ] as const) {
    it(`refuses ${what}, naming the file and the setting`, () => {
      const error = refusal(() => rewriteWithTables().statements(file('0009_x.sql', text)));
      assert.ok(error.message.startsWith('/migrations/0009_x.sql cannot run on a ClickHouse cluster (clickhouse.cluster): '), error.message);
      assert.ok(error.message.includes(reason), error.message);
    });
  }

  it('rewrites every shipped migration into statements ClickHouse 26.7 parses, shards the event tables by Kafka partition and rolls up on the shards', async () => {
    const rewrite = new ClusterRewrite('main');
    const shipped = readMigrationFiles(shippedMigrations).map((migration) => ({ migration, statements: rewrite.statements(migration) }));
    const distributed = shipped.flatMap(({ statements }) => statements.map((sql) => /^CREATE TABLE IF NOT EXISTS \{\{database\}\}\.(\w+) ON CLUSTER main AS .* ENGINE = Distributed\(main, \{\{database\}\}, (\w+), (.+)\)$/.exec(sql)?.slice(1)).filter((match) => match !== undefined));
    assert.deepEqual(
      Object.fromEntries(distributed.map(([table, local, key]) => [table, `${local} by ${key}`])),
      {
        flows: 'flows_local by kafka_partition',
        kafka_batches: 'kafka_batches_local by kafka_partition',
        flow_edges_1m: 'flow_edges_1m_local by rand()',
        http_requests: 'http_requests_local by kafka_partition',
        http_red_1m: 'http_red_1m_local by rand()',
        verdicts: 'verdicts_local by kafka_partition',
        policy_verdicts_1m: 'policy_verdicts_1m_local by rand()',
        overhead_runs: 'overhead_runs_local by rand()',
      },
    );
    const views = shipped.flatMap(({ statements }) => statements.filter((sql) => sql.startsWith('CREATE MATERIALIZED VIEW')));
    assert.equal(views.length, 3);
    for (const view of views) {
      const named = [...view.matchAll(/\{\{database\}\}\.(\w+)/g)].map((match) => match[1]!);
      assert.deepEqual(named.slice(1).filter((table) => !table.endsWith('_local')), [], `a view reads and writes only shard tables: ${view.slice(0, 120)}`);
    }
    await withEngine(async (engine) => {
      for (const { migration, statements } of shipped) {
        for (const statement of statements) {
          const sql = fillPlaceholders(migration, { database: 'sidecarless', ttl_days: '7' }, statement);
          await engine.query({ query: `EXPLAIN AST ${sql}`, format: 'TabSeparated' }).then(
            (result) => result.text(),
            (error: unknown) => assert.fail(`${migration.name}: ClickHouse does not parse ${sql.slice(0, 100)}…: ${String(error)}`),
          );
        }
      }
    });
  });

  it("gives the batch ledger on a cluster settings that ClickHouse 26.7 knows, with values it takes", async () => {
    await withEngine(async (engine) => {
      await engine.command({ query: 'CREATE TABLE ledger_settings (a UInt8) ENGINE = MergeTree ORDER BY a' });
      await engine.insert({ table: 'ledger_settings', values: [{ a: 1 }], format: 'JSONEachRow', clickhouse_settings: CLUSTER_LEDGER_SETTINGS.record });
      const result = await engine.query({ query: 'SELECT a FROM ledger_settings', format: 'JSONEachRow', clickhouse_settings: CLUSTER_LEDGER_SETTINGS.read });
      assert.deepEqual(await result.json(), [{ a: 1 }]);
      const known = await engine.query({ query: `SELECT name FROM system.settings WHERE name IN (${[...Object.keys(CLUSTER_LEDGER_SETTINGS.record), ...Object.keys(CLUSTER_LEDGER_SETTINGS.read)].map((name) => `'${name}'`).join(', ')}) ORDER BY name`, format: 'JSONEachRow' });
      assert.deepEqual((await known.json<{ name: string }>()).map((row) => row.name), ['insert_quorum', 'insert_quorum_parallel', 'insert_quorum_timeout', 'optimize_skip_unused_shards', 'select_sequential_consistency']);
    });
  });
});

/** The embedded engine in a temporary directory, closed and removed after `run` whatever happened. */
async function withEngine(run: (engine: ClickHouseClient) => Promise<void>): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), 'sidecarless-cluster-ddl-'));
  const engine = await createClickHouse({ embeddedPath: directory });
  try {
    await run(engine);
  } finally {
    await engine.close();
    rmSync(directory, { recursive: true, force: true });
  }
}
