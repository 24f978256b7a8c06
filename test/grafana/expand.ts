/**
 * A panel's SQL as the ClickHouse datasource plugin (grafana-clickhouse-datasource) sends it to ClickHouse, in the
 * order the plugin and Grafana expand it. Written from the plugin's behaviour (its frontend CHDatasource
 * applyTemplateVariables and format, its backend pkg/macros run by the plugin SDK's sqlutil.Interpolate), so a
 * test runs what Grafana would run:
 *
 *   1. frontend, $__conditionalAll(condition, $variable): the condition, or 1=1 when the variable's current value
 *      is All ($__all) or empty. Arguments are split at commas outside brackets; an unreadable call stops this step
 *      (the plugin then leaves every remaining call in the SQL).
 *   2. frontend, Grafana's template service with the plugin's format function: $name and ${name} of a dashboard
 *      variable become its value; a list (a multi-value variable, also with one value chosen) becomes 'a','b'
 *      (quoted, joined by commas, nothing escaped: the plugin does not escape, so values must be names without
 *      quotes, which Kubernetes names are), a single value goes in as it is. ${name:format} uses Grafana's format
 *      instead (raw, csv, pipe, singlequote, doublequote, sqlstring here; another is an error). All stands for the
 *      values of every option the variable's query returned, or for the variable's custom all value, which goes
 *      in as it is. Names that are no variable stay as they are.
 *   3. backend, the macros: longest name first, `$__name` ending at a word boundary, arguments in brackets split
 *      at commas outside nested brackets and trimmed, every occurrence replaced. Times are Unix seconds (ms for
 *      the _ms forms) of the dashboard range; the interval is what Grafana computed for the panel, at least 1 s.
 *
 * Anything still written `$name` after that is an error here (ClickHouse would get it as it is), and so are the
 * plugin's date macros ($__dateFilter, $__dateTimeFilter, $__dt), which format a date in the plugin process's time
 * zone and which no dashboard uses.
 */

/** A dashboard variable's state: what is chosen, and what All stands for. */
export interface VariableState {
  name: string;
  /** The current value: one value, a list of values, or ['$__all'] (or '$__all') for All. */
  value: string | string[];
  /** The values of the variable's options (its query's rows), which All expands to. */
  options: string[];
  /** A custom value for All, which then goes in as it is, unformatted. */
  allValue?: string;
}

export interface QueryContext {
  from: Date;
  to: Date;
  /** The interval Grafana computed for the panel ($__interval_ms on the frontend, query.Interval on the backend). */
  intervalMs: number;
  variables: VariableState[];
}

const ALL = '$__all';

export function expandQuery(sql: string, context: QueryContext): string {
  const expanded = expandMacros(interpolateVariables(applyConditionalAll(sql, context.variables), context.variables), context);
  const left = /\$\{?\w+/.exec(expanded);
  if (left) throw new Error(`${left[0]} is left unexpanded in:\n${expanded}`);
  return expanded;
}

// ---- 1. $__conditionalAll (the plugin's frontend)

function applyConditionalAll(sql: string, variables: VariableState[]): string {
  const macro = '$__conditionalAll(';
  let query = sql;
  for (let at = query.lastIndexOf(macro); at !== -1; at = query.lastIndexOf(macro)) {
    const args = bracketArguments(query, at + macro.length - 1)?.args;
    if (args?.length !== 2) return query;
    const [condition, reference] = args as [string, string];
    const variable = variables.find((v) => v.name === reference.trim().slice(1));
    const current = variable === undefined ? undefined : String(variable.value);
    // String.replace with a string: the first occurrence of the same call text, as the plugin replaces it.
    query = query.replace(`${macro}${condition},${reference})`, current === '' || current === ALL ? '1=1' : condition);
  }
  return query;
}

/**
 * The untrimmed arguments of the bracket at `open`, split at commas of its own level, and the index just past its
 * closing bracket; undefined if it never closes.
 */
function bracketArguments(text: string, open: number): { args: string[]; end: number } | undefined {
  const args: string[] = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 1) {
      args.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth === 0) {
      args.push(text.slice(start, i));
      return { args, end: i + 1 };
    }
  }
  return undefined;
}

// ---- 2. dashboard variables (Grafana's template service, the plugin's format)

function interpolateVariables(sql: string, variables: VariableState[]): string {
  return sql.replace(/\$(\w+)|\$\{(\w+)(?::(\w+))?\}/g, (whole, bare: string | undefined, braced: string | undefined, format: string | undefined) => {
    const variable = variables.find((v) => v.name === (bare ?? braced));
    if (variable === undefined) return whole;
    if (isAll(variable) && variable.allValue !== undefined) return variable.allValue;
    const value = valueOf(variable);
    return format === undefined ? formatValue(value) : grafanaFormat(format, Array.isArray(value) ? value : [value]);
  });
}

function isAll({ value }: VariableState): boolean {
  return value === ALL || (Array.isArray(value) && value.includes(ALL));
}

function valueOf(variable: VariableState): string | string[] {
  return isAll(variable) ? variable.options : variable.value;
}

/** The plugin's format: a list quoted and joined, anything else as it is. */
function formatValue(value: string | string[]): string {
  return Array.isArray(value) ? `'${value.join("','")}'` : value;
}

/** Grafana's own formats, which ${name:format} chooses over the plugin's. */
function grafanaFormat(format: string, values: string[]): string {
  const quote = (mark: string, escaped: string) => values.map((v) => `${mark}${v.replaceAll(mark, escaped)}${mark}`).join(',');
  switch (format) {
    case 'raw':
    case 'csv':
      return values.join(',');
    case 'pipe':
      return values.join('|');
    case 'singlequote':
      return quote("'", "\\'");
    case 'doublequote':
      return quote('"', '\\"');
    case 'sqlstring':
      return quote("'", "''");
    default:
      throw new Error(`\${…:${format}}: a Grafana format this expansion does not implement`);
  }
}

// ---- 3. macros (the plugin's backend)

type Macro = (args: string[], context: QueryContext) => string;

const seconds = (time: Date) => Math.floor(time.getTime() / 1000);
const dateTime = (time: Date) => `toDateTime(${seconds(time)})`;
const dateTime64 = (time: Date) => `fromUnixTimestamp64Milli(${time.getTime()})`;

function oneArgument(name: string, build: (column: string, context: QueryContext) => string): Macro {
  return (args, context) => {
    if (args.length !== 1) throw new Error(`$__${name}: expected 1 argument, received ${args.length}`);
    return build(args[0]!, context);
  };
}

const MACROS: Record<string, Macro> = {
  fromTime: (_, { from }) => dateTime(from),
  toTime: (_, { to }) => dateTime(to),
  fromTime_ms: (_, { from }) => dateTime64(from),
  toTime_ms: (_, { to }) => dateTime64(to),
  timeFilter: oneArgument('timeFilter', (c, { from, to }) => `${c} >= ${dateTime(from)} AND ${c} <= ${dateTime(to)}`),
  timeFilter_ms: oneArgument('timeFilter_ms', (c, { from, to }) => `${c} >= ${dateTime64(from)} AND ${c} <= ${dateTime64(to)}`),
  timeInterval: oneArgument('timeInterval', (c, { intervalMs }) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${Math.trunc(Math.max(intervalMs / 1000, 1))} second)`),
  timeInterval_ms: oneArgument('timeInterval_ms', (c, { intervalMs }) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${Math.trunc(Math.max(intervalMs, 1))} millisecond)`),
  interval_s: (_, { intervalMs }) => String(Math.trunc(Math.max(intervalMs / 1000, 1))),
};

function expandMacros(sql: string, context: QueryContext): string {
  let query = sql;
  for (const name of Object.keys(MACROS).sort((a, b) => b.length - a.length)) {
    // Every call is found first, then each call's text replaced wherever it occurs, as the SDK does.
    const calls = [...query.matchAll(new RegExp(`\\$__${name}\\b`, 'g'))].map((match) => {
      const nameEnd = match.index + match[0].length;
      if (query[nameEnd] !== '(') return { text: match[0], args: [] };
      const bracket = bracketArguments(query, nameEnd);
      if (bracket === undefined) throw new Error(`$__${name}: failed to parse macro arguments (missing close bracket?)`);
      return { text: query.slice(match.index, bracket.end), args: bracket.args.map((arg) => arg.trim()) };
    });
    for (const call of calls) query = query.split(call.text).join(MACROS[name]!(call.args, context));
  }
  return query;
}
