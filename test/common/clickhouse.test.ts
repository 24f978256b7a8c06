/**
 * src/common/clickhouse.ts on both transports: the modern schema features DESIGN.md relies on through the embedded
 * engine (chdb), and plain inserts and selects over HTTP on the local stack's (old) server.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clickHouseHttpPort, localClickHouseUrl, localHost } from '../../src/lab/stack/endpoints.js';
import { createClickHouse, type ClickHouseOptions } from '../../src/common/clickhouse/client.js';
import { ConfigError } from '../../src/common/errors.js';
import { requireStackService, uniqueName } from '../helpers/stack.js';

describe('createClickHouse options', () => {
  it('names the setting at fault', async () => {
    const configKeyOf = async (options: ClickHouseOptions) => {
      const error = await createClickHouse(options).then(
        () => assert.fail('createClickHouse accepted the options'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      return error.context.configKey;
    };
    assert.equal(await configKeyOf({ url: 'not a url' }), 'clickhouse.url');
    assert.equal(await configKeyOf({ url: 'http://127.0.0.1:18123', tls: { caPath: '/nonexistent/ca.pem' } }), 'clickhouse.tls');
    assert.equal(await configKeyOf({ url: 'https://ch:8443', tls: { caPath: '/nonexistent/ca.pem' } }), 'clickhouse.tls.caPath');
    assert.equal(await configKeyOf({ url: 'https://ch:8443', tls: { certPath: '/a.pem', keyPath: '/b.pem' } }), 'clickhouse.tls.caPath');
    assert.equal(await configKeyOf({ tls: { caPath: '/ca.pem' } }), 'clickhouse.tls');
    assert.equal(await configKeyOf({ cluster: 'main' }), 'clickhouse.cluster');
  });
});

describe('embedded (chdb)', () => {
  it('runs the modern DDL and returns exact values: nanosecond timestamps, IPv4-mapped IPv6, UInt64', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sidecarless-chdb-'));
    const client = await createClickHouse({ embeddedPath: dir });
    const table = uniqueName('test_flows_');
    try {
      await client.command({
        query: `CREATE TABLE ${table} (
                  ts DateTime64(9, 'UTC'),
                  client_address IPv6,
                  service LowCardinality(String),
                  bytes UInt64
                ) ENGINE = MergeTree
                PARTITION BY toDate(ts)
                ORDER BY (service, ts)
                TTL toDateTime(ts) + INTERVAL 3650 DAY`,
      });
      await client.insert({
        table,
        format: 'JSONEachRow',
        values: [
          { ts: '2025-06-01 12:34:56.123456789', client_address: '::ffff:10.1.2.3', service: 'checkout', bytes: '18446744073709551615' },
          { ts: '2025-06-01 12:34:56.123456790', client_address: '2001:db8::1', service: 'checkout', bytes: 42 },
          { ts: '2025-06-01 12:35:00.000000001', client_address: '::ffff:192.168.0.7', service: 'cart', bytes: 7 },
        ],
      });

      const rows = await client.query({
        query: `SELECT ts, toUnixTimestamp64Nano(ts) AS ts_ns, client_address, service, bytes
                FROM ${table} WHERE service = {service:String} ORDER BY ts`,
        query_params: { service: 'checkout' },
        format: 'JSONEachRow',
      });
      assert.deepEqual(await rows.json(), [
        { ts: '2025-06-01 12:34:56.123456789', ts_ns: '1748781296123456789', client_address: '::ffff:10.1.2.3', service: 'checkout', bytes: '18446744073709551615' },
        { ts: '2025-06-01 12:34:56.123456790', ts_ns: '1748781296123456790', client_address: '2001:db8::1', service: 'checkout', bytes: '42' },
      ]);

      // The table really is partitioned by day with a TTL, not silently created some simpler way.
      const layout = await client.query({
        query: `SELECT partition_key, sorting_key, position(engine_full, 'TTL toDateTime(ts) + toIntervalDay(3650)') > 0 AS has_ttl,
                       (SELECT groupUniqArray(partition) FROM system.parts WHERE database = currentDatabase() AND table = {table:String} AND active) AS partitions
                FROM system.tables WHERE database = currentDatabase() AND name = {table:String}`,
        query_params: { table },
        format: 'JSONEachRow',
      });
      assert.deepEqual(await layout.json(), [{ partition_key: 'toDate(ts)', sorting_key: 'service, ts', has_ttl: 1, partitions: ['2025-06-01'] }]);
    } finally {
      await client.command({ query: `DROP TABLE IF EXISTS ${table}` });
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('HTTP (local stack server)', () => {
  it('inserts and selects exact values with JSONEachRow', async () => {
    await requireStackService('ClickHouse', localHost, clickHouseHttpPort);
    const client = await createClickHouse({ url: localClickHouseUrl });
    const table = uniqueName('test_flows_');
    try {
      // Only what the 18.16 server understands: no DateTime64, IPv6, TTL or query parameters.
      await client.command({
        query: `CREATE TABLE ${table} (ts DateTime, client_address String, service String, bytes UInt64)
                ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (service, ts)`,
      });
      await client.insert({
        table,
        format: 'JSONEachRow',
        values: [
          { ts: '2025-06-01 12:34:56', client_address: '::ffff:10.1.2.3', service: 'checkout', bytes: '18446744073709551615' },
          { ts: '2025-06-01 12:34:57', client_address: '2001:db8::1', service: 'checkout', bytes: 42 },
          { ts: '2025-06-01 12:35:00', client_address: '::ffff:192.168.0.7', service: 'cart', bytes: 7 },
        ],
      });
      const rows = await client.query({
        query: `SELECT ts, toUnixTimestamp(ts) AS ts_s, client_address, service, bytes FROM ${table} WHERE service = 'checkout' ORDER BY ts`,
        format: 'JSONEachRow',
      });
      assert.deepEqual(await rows.json(), [
        { ts: '2025-06-01 12:34:56', ts_s: 1748781296, client_address: '::ffff:10.1.2.3', service: 'checkout', bytes: '18446744073709551615' },
        { ts: '2025-06-01 12:34:57', ts_s: 1748781297, client_address: '2001:db8::1', service: 'checkout', bytes: '42' },
      ]);
    } finally {
      await client.command({ query: `DROP TABLE IF EXISTS ${table}` });
      await client.close();
    }
  });
});
