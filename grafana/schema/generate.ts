/**
 * Generates grafana/schema/dashboard.schema.json: the JSON Schema of a dashboard as file provisioning reads it
 * (the classic model: panels, templating, time), generated from the types @grafana/schema ships: the `Dashboard`
 * type (raw/dashboard/x) and, for each built-in panel type, its `Options` and `FieldConfig` (raw/composable/<panel>/
 * panelcfg/x), which a panel of that type's `options` and `fieldConfig.defaults.custom` must match. Committed, so
 * tests validate against it without regenerating (which takes 20-40 s): its $comment carries a digest of what it is
 * made from (this file's source and every types file read), which a test recomputes to find it stale after an
 * upgrade of @grafana/schema or a change here; then run this again.
 *
 *   npx tsc -p tsconfig.json && node dist/grafana/schema/generate.js
 *
 * Unknown properties are refused everywhere a type lists its properties (a misspelt `gridPos` or legend option is
 * an error, not a silently ignored setting); what the types leave open stays open: targets (each datasource plugin
 * has its own query model), and the options of panel types @grafana/schema does not describe (plugins).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGenerator } from 'ts-json-schema-generator';

const require = createRequire(import.meta.url);
/** The committed schema, beside this script's source (not its compiled copy in dist/). */
export const dashboardSchemaFile = fileURLToPath(new URL('../../../grafana/schema/dashboard.schema.json', import.meta.url));
const generatorSource = fileURLToPath(new URL('../../../grafana/schema/generate.ts', import.meta.url));

/**
 * A panel's `type` → its folder in @grafana/schema's raw/composable: the built-in panels it describes (geomap left
 * out: its types define MapLayerOptions twice, which the generator refuses).
 */
const PANEL_TYPES: Record<string, string> = {
  annolist: 'annotationslist',
  barchart: 'barchart',
  bargauge: 'bargauge',
  candlestick: 'candlestick',
  canvas: 'canvas',
  dashlist: 'dashboardlist',
  gauge: 'gauge',
  heatmap: 'heatmap',
  histogram: 'histogram',
  logs: 'logs',
  news: 'news',
  nodeGraph: 'nodegraph',
  piechart: 'piechart',
  stat: 'stat',
  'state-timeline': 'statetimeline',
  'status-history': 'statushistory',
  table: 'table',
  text: 'text',
  timeseries: 'timeseries',
  trend: 'trend',
  xychart: 'xychart',
};

type Schema = { $ref?: string; definitions?: Record<string, unknown>; [key: string]: unknown };

function generate(path: string, type: string): Schema {
  return createGenerator({ path, type, skipTypeCheck: true, additionalProperties: false, expose: 'export', topRef: true }).createSchema(type) as Schema;
}

/** The schema's definitions renamed `<prefix>X`, with every reference to them rewritten to match. */
function prefixDefinitions(schema: Schema, prefix: string): Record<string, unknown> {
  const rename = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rename);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, key === '$ref' && typeof inner === 'string' ? inner.replace('#/definitions/', `#/definitions/${encodeURIComponent(prefix)}`) : rename(inner)]),
    );
  };
  return Object.fromEntries(Object.entries(schema.definitions ?? {}).map(([name, definition]) => [`${prefix}${name}`, rename(definition)]));
}

/** For one panel type: its definitions, and the condition that applies them to panels of that type. */
function panelSchema(panelType: string, typesFile: string): { definitions: Record<string, unknown>; condition: unknown } {
  const prefix = `${panelType}.`;
  const source = readFileSync(typesFile, 'utf8');
  const options = generate(typesFile, 'Options');
  const then: Record<string, unknown> = { options: { $ref: `#/definitions/${encodeURIComponent(prefix)}Options` } };
  let definitions = prefixDefinitions(options, prefix);
  // Only a FieldConfig the panel declares itself: the generator would otherwise find one among the imports.
  if (/^export interface FieldConfig\b/m.test(source)) {
    definitions = { ...definitions, ...prefixDefinitions(generate(typesFile, 'FieldConfig'), prefix) };
    then.fieldConfig = { properties: { defaults: { properties: { custom: { $ref: `#/definitions/${encodeURIComponent(prefix)}FieldConfig` } } } } };
  }
  return { definitions, condition: { if: { properties: { type: { const: panelType } }, required: ['type'] }, then: { properties: then } } };
}

interface Inputs {
  version: string;
  dashboardTypes: string;
  /** Panel type → the file of its Options and FieldConfig. */
  panelTypes: Array<[panelType: string, file: string]>;
}

function inputs(): Inputs {
  const packageFile = require.resolve('@grafana/schema/package.json');
  const { version } = JSON.parse(readFileSync(packageFile, 'utf8')) as { version: string };
  const types = join(dirname(packageFile), 'dist/types/raw');
  return {
    version,
    dashboardTypes: join(types, 'dashboard/x/types.gen.d.ts'),
    panelTypes: Object.entries(PANEL_TYPES).map(([panelType, folder]) => [panelType, join(types, 'composable', folder, 'panelcfg/x/types.gen.d.ts')]),
  };
}

/** The $comment of a schema made from what is installed now: the version and a digest of every input. */
export function schemaComment(): string {
  const { version, dashboardTypes, panelTypes } = inputs();
  const digest = createHash('sha256');
  for (const file of [generatorSource, dashboardTypes, ...panelTypes.map(([, file]) => file)]) digest.update(readFileSync(file));
  return `generated by grafana/schema/generate.ts from @grafana/schema ${version}: Dashboard (raw/dashboard/x), each panel type's Options and FieldConfig (raw/composable/*/panelcfg/x); inputs sha256 ${digest.digest('hex')}`;
}

/** The schema as text, exactly as committed. */
export function generateDashboardSchema(): string {
  const { dashboardTypes, panelTypes } = inputs();
  const schema = generate(dashboardTypes, 'Dashboard');
  const panels = panelTypes.map(([panelType, file]) => panelSchema(panelType, file));
  const definitions = schema.definitions as Record<string, Schema>;
  definitions.Panel = { ...definitions.Panel, allOf: panels.map((panel) => panel.condition) };
  for (const panel of panels) Object.assign(definitions, panel.definitions);
  return `${JSON.stringify({ $comment: schemaComment(), ...schema }, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(dashboardSchemaFile, generateDashboardSchema());
  console.log(`wrote ${dashboardSchemaFile}`);
}
