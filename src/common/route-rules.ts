/**
 * The syntax of user route rules (config http.routeRules), checked when the configuration is loaded so that a bad
 * rule stops the role at start with the rule's index, not at the first request. The collector compiles the parsed
 * patterns into matchers (src/collector/http/route.ts).
 *
 * A rule is { pattern, route }: a path that matches `pattern` is reported as `route`. A pattern is an absolute path
 * whose segments (split on '/') are each
 *   - `*`: exactly one non-empty segment;
 *   - `**`: any number of segments, none included; at most one per pattern, so matching never backtracks;
 *   - anything else: literal text, compared byte for byte with the path as sent (percent-encoding included).
 * `/api/v1/orders/*` matches `/api/v1/orders/42`, not `/api/v1/orders` nor `/api/v1/orders/42/items`;
 * `/static/**` matches `/static` and everything below it.
 */

export interface RouteRule {
  readonly pattern: string;
  readonly route: string;
}

export type PatternSegment = { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'one' };

/** The segments before a `**` (all of them without one) and, with a `**`, those after it. */
export interface ParsedPattern {
  readonly head: readonly PatternSegment[];
  readonly tail: readonly PatternSegment[] | undefined;
}

/** Rules are tried in order for every request: a bound keeps that cost known. */
export const MAX_ROUTE_RULES = 1000;
/** A route is stored with every request: a bound keeps it small. */
export const MAX_RULE_ROUTE_CHARS = 512;
const MAX_PATTERN_CHARS = 2048;

/** The parsed pattern, or what is wrong with it. */
export function parsePattern(pattern: string): ParsedPattern | string {
  if (!pattern.startsWith('/')) return 'expected a path starting with "/"';
  if (pattern.length > MAX_PATTERN_CHARS) return `expected at most ${MAX_PATTERN_CHARS} characters`;
  if (/[?#\s]/.test(pattern)) return 'expected no "?", "#" or white space (patterns match the path, which has no query)';
  const head: PatternSegment[] = [];
  let tail: PatternSegment[] | undefined;
  for (const text of pattern.slice(1).split('/')) {
    if (text === '**') {
      if (tail !== undefined) return 'expected at most one "**"';
      tail = [];
      continue;
    }
    if (text !== '*' && text.includes('*')) return `expected "*" and "**" only as whole segments (not in "${text}")`;
    (tail ?? head).push(text === '*' ? { kind: 'one' } : { kind: 'literal', text });
  }
  return { head, tail };
}

/** What is wrong with a route, or undefined. */
export function routeProblem(route: string): string | undefined {
  if (!route.startsWith('/')) return 'expected a path starting with "/"';
  if (route.length > MAX_RULE_ROUTE_CHARS) return `expected at most ${MAX_RULE_ROUTE_CHARS} characters`;
  if (/[?#*\s]/.test(route)) return 'expected no "?", "#", "*" or white space';
  return undefined;
}

/** The rules, frozen, or the first rejected one: its index, the field at fault ('' for the rule itself) and why. */
export type CheckedRules =
  | { readonly ok: true; readonly rules: readonly RouteRule[] }
  | { readonly ok: false; readonly index: number; readonly field: '' | 'pattern' | 'route'; readonly problem: string };

export function checkRouteRules(items: readonly unknown[]): CheckedRules {
  const rules: RouteRule[] = [];
  for (const [index, item] of items.entries()) {
    const reject = (field: '' | 'pattern' | 'route', problem: string): CheckedRules => ({ ok: false, index, field, problem });
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return reject('', 'expected an object { "pattern": ..., "route": ... }');
    const extra = Object.keys(item).filter((key) => key !== 'pattern' && key !== 'route');
    if (extra.length > 0) return reject('', `unknown key(s) ${extra.join(', ')}; expected only "pattern" and "route"`);
    const { pattern, route } = item as Record<string, unknown>;
    if (typeof pattern !== 'string') return reject('pattern', 'expected a string');
    if (typeof route !== 'string') return reject('route', 'expected a string');
    const parsed = parsePattern(pattern);
    if (typeof parsed === 'string') return reject('pattern', parsed);
    const problem = routeProblem(route);
    if (problem !== undefined) return reject('route', problem);
    rules.push(Object.freeze({ pattern, route }));
  }
  return { ok: true, rules: Object.freeze(rules) };
}
