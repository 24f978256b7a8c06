/**
 * The dashboards of grafana/dashboards/ as the tests read them: every *.json file, its variables, and every panel
 * (rows' nested panels too) with its targets. Generic on purpose: a dashboard added to the folder is validated and
 * its queries run without a change here.
 *
 * The columns a panel uses are declared where Grafana reads them: the panel's first transformation is `organize`,
 * whose indexByName lists every column its queries return, in display order (and renameByName may give them
 * display names). Other references (overrides byName, partitionByValues fields, ${__field.labels.X} in display
 * names) must name one of those columns; panels whose queries go to Prometheus declare none (their series are
 * named by PromQL).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const grafanaDirectory = fileURLToPath(new URL('../../../grafana/', import.meta.url));
export const dashboardsDirectory = join(grafanaDirectory, 'dashboards');

export interface DatasourceRef {
  type: string;
  uid: string;
}

export interface Target {
  refId: string;
  datasource?: DatasourceRef;
  rawSql?: string;
  expr?: string;
  [key: string]: unknown;
}

export interface Transformation {
  id: string;
  options: Record<string, unknown>;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  interval?: string;
  datasource?: DatasourceRef;
  targets?: Target[];
  panels?: Panel[];
  transformations?: Transformation[];
  fieldConfig?: {
    defaults: { displayName?: string };
    overrides: Array<{ matcher: { id: string; options: unknown } }>;
  };
}

export interface Variable {
  name: string;
  type: string;
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string;
  datasource?: DatasourceRef;
  /** A query variable's query (the ClickHouse plugin's { rawSql }), a custom variable's comma-separated values. */
  query?: string | { rawSql?: string };
  current?: { value: string | string[] };
  options?: Array<{ value: string }>;
}

export interface Dashboard {
  uid: string;
  title: string;
  panels?: Panel[];
  templating?: { list: Variable[] };
}

export interface DashboardFile {
  file: string;
  json: unknown;
  dashboard: Dashboard;
}

export function loadDashboards(): DashboardFile[] {
  return readdirSync(dashboardsDirectory)
    .filter((name) => name.endsWith('.json'))
    .sort()
    .map((file) => {
      const json: unknown = JSON.parse(readFileSync(join(dashboardsDirectory, file), 'utf8'));
      return { file, json, dashboard: json as Dashboard };
    });
}

/** Every panel that shows data: rows are unpacked (a collapsed row keeps its panels inside it). */
export function dataPanels(dashboard: Dashboard): Panel[] {
  return (dashboard.panels ?? []).flatMap((panel) => (panel.type === 'row' ? (panel.panels ?? []) : [panel]));
}

/** The datasource a target's query goes to: its own, else the panel's. */
export function targetDatasource(panel: Panel, target: Target): DatasourceRef | undefined {
  return target.datasource ?? panel.datasource;
}

/** The columns the panel's `organize` transformation lists, in display order; [] when it has none. */
export function declaredColumns(panel: Panel): string[] {
  const organize = panel.transformations?.find((t) => t.id === 'organize');
  const indexByName = (organize?.options.indexByName ?? {}) as Record<string, number>;
  return Object.entries(indexByName)
    .sort(([, a], [, b]) => a - b)
    .map(([name]) => name);
}

/**
 * Every column name the panel's configuration refers to besides the organize list: override matchers by name,
 * the fields partitionByValues splits on, and the labels a display name template reads (which partitionByValues
 * makes from columns). Names organize renames to are display names, not columns, and are left out.
 */
export function referencedColumns(panel: Panel): string[] {
  const renamed = new Set(Object.values((panel.transformations?.find((t) => t.id === 'organize')?.options.renameByName ?? {}) as Record<string, string>));
  const names = new Set<string>();
  for (const override of panel.fieldConfig?.overrides ?? []) {
    if (override.matcher.id === 'byName' && typeof override.matcher.options === 'string') names.add(override.matcher.options);
  }
  for (const transformation of panel.transformations ?? []) {
    if (transformation.id === 'partitionByValues') for (const field of transformation.options.fields as string[]) names.add(field);
  }
  for (const [, label] of (panel.fieldConfig?.defaults.displayName ?? '').matchAll(/\$\{__field\.labels\.(\w+)\}/g)) names.add(label!);
  return [...names].filter((name) => !renamed.has(name));
}
