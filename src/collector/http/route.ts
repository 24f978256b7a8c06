/**
 * Privacy by default for HTTP requests: what of a request target is kept, and the bounded-cardinality route it is
 * reported under. Pure: no I/O, no clock.
 *
 * Only the path is kept: the query string and fragment are cut before anything else looks at the target (they carry
 * tokens, e-mail addresses, search terms), and so are the scheme and authority of an absolute-form target (which
 * can carry user:password). Headers, cookies and bodies never reach this module. Targets are latin1 strings, one
 * character per byte as the kernel copied them, so lengths are bytes; percent-encoding is kept as sent.
 *
 * A route replaces the variable segments of a path by placeholders, so that /users/1 and /users/2 are one route:
 * the user's rules first (config http.routeRules, first match wins), else each segment on its own:
 *   {uuid}  8-4-4-4-12 hex digits
 *   {date}  YYYY-MM-DD with a month 01-12 and a day 01-31
 *   {id}    digits, possibly grouped by "-", "_" or "." (123, 2024, 12-345-678, 1.5); a year alone is an {id}: it
 *           cannot be told from an id, and a rule keeps it when that matters
 *   {hash}  16 or more hex digits (64-bit ids, md5, sha1 and git SHAs, sha256)
 *   {token} 16 or more of letters, digits and "-_.=+~" with upper case, lower case and a digit (base64, JWTs)
 * Anything else is kept: v1, users, my-product-2, short hex words such as cafe or beef.
 */
import { parsePattern, type PatternSegment, type RouteRule } from '../../common/route-rules.js';

/** Ends a path or route that was cut at the byte limit. */
export const TRUNCATED = '{truncated}';

/** Text at most `maxBytes` long: a longer one is cut and ends in {truncated}. */
function bounded(text: string, maxBytes: number): string {
  return text.length <= maxBytes ? text : text.slice(0, maxBytes - TRUNCATED.length) + TRUNCATED;
}

const SLASH = 0x2f;
const QUESTION = 0x3f;
const HASH = 0x23;
const COLON = 0x3a;

/** Where the authority of an absolute-form target (scheme "://" authority) begins, or -1 for any other form. */
function authorityStart(target: string): number {
  let i = 0;
  for (; i < target.length; i++) {
    const c = target.charCodeAt(i);
    const letter = (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
    const schemeChar = letter || (i > 0 && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e));
    if (!schemeChar) break;
  }
  return i > 0 && target.charCodeAt(i) === COLON && target.charCodeAt(i + 1) === SLASH && target.charCodeAt(i + 2) === SLASH ? i + 3 : -1;
}

/**
 * The path of a request target, without query string or fragment, at most `maxPathBytes` long:
 * origin-form "/p?q" → "/p"; absolute-form "http://host/p?q" → "/p" ("http://host?q" → "/"); asterisk-form "*" → "*";
 * authority-form (CONNECT "host:443") and anything else → "".
 */
export function urlPath(target: string, maxPathBytes: number): string {
  if (target === '*') return '*';
  let start = 0;
  if (target.charCodeAt(0) !== SLASH) {
    let i = authorityStart(target);
    if (i < 0) return '';
    while (i < target.length && target.charCodeAt(i) !== SLASH && target.charCodeAt(i) !== QUESTION && target.charCodeAt(i) !== HASH) i++;
    if (target.charCodeAt(i) !== SLASH) return '/';
    start = i;
  }
  let end = start;
  while (end < target.length && target.charCodeAt(end) !== QUESTION && target.charCodeAt(end) !== HASH) end++;
  return bounded(target.slice(start, end), maxPathBytes);
}

interface CompiledRule {
  readonly route: string;
  readonly head: readonly PatternSegment[];
  /** Undefined: the pattern has no "**" and matches exactly head.length segments. */
  readonly tail: readonly PatternSegment[] | undefined;
}

/**
 * Turns paths into routes. Rules are compiled once; a call scans the path once to find its segments (into an
 * array reused from call to call), compares each rule's segments in place, and allocates only the route it returns
 * (nothing when the path is its own route). Its cost is the path's length plus, per rule, at most its segment count.
 */
export class RouteTemplater {
  private readonly rules: readonly CompiledRule[];
  /** Index of each "/" of the path being templated; segment k runs from slashes[k] + 1 to the next slash or the end. */
  private readonly slashes: number[] = [];

  constructor(
    rules: readonly RouteRule[],
    private readonly maxPathBytes: number,
  ) {
    this.rules = rules.map(({ pattern, route }, index) => {
      const parsed = parsePattern(pattern);
      // The configuration checked every rule; one that fails here did not come through it.
      if (typeof parsed === 'string') throw new TypeError(`route rule ${index}: pattern ${JSON.stringify(pattern)}: ${parsed}`);
      return { route, head: parsed.head, tail: parsed.tail };
    });
  }

  /** The route of a path as urlPath returns it; "" and "*" are their own routes. */
  route(path: string): string {
    if (path.charCodeAt(0) !== SLASH) return path;
    const slashes = this.slashes;
    slashes.length = 0;
    for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) === SLASH) slashes.push(i);
    for (const rule of this.rules) if (this.matches(path, rule)) return rule.route;
    let route: string | undefined;
    let copied = 0;
    for (let k = 0; k < slashes.length; k++) {
      const from = slashes[k]! + 1;
      const to = this.segmentEnd(path, k);
      const placeholder = placeholderOf(path, from, to);
      if (placeholder === undefined) continue;
      route = (route ?? '') + path.slice(copied, from) + placeholder;
      copied = to;
    }
    return route === undefined ? path : bounded(route + path.slice(copied), this.maxPathBytes);
  }

  private segmentEnd(path: string, k: number): number {
    return k + 1 < this.slashes.length ? this.slashes[k + 1]! : path.length;
  }

  private matches(path: string, rule: CompiledRule): boolean {
    const count = this.slashes.length;
    const { head, tail } = rule;
    if (tail === undefined ? count !== head.length : count < head.length + tail.length) return false;
    for (let k = 0; k < head.length; k++) if (!this.segmentMatches(path, k, head[k]!)) return false;
    if (tail !== undefined) {
      const first = count - tail.length;
      for (let k = 0; k < tail.length; k++) if (!this.segmentMatches(path, first + k, tail[k]!)) return false;
    }
    return true;
  }

  private segmentMatches(path: string, k: number, segment: PatternSegment): boolean {
    const from = this.slashes[k]! + 1;
    const length = this.segmentEnd(path, k) - from;
    if (segment.kind === 'one') return length > 0;
    return length === segment.text.length && path.startsWith(segment.text, from);
  }
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHexLetter = (c: number): boolean => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x66;
/** "-", "_" and ".": group digits in an {id}, and may appear in a {token}. */
const isIdSeparator = (c: number): boolean => c === 0x2d || c === 0x5f || c === 0x2e;
/** "=", "+" and "~" may appear in a {token} (base64 padding and alphabets) but not in an {id}. */
const isTokenMark = (c: number): boolean => c === 0x3d || c === 0x2b || c === 0x7e;

const MIN_HASH_CHARS = 16;
const MIN_TOKEN_CHARS = 16;

/** The placeholder of path[from, to), or undefined when the segment is kept. One pass over the segment. */
function placeholderOf(path: string, from: number, to: number): string | undefined {
  const length = to - from;
  if (length === 0) return undefined;
  let digits = 0;
  let hexLetters = 0;
  let upper = 0;
  let lower = 0;
  let separators = 0;
  let marks = 0;
  for (let i = from; i < to; i++) {
    const c = path.charCodeAt(i);
    if (isDigit(c)) digits++;
    else if (c >= 0x41 && c <= 0x5a) upper++;
    else if (c >= 0x61 && c <= 0x7a) lower++;
    else if (isIdSeparator(c)) separators++;
    else if (isTokenMark(c)) marks++;
    else return undefined; // "%", "{", ":" and the like: not a shape this module recognises
    if (isHexLetter(c)) hexLetters++;
  }
  if (length === 36 && separators === 4 && isUuid(path, from)) return '{uuid}';
  if (length === 10 && separators === 2 && isDate(path, from)) return '{date}';
  const letters = upper + lower;
  if (letters === 0 && marks === 0 && isDigit(path.charCodeAt(from)) && isDigit(path.charCodeAt(to - 1)) && !hasAdjacentSeparators(path, from, to)) return '{id}';
  if (length >= MIN_HASH_CHARS && digits + hexLetters === length) return '{hash}';
  if (length >= MIN_TOKEN_CHARS && upper > 0 && lower > 0 && digits > 0) return '{token}';
  return undefined;
}

function hasAdjacentSeparators(path: string, from: number, to: number): boolean {
  for (let i = from + 1; i < to; i++) if (isIdSeparator(path.charCodeAt(i)) && isIdSeparator(path.charCodeAt(i - 1))) return true;
  return false;
}

function isUuid(path: string, from: number): boolean {
  for (let i = 0; i < 36; i++) {
    const c = path.charCodeAt(from + i);
    const dash = i === 8 || i === 13 || i === 18 || i === 23;
    if (dash ? c !== 0x2d : !(isDigit(c) || isHexLetter(c))) return false;
  }
  return true;
}

function isDate(path: string, from: number): boolean {
  for (let i = 0; i < 10; i++) {
    const c = path.charCodeAt(from + i);
    if (i === 4 || i === 7 ? c !== 0x2d : !isDigit(c)) return false;
  }
  const month = Number(path.slice(from + 5, from + 7));
  const day = Number(path.slice(from + 8, from + 10));
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}
