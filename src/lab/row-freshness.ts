/**
 * Freshness as a user sees it, for benchmarks: from a connection's close (a final event's time_ns, taken by the
 * kernel) to its row being queryable in ClickHouse. Runs the enricher with production defaults on one window's
 * topics, into an embedded engine of its own, and polls the table every POLL_MS for final rows stored since the last
 * poll (by Kafka offset per partition); each one's lag is the poll's time minus its close, so it errs late by at most
 * POLL_MS.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { createClickHouse } from '../common/clickhouse/client.js';
import { loadConfig } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { startTelemetry } from '../common/telemetry.js';
import { startEnricher } from '../enricher/index.js';
import { percentiles } from './flows-read.js';

const POLL_MS = 100;

/** How long after the last event it may take for its row to be stored; beyond it the rows missing are reported. */
const STORE_DEADLINE_MS = 30_000;

export interface RowFreshness {
  /**
   * Waits until `finalRows` final rows were seen (or a deadline passes), stops polling and the enricher, removes its
   * engine's files; close → queryable in milliseconds, and how many final rows were seen.
   */
  stop(finalRows: number): Promise<{ rows: number; p50?: number; p99?: number }>;
}

export async function measureRowFreshness(topicPrefix: string): Promise<RowFreshness> {
  const embeddedPath = mkdtempSync(join(tmpdir(), 'sidecarless-freshness-'));
  const config = loadConfig({
    argv: [],
    env: {
      SIDECARLESS_KAFKA_TOPIC_PREFIX: topicPrefix,
      SIDECARLESS_CLICKHOUSE_EMBEDDED_PATH: embeddedPath,
      SIDECARLESS_ENRICHER_GROUP_ID: `${topicPrefix}freshness`,
      SIDECARLESS_TELEMETRY_METRICS_PORT: '0',
    },
  });
  const telemetry = await startTelemetry({ host: config.telemetry.host, metricsPort: 0 });
  const enricher = await startEnricher({ config, logger: createLogger({ level: 'error' }), telemetry });
  const clickhouse = await createClickHouse({ embeddedPath });
  const lags: number[] = [];
  const seen = new Map<number, string>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await pollOnce(clickhouse, `${config.clickhouse.database}.flows`, seen, lags);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  })();
  return {
    async stop(finalRows) {
      const deadline = Date.now() + STORE_DEADLINE_MS;
      while (lags.length < finalRows && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      polling = false;
      await poller;
      await enricher.stop();
      await clickhouse.close();
      await telemetry.shutdown();
      rmSync(embeddedPath, { recursive: true, force: true });
      return { rows: lags.length, ...(lags.length > 0 ? percentiles(lags) : {}) };
    },
  };
}

async function pollOnce(clickhouse: ClickHouseClient, table: string, seen: Map<number, string>, lags: number[]): Promise<void> {
  const after = [...seen].map(([partition, offset]) => `(kafka_partition = ${partition} AND kafka_offset > ${offset})`);
  const known = [...seen.keys()];
  const where = [...after, known.length > 0 ? `kafka_partition NOT IN (${known.join(', ')})` : 'true'].join(' OR ');
  const result = await clickhouse.query({
    query: `SELECT kafka_partition AS partition, toString(kafka_offset) AS offset, record_kind = 'final' AS final,
                   toString(intDiv(toUnixTimestamp64Nano(time), 1000000)) AS closed_ms
            FROM ${table} WHERE ${where}`,
    format: 'JSONEachRow',
  });
  const now = Date.now();
  for (const row of await result.json<{ partition: number; offset: string; final: number; closed_ms: string }>()) {
    if (BigInt(row.offset) > BigInt(seen.get(row.partition) ?? -1)) seen.set(row.partition, row.offset);
    if (row.final) lags.push(now - Number(row.closed_ms));
  }
}
