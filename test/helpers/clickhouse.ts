import type { ClickHouseClient } from '@clickhouse/client';

/** Runs a query with parameters and returns its rows as objects. */
export async function queryRows<T = Record<string, unknown>>(clickhouse: ClickHouseClient, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await clickhouse.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

/**
 * Every value of every table of `database` as text (aggregate states as their bytes), by table name: views that
 * store into another table are left out, and a view with its own engine stands for its inner table (`.inner_id.<uuid>`).
 */
export async function everyStoredValue(clickhouse: ClickHouseClient, database: string): Promise<Map<string, string>> {
  const tables = await queryRows<{ name: string }>(
    clickhouse,
    `SELECT name FROM system.tables WHERE database = {database:String} AND (
       engine != 'MaterializedView' AND NOT startsWith(name, '.inner')
       OR engine = 'MaterializedView' AND concat('.inner_id.', toString(uuid)) IN (SELECT name FROM system.tables WHERE database = {database:String})
     ) ORDER BY name`,
    { database },
  );
  const values = new Map<string, string>();
  for (const { name } of tables) {
    const result = await clickhouse.query({ query: `SELECT * FROM ${database}.${name}`, format: 'TabSeparated' });
    values.set(name, await result.text());
  }
  return values;
}
