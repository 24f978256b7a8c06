/**
 * `sidecarless init`, what deploy/k8s's Job runs: every topic of the catalog with its cleanup policy, and the
 * ClickHouse schema at its last migration (the embedded engine here: the stack's ClickHouse server predates the
 * schema's types); a second run creates and applies nothing; a stray argument is refused before anything connects.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
// Default import: kafkajs is CommonJS (as in src/common/kafka/topics.ts).
import kafkajs from 'kafkajs';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { shippedMigrations } from '../../src/common/clickhouse/migrations.js';
import { createKafka, kafkaOptionsFromConfig } from '../../src/common/kafka/client.js';
import { createLogger } from '../../src/common/logger.js';
import { topicSpecs } from '../../src/events/topics.js';
import { dropTestData, testConfig } from '../helpers/flows.js';

const bin = fileURLToPath(new URL('../../../bin/sidecarless.js', import.meta.url));

async function init(env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; logs: Array<Record<string, unknown>>; stderr: string }> {
  const child = spawn(process.execPath, [bin, 'init', ...args], { env: { ...process.env, ...env, SIDECARLESS_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  const logs = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>);
  return { code, logs, stderr };
}

describe('sidecarless init', () => {
  const { config, env } = testConfig();
  const topics = Object.values(topicSpecs(config.kafka.topicPrefix));
  after(() => dropTestData(config, undefined));

  it('creates every topic with its cleanup policy and migrates ClickHouse to the last file, then exits 0', async () => {
    const run = await init(env);
    assert.equal(run.code, 0, run.stderr);
    const created = run.logs.find((line) => line.msg === 'kafka topics ensured')?.created as string[];
    assert.deepEqual([...created].sort(), topics.map((spec) => spec.topic).sort());
    const migrations = readdirSync(shippedMigrations).filter((file) => /^\d{4}_.*\.sql$/.test(file)).sort();
    assert.deepEqual(run.logs.find((line) => line.msg === 'clickhouse schema migrated')?.applied, migrations);

    const admin = createKafka(kafkaOptionsFromConfig(config.kafka, 'test'), createLogger({ level: 'warn' })).admin();
    await admin.connect();
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((spec) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name: spec.topic, configNames: ['cleanup.policy'] })),
      });
      const policies = Object.fromEntries(described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue]));
      assert.deepEqual(policies, Object.fromEntries(topics.map((spec) => [spec.topic, spec.configs['cleanup.policy']])));
    } finally {
      await admin.disconnect();
    }

    const clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
    try {
      const result = await clickhouse.query({ query: `SELECT name FROM ${config.clickhouse.database}.schema_migrations ORDER BY version`, format: 'JSONEachRow' });
      assert.deepEqual((await result.json<{ name: string }>()).map((row) => row.name), migrations);
    } finally {
      await clickhouse.close();
    }
  });

  it('creates and applies nothing the second time', async () => {
    const run = await init(env);
    assert.equal(run.code, 0, run.stderr);
    const ensured = run.logs.find((line) => line.msg === 'kafka topics ensured');
    assert.deepEqual([ensured?.created, ensured?.existing], [[], topics.length]);
    assert.deepEqual(run.logs.find((line) => line.msg === 'clickhouse schema migrated')?.applied, []);
  });

  it('with --reapply runs every applied file\'s schema statements again, recording nothing twice and keeping the rows', async () => {
    const clickhouse = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
    const batches = `${config.clickhouse.database}.kafka_batches`;
    try {
      await clickhouse.insert({ table: batches, values: [{ kafka_topic: 't', kafka_partition: 1, generation: 0, first_offset: 1, last_offset: 2 }], format: 'JSONEachRow' });
      // A flows row that migration 3, were it run again, would copy into the ledger as a second row.
      const time = new Date().toISOString().replace('T', ' ').replace('Z', '');
      await clickhouse.insert({
        table: `${config.clickhouse.database}.flows`,
        values: [{ time, start_time: time, connection_id: 'c', kafka_topic: 't', kafka_partition: 2, kafka_offset: 5 }],
        format: 'JSONEachRow',
      });
    } finally {
      await clickhouse.close();
    }
    const run = await init(env, ['--reapply']);
    assert.equal(run.code, 0, run.stderr);
    const migrated = run.logs.find((line) => line.msg === 'clickhouse schema migrated');
    const migrations = readdirSync(shippedMigrations).filter((file) => /^\d{4}_.*\.sql$/.test(file)).sort();
    assert.deepEqual([migrated?.applied, migrated?.reapplied], [[], migrations]);
    const after = await createClickHouse({ embeddedPath: config.clickhouse.embeddedPath });
    try {
      const count = async (query: string) => (await (await after.query({ query, format: 'JSONEachRow' })).json<{ n: string }>())[0]!.n;
      assert.equal(await count(`SELECT count() AS n FROM ${config.clickhouse.database}.schema_migrations`), String(migrations.length));
      // Migration 3 (INSERT … SELECT, a data statement) did not run again.
      assert.equal(await count(`SELECT count() AS n FROM ${batches}`), '1');
    } finally {
      await after.close();
    }
  });

  it('refuses an argument it does not take, before connecting to anything', async () => {
    const run = await init({ ...env, SIDECARLESS_KAFKA_BROKERS: '127.0.0.1:1' }, ['--topics']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^init: unexpected argument "--topics"\nusage: sidecarless init \[--config PATH\] \[--reapply\]\n$/);
  });
});
