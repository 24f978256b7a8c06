/**
 * Running a dashboard's panels as Grafana would, against ClickHouse holding data a real run wrote: the variables
 * resolved by their own queries in order, every ClickHouse query expanded as the plugin expands it (expand.ts) and
 * run with the dashboard's database as the connection's default (the datasource's defaultDatabase: the caller
 * sends `USE <database>` first). Shared by the tests that write the data: test/grafana/panels.test.ts (a pipeline
 * run) and the test of each dashboard over a table a pipeline does not fill (`checkedByTheirOwnRun`).
 */
import assert from 'node:assert/strict';
import type { ClickHouseClient } from '@clickhouse/client';
import { dataPanels, declaredColumns, targetDatasource, type Dashboard, type Panel, type Variable } from './dashboards.js';
import { expandQuery, type QueryContext, type VariableState } from './expand.js';

/**
 * Dashboards whose table a pipeline run does not fill, by file, with the test whose own run writes it and checks
 * the dashboard's panels on it (with assertPanelsReturnDeclaredColumns and exact values). panels.test.ts runs the
 * others; dashboards.test.ts checks that each test named here names its dashboard.
 */
export const checkedByTheirOwnRun: Record<string, string> = {
  'overhead.json': 'test/bench/overhead.test.ts',
};

export interface Result {
  columns: string[];
  rows: Array<Record<string, unknown>>;
}

/** What the panels run on: a ClickHouse connection and the dashboard's time range. */
export interface PanelData {
  clickhouse: ClickHouseClient;
  from: Date;
  to: Date;
}

const minute = 60_000;

async function run({ clickhouse }: PanelData, sql: string): Promise<Result> {
  const result = await clickhouse.query({ query: sql, format: 'JSON' });
  const { meta, data } = await result.json<Record<string, unknown>>();
  return { columns: (meta ?? []).map((column) => column.name), rows: data };
}

/** Grafana's interval for a panel: the panel's minimum, which our range is too short to exceed (range / 1,000 points). */
function panelIntervalMs(data: PanelData, panel: Panel): number {
  const match = /^(\d+)([smh])$/.exec(panel.interval ?? '');
  assert.ok(match, `"${panel.title}": a minimum interval (s, m or h) for a ClickHouse panel, got ${panel.interval}`);
  const intervalMs = Number(match[1]) * { s: 1_000, m: minute, h: 60 * minute }[match[2] as 's' | 'm' | 'h'];
  assert.ok((data.to.getTime() - data.from.getTime()) / 1_000 < intervalMs, 'the range is short enough for the minimum interval to apply');
  return intervalMs;
}

/** The variables of a dashboard, resolved in order as Grafana loads it; `chosen` overrides current values by name. */
export async function resolveVariables(data: PanelData, dashboard: Dashboard, chosen: Record<string, string[]> = {}): Promise<VariableState[]> {
  const states: VariableState[] = [];
  for (const variable of dashboard.templating?.list ?? []) {
    const options = await variableOptions(data, variable, states);
    // Without a current value Grafana selects the first option.
    const first = variable.multi ? options.slice(0, 1) : (options[0] ?? '');
    const state: VariableState = { name: variable.name, value: chosen[variable.name] ?? variable.current?.value ?? first, options };
    if (variable.allValue !== undefined) state.allValue = variable.allValue;
    states.push(state);
  }
  return states;
}

async function variableOptions(data: PanelData, variable: Variable, resolved: VariableState[]): Promise<string[]> {
  if (variable.type === 'custom') return String(variable.query).split(',');
  if (variable.type === 'constant' || variable.type === 'textbox') return [String(variable.query ?? '')];
  assert.equal(variable.type, 'query', `variable ${variable.name}: only query, custom, constant and textbox variables are resolved here`);
  const rawSql = typeof variable.query === 'object' ? variable.query.rawSql : variable.query;
  const { columns, rows } = await run(data, expandQuery(rawSql ?? '', { from: data.from, to: data.to, intervalMs: minute, variables: resolved }));
  // The plugin's metricFindQuery: one column gives the values; with two, the first is the value, the second the text.
  return rows.map((row) => String(row[columns[0]!]));
}

/** Every ClickHouse target of every panel of a dashboard, run; keyed by panel title, then refId. */
export async function runPanels(data: PanelData, dashboard: Dashboard, variables: VariableState[]): Promise<Map<string, Map<string, Result>>> {
  const results = new Map<string, Map<string, Result>>();
  for (const panel of dataPanels(dashboard)) {
    const targets = (panel.targets ?? []).filter((target) => targetDatasource(panel, target)?.type === 'grafana-clickhouse-datasource');
    if (targets.length === 0) continue;
    const context: QueryContext = { from: data.from, to: data.to, intervalMs: panelIntervalMs(data, panel), variables };
    const byRef = new Map<string, Result>();
    for (const target of targets) {
      const sql = expandQuery(target.rawSql ?? '', context);
      byRef.set(target.refId, await run(data, sql).catch((error: unknown) => assert.fail(`"${panel.title}" ${target.refId}: ${String(error)}\n${sql}`)));
    }
    results.set(panel.title, byRef);
  }
  return results;
}

/**
 * Every ClickHouse panel returns rows with exactly the columns it declares, with the variables as the dashboard
 * loads; with one value of each multi-value variable chosen, the filters' SQL runs too (rows or not) and returns
 * only declared columns.
 */
export async function assertPanelsReturnDeclaredColumns(data: PanelData, dashboard: Dashboard): Promise<void> {
  const variables = await resolveVariables(data, dashboard);
  const firstOfEach = Object.fromEntries(variables.filter((v) => Array.isArray(v.value) && v.options.length > 0).map((v) => [v.name, v.options.slice(0, 1)]));
  for (const [title, byRef] of await runPanels(data, dashboard, await resolveVariables(data, dashboard, firstOfEach))) {
    const declared = declaredColumns(dataPanels(dashboard).find((p) => p.title === title)!);
    for (const [refId, result] of byRef) assert.ok(result.columns.every((c) => declared.includes(c)), `"${title}" ${refId} with ${JSON.stringify(firstOfEach)}: ${result.columns.join(', ')}`);
  }
  const results = await runPanels(data, dashboard, variables);
  for (const panel of dataPanels(dashboard).filter((p) => results.has(p.title))) {
    const declared = declaredColumns(panel);
    const seen = new Set<string>();
    for (const [refId, result] of results.get(panel.title)!) {
      assert.ok(result.rows.length > 0, `"${panel.title}" ${refId}: no rows`);
      for (const column of result.columns) {
        assert.ok(declared.includes(column), `"${panel.title}" ${refId}: column ${column} is not declared (${declared.join(', ')})`);
        seen.add(column);
      }
    }
    assert.deepEqual([...seen].sort(), [...declared].sort(), `"${panel.title}": the declared columns are the columns returned`);
  }
}

/** Rows of one panel's target as plain values (64-bit integers come quoted; numbers compare as numbers). */
export function rowsOf(results: Map<string, Map<string, Result>>, title: string, refId = 'A'): Array<Record<string, unknown>> {
  const result = results.get(title)?.get(refId);
  assert.ok(result, `a panel "${title}" with target ${refId}`);
  return result.rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v])));
}

export const pick = (rows: Array<Record<string, unknown>>, ...keys: string[]) => rows.map((row) => Object.fromEntries(keys.map((k) => [k, row[k]])));
