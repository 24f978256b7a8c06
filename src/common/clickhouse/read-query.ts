/**
 * A reader's query (`sidecarless query`): one statement, its user values bound as ClickHouse query parameters
 * (`{name:Type}` in the SQL, never pasted into it), run read-only, its rows with their column names and types.
 *
 * Read-only (readonly = 2: settings may change, data and schema may not), because this is where people paste SQL
 * from a README or a dashboard: the tables are written by the enricher and changed by migrations (`sidecarless
 * init`), never by hand. The embedded engine keeps settings for the rest of its session; a one-shot command has none.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { describeError, RejectedValueError } from '../errors.js';

export interface QueryColumn {
  name: string;
  type: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  /** Values as ClickHouse's JSON output gives them (64-bit integers as strings). */
  rows: Array<Record<string, unknown>>;
}

/** `NAME=VALUE` arguments as query parameters; a malformed or repeated one is an error naming it. */
export function queryParameters(assignments: readonly string[]): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const assignment of assignments) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(assignment);
    if (match === null) throw new RejectedValueError(`--param ${JSON.stringify(assignment)}: expected NAME=VALUE, NAME as in {NAME:Type} in the SQL`, { field: '--param' });
    if (Object.hasOwn(parameters, match[1]!)) throw new RejectedValueError(`--param ${match[1]} is given twice`, { field: '--param' });
    parameters[match[1]!] = match[2]!;
  }
  return parameters;
}

/** Rows a table holds at most: it is built in memory (its widths need every row); JSON lines stream. */
export const TABLE_ROW_LIMIT = 10_000;

/** The statement's rows with their columns, for a table; more than TABLE_ROW_LIMIT rows fail, saying what to do. */
export async function readQuery(client: ClickHouseClient, sql: string, parameters: Record<string, string>): Promise<QueryResult> {
  try {
    const result = await client.query({
      query: sql,
      query_params: parameters,
      format: 'JSON',
      clickhouse_settings: { readonly: '2', max_result_rows: String(TABLE_ROW_LIMIT), result_overflow_mode: 'throw' },
    });
    const { meta, data } = await result.json<Record<string, unknown>>();
    return { columns: (meta ?? []).map(({ name, type }) => ({ name, type })), rows: data };
  } catch (error) {
    if (!/Limit for result exceeded/.test(describeError(error))) throw error;
    throw new RejectedValueError(`the result has more than ${TABLE_ROW_LIMIT} rows, too many for a table: add a LIMIT, or stream them as JSON lines (--format json)`, { field: 'format' });
  }
}

/** The statement's rows as JSON lines (64-bit integers as strings), each handed to `write` as it arrives. */
export async function streamQuery(client: ClickHouseClient, sql: string, parameters: Record<string, string>, write: (line: string) => void): Promise<number> {
  const result = await client.query({ query: sql, query_params: parameters, format: 'JSONEachRow', clickhouse_settings: { readonly: '2', output_format_json_escape_forward_slashes: 0 } });
  let rows = 0;
  for await (const batch of result.stream()) {
    for (const row of batch) {
      write(row.text);
      rows++;
    }
  }
  return rows;
}

/** A value as one table cell: text as it is, anything else (numbers, arrays, maps, null) as JSON. */
export function cellText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Whether a column holds numbers (right-aligned in a table), through Nullable and LowCardinality. */
export function numericType(type: string): boolean {
  return /^(?:(?:Nullable|LowCardinality)\()*(?:U?Int\d+|Float\d+|Decimal)/.test(type);
}
