/**
 * The Grafana files without Grafana (which cannot run here): every dashboard validates against the JSON Schema
 * generated from @grafana/schema (and that committed schema is what the generator makes now), refers only to the
 * provisioned datasources and its own variables, and declares the columns each panel uses; the provisioning files
 * name what deploy must set; and the plugin's expansion of macros and variables (test/grafana/expand.ts), which the
 * integration test runs panels with, gives exact SQL.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { dashboardSchemaFile, schemaComment } from '../../grafana/schema/generate.js';
import { dataPanels, declaredColumns, grafanaDirectory, loadDashboards, referencedColumns, targetDatasource } from './dashboards.js';
import { expandQuery, type QueryContext } from './expand.js';
import { checkedByTheirOwnRun } from './panel-run.js';

const dashboards = loadDashboards();
const datasources = parse(readFileSync(join(grafanaDirectory, 'provisioning/datasources/sidecarless.yaml'), 'utf8')) as {
  datasources: Array<{ uid: string; type: string }>;
};

describe('Grafana dashboards', () => {
  it('the committed schema was made by grafana/schema/generate.ts as it is, from the installed @grafana/schema', () => {
    assert.equal((JSON.parse(readFileSync(dashboardSchemaFile, 'utf8')) as { $comment: string }).$comment, schemaComment(), 'stale: run node dist/grafana/schema/generate.js');
  });

  it("every dashboard validates against the schema, which refuses unknown properties and checks each panel type's options", () => {
    const validate = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(dashboardSchemaFile, 'utf8')) as object);
    assert.ok(dashboards.length >= 5, `dashboards found: ${dashboards.map((d) => d.file).join(', ')}`);
    for (const { file, json } of dashboards) assert.ok(validate(json), `${file}: ${JSON.stringify(validate.errors, null, 1)}`);
    /** The first panel of service RED: a time series. */
    type TimeSeriesPanel = Record<string, unknown> & { options: { legend: Record<string, unknown> }; fieldConfig: { defaults: Record<string, unknown> } };
    const refused = (change: (panel: TimeSeriesPanel) => void): string[] => {
      const copy = structuredClone(dashboards.find((d) => d.dashboard.uid === 'sidecarless-service-red')!.json) as { panels: TimeSeriesPanel[] };
      change(copy.panels[0]!);
      assert.equal(validate(copy), false);
      return (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`);
    };
    assert.ok(refused((panel) => (panel.gridpos = panel.gridPos)).includes('/panels/0 must NOT have additional properties'), 'a misspelt panel property');
    assert.ok(refused((panel) => (panel.options.legend.placment = 'right')).includes('/panels/0/options/legend must NOT have additional properties'), 'a misspelt time series option');
    assert.ok(refused((panel) => (panel.fieldConfig.defaults.custom = { fillOpacity: 'half' })).includes('/panels/0/fieldConfig/defaults/custom/fillOpacity must be number'), 'a custom field option of the wrong type');
  });

  it('dashboards have distinct uids, panels distinct ids and titles, and refer only to provisioned datasources', () => {
    assert.equal(new Set(dashboards.map((d) => d.dashboard.uid)).size, dashboards.length);
    const provisioned = new Map(datasources.datasources.map((d) => [d.uid, d.type]));
    for (const { file, dashboard } of dashboards) {
      const panels = dataPanels(dashboard);
      assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, `${file}: panel ids`);
      assert.equal(new Set(panels.map((p) => p.title)).size, panels.length, `${file}: panel titles (the tests name panels by title)`);
      const refs = [...(dashboard.templating?.list ?? []).map((v) => v.datasource), ...panels.flatMap((p) => [p.datasource, ...(p.targets ?? []).map((t) => targetDatasource(p, t))])];
      for (const ref of refs.filter((r) => r !== undefined)) assert.equal(provisioned.get(ref.uid), ref.type, `${file}: datasource ${JSON.stringify(ref)}`);
    }
  });

  it('every ClickHouse panel declares its columns in organize, and its other references name declared columns', () => {
    for (const { file, dashboard } of dashboards) {
      for (const panel of dataPanels(dashboard)) {
        const sqlTargets = (panel.targets ?? []).filter((t) => t.rawSql !== undefined);
        const where = `${file}: "${panel.title}"`;
        if (sqlTargets.length === 0) continue;
        assert.equal(panel.transformations?.[0]?.id, 'organize', `${where}: organize first`);
        const declared = new Set(declaredColumns(panel));
        assert.ok(declared.size > 0, `${where}: columns declared`);
        for (const name of referencedColumns(panel)) assert.ok(declared.has(name), `${where}: ${name} is referenced but not a declared column`);
      }
    }
  });

  it("a dashboard the pipeline run does not fill is a dashboard here, and the test named to run it on its own run names it", () => {
    const repository = fileURLToPath(new URL('../../../', import.meta.url));
    for (const [file, test] of Object.entries(checkedByTheirOwnRun)) {
      assert.ok(dashboards.some((d) => d.file === file), `${file} is in grafana/dashboards/`);
      assert.match(readFileSync(join(repository, test), 'utf8'), new RegExp(`'${file.replaceAll('.', '\\.')}'`), `${test} runs ${file}`);
    }
  });

  it('every variable a query names is a variable of its dashboard', () => {
    for (const { file, dashboard } of dashboards) {
      const names = new Set((dashboard.templating?.list ?? []).map((v) => v.name));
      const queries = [
        ...(dashboard.templating?.list ?? []).map((v) => (typeof v.query === 'object' ? (v.query.rawSql ?? '') : '')),
        ...dataPanels(dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.rawSql ?? '')),
      ];
      for (const query of queries) {
        for (const [, name] of query.matchAll(/\$\{?([A-Za-z]\w*)/g)) assert.ok(names.has(name!), `${file}: $${name} is no variable`);
      }
    }
  });

  it('provisioning: the datasources the dashboards use, every setting from an environment variable the file documents', () => {
    const text = readFileSync(join(grafanaDirectory, 'provisioning/datasources/sidecarless.yaml'), 'utf8');
    assert.deepEqual(
      datasources.datasources.map((d) => [d.uid, d.type]),
      [
        ['sidecarless-clickhouse', 'grafana-clickhouse-datasource'],
        ['sidecarless-prometheus', 'prometheus'],
      ],
    );
    const settings = text.replace(/^\s*#.*$/gm, '');
    const used = new Set([...settings.matchAll(/\$\{(\w+)\}/g)].map(([, name]) => name));
    const documented = new Set([...text.matchAll(/^#\s+(SIDECARLESS_\w+)/gm)].map(([, name]) => name));
    assert.deepEqual([...used].sort(), [...documented].sort());
    const providers = parse(readFileSync(join(grafanaDirectory, 'provisioning/dashboards/sidecarless.yaml'), 'utf8')) as {
      providers: Array<{ type: string; options: { path: string } }>;
    };
    assert.deepEqual(
      providers.providers.map((p) => [p.type, p.options.path]),
      [['file', '/var/lib/grafana/dashboards/sidecarless']],
    );
  });
});

describe("the ClickHouse plugin's expansion", () => {
  const context = (value: string | string[]): QueryContext => ({
    from: new Date('2026-12-01T10:00:00.250Z'),
    to: new Date('2026-12-01T11:00:00.999Z'),
    intervalMs: 120_000,
    variables: [
      { name: 'namespace', value, options: ['billing', 'shop'] },
      { name: 'side', value: 'client', options: [] },
    ],
  });
  const sql =
    "SELECT $__timeInterval(minute) AS b, $__interval_s AS s FROM t WHERE $__timeFilter(minute) AND $__timeFilter_ms( ts ) AND side = '$side' " +
    'AND $__conditionalAll(ns IN ($namespace), $namespace) AND x IN (${namespace}) AND $__fromTime < $__toTime AND $__fromTime_ms < $__toTime_ms ' +
    'AND $__timeInterval_ms(toDateTime(minute, 3)) > 0';
  const time = "toStartOfInterval(toDateTime(minute), INTERVAL 120 second) AS b, 120 AS s FROM t WHERE minute >= toDateTime(1796119200) AND minute <= toDateTime(1796122800) AND ts >= fromUnixTimestamp64Milli(1796119200250) AND ts <= fromUnixTimestamp64Milli(1796122800999) AND side = 'client'";
  const tail = 'toDateTime(1796119200) < toDateTime(1796122800) AND fromUnixTimestamp64Milli(1796119200250) < fromUnixTimestamp64Milli(1796122800999) AND toStartOfInterval(toDateTime64(toDateTime(minute, 3), 3), INTERVAL 120000 millisecond) > 0';

  it('All: the condition becomes 1=1 and $namespace every option', () => {
    assert.equal(expandQuery(sql, context(['$__all'])), `SELECT ${time} AND 1=1 AND x IN ('billing','shop') AND ${tail}`);
  });

  it('one value of a multi-value variable, and several', () => {
    assert.equal(expandQuery(sql, context(['shop'])), `SELECT ${time} AND ns IN ('shop') AND x IN ('shop') AND ${tail}`);
    assert.equal(expandQuery(sql, context(['billing', 'shop'])), `SELECT ${time} AND ns IN ('billing','shop') AND x IN ('billing','shop') AND ${tail}`);
  });

  it("Grafana's formats chosen with ${name:format} replace the plugin's, also for All", () => {
    const names = { ...context(['$__all']), variables: [{ name: 'names', value: ["o'brien", 'x"y'], options: [] }, { name: 'namespace', value: ['$__all'], options: ['billing', 'shop'] }] };
    assert.equal(
      expandQuery('${names:singlequote} ${names:doublequote} ${names:sqlstring} ${names:csv} ${names:pipe} ${names:raw} ${namespace:singlequote}', names),
      `'o\\'brien','x"y' "o'brien","x\\"y" 'o''brien','x"y' o'brien,x"y o'brien|x"y o'brien,x"y 'billing','shop'`,
    );
    assert.throws(() => expandQuery('${names:regex}', names), /a Grafana format this expansion does not implement/);
    const custom = { ...names, variables: [{ name: 'namespace', value: ['$__all'], options: ['billing'], allValue: '.*' }] };
    assert.equal(expandQuery("match(ns, '$namespace') AND $__conditionalAll(ns IN ($namespace), $namespace)", custom), "match(ns, '.*') AND 1=1", 'a custom all value, unformatted');
  });

  it('an interval under a second counts as one; anything left unexpanded is an error', () => {
    assert.equal(expandQuery('SELECT $__interval_s', { ...context([]), intervalMs: 200 }), 'SELECT 1');
    assert.throws(() => expandQuery('SELECT $__dateFilter(d)', context([])), /\$__dateFilter is left unexpanded/);
    assert.throws(() => expandQuery('SELECT $unknown', context([])), /\$unknown is left unexpanded/);
    assert.throws(() => expandQuery('SELECT $__timeFilter(a, b)', context([])), /expected 1 argument, received 2/);
  });
});
