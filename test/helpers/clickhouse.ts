import type { ClickHouseClient } from '@clickhouse/client';

/** Runs a query with parameters and returns its rows as objects. */
export async function queryRows<T = Record<string, unknown>>(clickhouse: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await clickhouse.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}
