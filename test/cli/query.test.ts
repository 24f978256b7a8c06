/**
 * `sidecarless query` on an embedded engine holding known rows (the demo's setup: no ClickHouse server): a
 * parameterised SELECT as a table and as JSON lines, the statement from stdin and from a file, writes refused
 * (read-only), a missing parameter and bad arguments named, and the engine's directory held by another process
 * named as such.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClickHouse } from '../../src/common/clickhouse/client.js';
import { startCommand, type CommandRun } from '../helpers/cli.js';

describe('sidecarless query', () => {
  const directory = mkdtempSync(join(tmpdir(), 'sidecarless-query-test-'));
  const embeddedPath = join(directory, 'chdb');
  const database = `query_test_${process.pid}`;
  const table = `${database}.edges`;

  /** The embedded engine of this test, whatever server the environment names. */
  function queryEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: embeddedPath };
    delete env.SIDECARLESS_CLICKHOUSE_URL;
    return env;
  }
  const query = (args: string[], stdin = ''): Promise<CommandRun> => startCommand('query', args, queryEnv(), stdin).done;

  before(async () => {
    const client = await createClickHouse({ embeddedPath });
    try {
      await client.command({ query: `CREATE DATABASE ${database}` });
      await client.command({
        query: `CREATE TABLE ${table} (client LowCardinality(String), server LowCardinality(String), server_port UInt16, bytes UInt64, labels Map(String, String)) ENGINE = MergeTree ORDER BY (server, client)`,
      });
      await client.insert({
        table,
        format: 'JSONEachRow',
        values: [
          { client: 'shop/frontend', server: 'shop/backend', server_port: 8080, bytes: '18446744073709551615', labels: { app: 'backend' } },
          { client: 'shop/frontend', server: 'billing/payments', server_port: 443, bytes: '1200', labels: {} },
          { client: 'ops/prober', server: 'billing/payments', server_port: 443, bytes: '35', labels: { app: 'payments' } },
        ],
      });
    } finally {
      await client.close();
    }
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  const select = `SELECT client, server, bytes, labels FROM ${table} WHERE server_port = {port:UInt16} ORDER BY bytes`;

  it('prints the rows of a parameterised SELECT as a table, numbers right-aligned', async () => {
    const run = await query([select, '--param', 'port=443']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      run.stdout,
      ['client         server            bytes  labels', 'ops/prober     billing/payments     35  {"app":"payments"}', 'shop/frontend  billing/payments   1200  {}', ''].join('\n'),
    );
    assert.equal(run.stderr, '2 rows\n');
  });

  it('prints JSON lines with --format json, 64-bit integers exact', async () => {
    const run = await query(['--format', 'json', '--param', 'port=8080', select]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '{"client":"shop/frontend","server":"shop/backend","bytes":"18446744073709551615","labels":{"app":"backend"}}\n');
    assert.equal(run.stderr, '');
  });

  it('streams any number of JSON lines, but refuses a table of more than 10,000 rows, saying what to do', async () => {
    const many = `SELECT number AS n FROM numbers({count:UInt32})`;
    const streamed = await query(['--format', 'json', '--param', 'count=25000', many]);
    assert.equal(streamed.code, 0, streamed.stderr);
    const lines = streamed.stdout.split('\n').filter((line) => line !== '');
    assert.equal(lines.length, 25_000);
    assert.deepEqual([lines[0], lines.at(-1)], ['{"n":"0"}', '{"n":"24999"}']);
    const table = await query(['--param', 'count=10001', many]);
    assert.equal(table.code, 1);
    assert.match(table.stderr, /^query: the result has more than 10000 rows, too many for a table: add a LIMIT, or stream them as JSON lines \(--format json\)$/m);
    assert.equal(table.stdout, '');
    const atLimit = await query(['--param', 'count=10000', many]);
    assert.equal(atLimit.code, 0, atLimit.stderr);
    assert.equal(atLimit.stdout.split('\n').length, 10_002); // header, 10,000 rows, the final newline
  });

  it('ends quietly when its reader stops early (query | head)', async () => {
    const running = startCommand('query', ['--format', 'json', 'SELECT number AS n FROM numbers(2000000)'], queryEnv());
    running.child.stdout!.once('data', () => running.child.stdout!.destroy());
    const run = await running.done;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
  });

  it('reads the statement from stdin (-) and from a file (-f)', async () => {
    const file = join(directory, 'statement.sql');
    writeFileSync(file, `SELECT count() AS edges FROM ${table} WHERE client = {client:String}`);
    const fromFile = await query(['-f', file, '--param', 'client=shop/frontend']);
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.equal(fromFile.stdout, 'edges\n    2\n');
    const fromStdin = await query(['-', '--param', 'client=ops/prober'], `SELECT count() AS edges FROM ${table} WHERE client = {client:String}`);
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(fromStdin.stdout, 'edges\n    1\n');
  });

  it('refuses writes and schema changes: the tables stay as they were', async () => {
    const insert = await query([`INSERT INTO ${table} (client, server, server_port, bytes) VALUES ('x', 'y', 1, 1)`]);
    assert.equal(insert.code, 1);
    assert.match(insert.stderr, /^query: .*readonly mode/m);
    const drop = await query([`DROP TABLE ${table}`]);
    assert.equal(drop.code, 1);
    assert.match(drop.stderr, /readonly mode/);
    const count = await query(['--format', 'json', `SELECT count() AS n FROM ${table}`]);
    assert.equal(count.stdout, '{"n":"3"}\n');
  });

  it('names a parameter the statement uses but no --param gives', async () => {
    const run = await query([select]);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /^query: .*Substitution `port` is not set/m);
    assert.equal(run.stdout, '');
  });

  it('refuses bad arguments before opening anything (exit 2, usage)', async () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /give one statement/],
      [['SELECT 1', '-f', 'x.sql'], /give one statement/],
      [['SELECT 1', '--param', 'port'], /--param "port": expected NAME=VALUE/],
      [['SELECT 1', '--param', 'a=1', '--param', 'a=2'], /--param a is given twice/],
      [['SELECT 1', '--format', 'csv'], /--format takes table or json, not csv/],
      [['SELECT 1', '--limit', '3'], /Unknown option '--limit'/],
    ];
    for (const [args, message] of cases) {
      const run = await query(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.match(run.stderr, /usage: sidecarless query/);
    }
  });

  it('says which setting to change when another process has the embedded engine open', async () => {
    const holder = await createClickHouse({ embeddedPath });
    try {
      const run = await query(['SELECT 1']);
      assert.equal(run.code, 1);
      // The engine prints its own "Cannot lock file" line first.
      assert.equal(
        run.stderr.split('\n').at(-2),
        `query: config clickhouse.embeddedPath: the embedded ClickHouse at ${embeddedPath} is open in process ${process.pid} (a running enricher, the demo): one process at a time can open it; stop that one, or set clickhouse.url to a ClickHouse server`,
      );
    } finally {
      await holder.close();
    }
  });
});
