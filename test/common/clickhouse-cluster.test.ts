/**
 * clickhouse.cluster on a real cluster: migrate() with the cluster fixtures (test/fixtures/clickhouse-migrations/
 * cluster/, the shapes of the shipped files in 18.16's types) run once on one node creates every table on all three
 * nodes of test/helpers/clickhouse-cluster.ts (real ZooKeeper, ON CLUSTER DDL); rows inserted through the
 * Distributed table land on the shard their Kafka partition picks, are replicated within it, are rolled up by the
 * views on each shard, and read whole from any node; a replayed batch adds nothing; every node reads the
 * migrations' records; a database made for the other layout is refused; a node that lost the schema gets it back
 * (reapply, as a node added to the cluster would); a start with a node down, with nothing
 * to apply, does not wait for it, and one with a schema to create is told which node did not answer.
 *
 * Not here: ALTER TABLE. Cluster mode alters the replicated `_local` table and the Distributed one ON CLUSTER; 18.16
 * refuses the second on a cluster whose shards are replicated ("isn't replicated, but shard #1 is replicated
 * according to its cluster definition", a check ClickHouse dropped in 21.x), so test/common/cluster-ddl.test.ts
 * checks those statements' text only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from '@clickhouse/client';
import { migrate } from '../../src/common/clickhouse/migrations.js';
import { SidecarlessError } from '../../src/common/errors.js';
import { waitFor } from '../../src/lab/stack/processes.js';
import { CLUSTER_NAME, startClickHouseCluster, syncReplicas, type ClickHouseClusterLab, type ClusterNode } from '../helpers/clickhouse-cluster.js';
import { uniqueName } from '../helpers/stack.js';

const CLUSTER_FIXTURES = fileURLToPath(new URL('../../../test/fixtures/clickhouse-migrations/cluster/', import.meta.url));
const FILES = ['0001_events.sql', '0002_events_1m.sql', '0003_events_1m_view.sql', '0004_bytes_by_partition.sql', '0005_events_total.sql'];

/** 18.16 has no query parameters: the names here are the test's own identifiers. */
async function rows<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  const result = await client.query({ query, format: 'JSONEachRow' });
  return result.json<T>();
}

/** Two events per Kafka partition 0-3, one minute, bytes 10 × partition + offset. */
const EVENTS = [0, 1, 2, 3].flatMap((partition) =>
  [1, 2].map((offset) => ({ time: '2026-12-01 10:00:30', kafka_partition: partition, kafka_offset: offset, bytes: 10 * partition + offset })),
);
const batchOf = (partition: number) => EVENTS.filter((event) => event.kafka_partition === partition);
const bytesOf = (partitions: number[]) => EVENTS.filter((event) => partitions.includes(event.kafka_partition)).reduce((sum, event) => sum + event.bytes, 0);

describe('migrations and inserts on a ClickHouse cluster (clickhouse.cluster)', () => {
  let lab: ClickHouseClusterLab;
  let r1: ClusterNode;
  let r2: ClusterNode;
  let r3: ClusterNode;
  const database = uniqueName('test_cluster_');

  before(async () => {
    lab = await startClickHouseCluster();
    [r1, r2, r3] = lab.nodes as [ClusterNode, ClusterNode, ClusterNode];
  });
  after(async () => {
    await lab?.stop();
  });

  it('creates every table on every node from one node, each shard replicated, under the file names as Distributed tables', async () => {
    assert.deepEqual(await migrate(r1.client, { database, ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME }), { applied: FILES, newer: [] });
    for (const node of lab.nodes) {
      const tables = await rows<{ name: string; engine: string }>(
        node.client,
        `SELECT name, engine FROM system.tables WHERE database = '${database}' AND NOT startsWith(name, '.inner') ORDER BY name`,
      );
      assert.deepEqual(
        tables.map(({ name, engine }) => `${name} ${engine}`),
        [
          'bytes_by_partition Distributed',
          'bytes_by_partition_local MaterializedView',
          'events Distributed',
          'events_1m Distributed',
          'events_1m_local ReplicatedSummingMergeTree',
          'events_1m_view MaterializedView',
          'events_local ReplicatedMergeTree',
          'events_total View',
          'schema_migrations ReplicatedMergeTree',
        ],
        `tables on ${node.replica}`,
      );
      const replicas = await rows<{ table: string; zookeeper_path: string; replica_name: string }>(
        node.client,
        `SELECT table, zookeeper_path, replica_name FROM system.replicas WHERE database = '${database}' AND table IN ('events_local', 'schema_migrations') ORDER BY table`,
      );
      assert.deepEqual(replicas, [
        { table: 'events_local', zookeeper_path: `/clickhouse/tables/${node.shard}/${database}/events_local`, replica_name: node.replica },
        { table: 'schema_migrations', zookeeper_path: `/clickhouse/tables/all/${database}/schema_migrations`, replica_name: `${node.shard}-${node.replica}` },
      ]);
    }
  });

  it('every node reads the records, so a start on another node applies nothing', async () => {
    for (const node of [r2, r3]) {
      await waitFor(async () => (await rows<{ n: string }>(node.client, `SELECT count() AS n FROM ${database}.schema_migrations`))[0]!.n === String(FILES.length), {
        timeoutMs: 30_000,
        what: `the migrations' records replicated to ${node.replica}`,
      });
      assert.deepEqual(await migrate(node.client, { database, ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME }), { applied: [], newer: [] });
    }
  });

  it('stores rows on the shard of their Kafka partition, replicated within it, rolled up per shard and read whole from any node', async () => {
    // One insert per partition, as the enricher inserts one topic partition's batch.
    for (const partition of [0, 1, 2, 3]) {
      await r3.client.insert({ table: `${database}.events`, values: batchOf(partition), format: 'JSONEachRow' });
    }
    // A shard's insert went to one of its replicas; both hold it once each has fetched what the shard has (reads
    // through the Distributed tables pick either).
    await syncReplicas(r1, database);
    await syncReplicas(r2, database);
    // Two shards of weight 1: partition % 2 picks the shard, 0 the first (r1 and r2), 1 the second (r3).
    const partitionsOn = async (node: ClusterNode) =>
      (await rows<{ kafka_partition: number }>(node.client, `SELECT DISTINCT kafka_partition FROM ${database}.events_local ORDER BY kafka_partition`)).map((row) => row.kafka_partition);
    assert.deepEqual(await partitionsOn(r1), [0, 2]);
    assert.deepEqual(await partitionsOn(r2), [0, 2]);
    assert.deepEqual(await partitionsOn(r3), [1, 3]);
    for (const node of lab.nodes) {
      assert.deepEqual(await rows(node.client, `SELECT events, bytes FROM ${database}.events_total`), [{ events: '8', bytes: String(bytesOf([0, 1, 2, 3])) }]);
      assert.deepEqual(await rows(node.client, `SELECT sum(events) AS events, sum(bytes) AS bytes FROM ${database}.events_1m`), [
        { events: '8', bytes: String(bytesOf([0, 1, 2, 3])) },
      ]);
      assert.deepEqual(
        await rows(node.client, `SELECT kafka_partition, sum(bytes) AS bytes FROM ${database}.bytes_by_partition GROUP BY kafka_partition ORDER BY kafka_partition`),
        [0, 1, 2, 3].map((partition) => ({ kafka_partition: partition, bytes: String(bytesOf([partition])) })),
      );
    }
    for (const node of [r1, r2]) {
      assert.deepEqual(await rows(node.client, `SELECT sum(events) AS events FROM ${database}.events_1m_local`), [{ events: '4' }], `shard 1 rolled up its own rows (${node.replica})`);
    }
  });

  it('a replayed batch reaches the same shard, whose replicated table keeps it once, also through another node', async () => {
    await r1.client.insert({ table: `${database}.events`, values: batchOf(1), format: 'JSONEachRow' });
    await r2.client.insert({ table: `${database}.events`, values: batchOf(2), format: 'JSONEachRow' });
    await syncReplicas(r1, database);
    await syncReplicas(r2, database);
    for (const node of lab.nodes) {
      assert.deepEqual(await rows(node.client, `SELECT count() AS events FROM ${database}.events_local`), [{ events: '4' }], `${node.replica} holds its shard's rows once`);
    }
    assert.deepEqual(await rows(r2.client, `SELECT count() AS events FROM ${database}.events`), [{ events: '8' }]);
    assert.deepEqual(await rows(r2.client, `SELECT sum(events) AS events FROM ${database}.events_1m`), [{ events: '8' }]);
  });

  it('refuses a database migrated on one server when clickhouse.cluster is set, and the reverse, naming the setting', async () => {
    const single = uniqueName('test_single_');
    await migrate(r3.client, { database: single, ttlDays: 7, directory: CLUSTER_FIXTURES });
    const toCluster = await migrate(r3.client, { database: single, ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME }).catch((error: unknown) => error);
    assert.ok(toCluster instanceof SidecarlessError);
    assert.match(toCluster.message, new RegExp(`database ${single} was migrated on a single server, and clickhouse.cluster is "${CLUSTER_NAME}"`));
    const toSingle = await migrate(r1.client, { database, ttlDays: 7, directory: CLUSTER_FIXTURES }).catch((error: unknown) => error);
    assert.ok(toSingle instanceof SidecarlessError);
    assert.match(toSingle.message, new RegExp(`database ${database} was migrated on a cluster, and clickhouse.cluster is unset`));
  });

  it('gives a node that lost the schema every table again with reapply, and its shard\'s rows through replication', async () => {
    await r2.client.command({ query: `DROP DATABASE ${database}` }); // this node only: as a node added to the cluster
    const migrated = await migrate(r1.client, { database, ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME, reapply: true });
    assert.deepEqual(migrated, { applied: [], newer: [], reapplied: FILES });
    await syncReplicas(r2, database);
    const tables = async (node: ClusterNode) =>
      (await rows<{ name: string }>(node.client, `SELECT name FROM system.tables WHERE database = '${database}' AND NOT startsWith(name, '.inner') ORDER BY name`)).map((row) => row.name);
    assert.deepEqual(await tables(r2), await tables(r1));
    assert.deepEqual(await rows(r2.client, `SELECT kafka_partition, count() AS events FROM ${database}.events_local GROUP BY kafka_partition ORDER BY kafka_partition`), [
      { kafka_partition: 0, events: '2' },
      { kafka_partition: 2, events: '2' },
    ]);
    assert.deepEqual(await rows(r2.client, `SELECT count() AS n FROM ${database}.schema_migrations`), [{ n: String(FILES.length) }]);
  });

  it('starts with a node down when nothing is pending: no statement waits for every node', async () => {
    await r3.kill();
    assert.deepEqual(await migrate(r1.client, { database, ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME }), { applied: [], newer: [] });
    assert.deepEqual(await rows(r2.client, `SELECT count() AS events FROM ${database}.events_local`), [{ events: '4' }], 'shard 1 still serves its rows');
  });

  it('with a node down, a schema to create fails with the server naming the unfinished node, before the client would time out', async () => {
    const error = await migrate(r1.client, { database: uniqueName('test_down_'), ttlDays: 7, directory: CLUSTER_FIXTURES, cluster: CLUSTER_NAME }).catch((e: unknown) => e);
    assert.ok(error instanceof SidecarlessError, String(error));
    assert.match(error.message, /cannot create the database test_down_\w+ for the ClickHouse migrations: .*distributed_ddl_task_timeout \(=25\) seconds\. There are 1 unfinished hosts/s);
  });
});
