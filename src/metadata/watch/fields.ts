/**
 * Typed reads from a Kubernetes object as it arrives: JSON from the API server or a document of a YAML file, both
 * untyped. Each read names the field's path (`spec.containers[0].ports[1].containerPort`), so a wrong type in a
 * hand-written file is reported where it is, and an absent optional field takes the API's documented default.
 */
import { DecodeError } from '../../common/errors.js';

export class Fields {
  constructor(
    private readonly value: unknown,
    /** Path of this value from the object's root; '' at the root. */
    readonly path = '',
  ) {}

  /** The object under `key`; an absent one reads as empty. */
  at(key: string): Fields {
    return new Fields(this.field(key, 'object'), this.join(key));
  }

  /** The items of the list under `key`, each with its index in its path; absent reads as no items. */
  items(key: string): Fields[] {
    const list = this.field(key, 'array') as unknown[] | undefined;
    return (list ?? []).map((item, i) => new Fields(item, `${this.join(key)}[${i}]`));
  }

  /** The strings of the list under `key`; absent reads as none. */
  strings(key: string): string[] {
    return this.items(key).map((item) => {
      if (typeof item.value !== 'string') throw new DecodeError(`${item.path}: expected a string, got ${shown(item.value)}`, { field: item.path });
      return item.value;
    });
  }

  string(key: string, fallback = ''): string {
    return (this.field(key, 'string') as string | undefined) ?? fallback;
  }

  /** A present, non-empty string: what an object cannot be without (its uid, its name). */
  required(key: string): string {
    const value = this.string(key);
    if (value === '') throw new DecodeError(`${this.join(key)} is required`, { field: this.join(key) });
    return value;
  }

  boolean(key: string, fallback: boolean): boolean {
    return (this.field(key, 'boolean') as boolean | undefined) ?? fallback;
  }

  int(key: string, fallback: number): number {
    const value = this.field(key, 'number') as number | undefined;
    if (value !== undefined && !Number.isSafeInteger(value)) this.fail(key, 'an integer', value);
    return value ?? fallback;
  }

  /** A number or a name as text (IntOrString: a Service's targetPort). */
  intOrString(key: string, fallback: string): string {
    const value = this.raw(key);
    if (value === undefined || value === null) return fallback;
    if (typeof value === 'string' || (typeof value === 'number' && Number.isSafeInteger(value))) return String(value);
    return this.fail(key, 'an integer or a string', value);
  }

  /** A string → string map (labels, a selector), its keys sorted so that equal maps encode to equal bytes. */
  stringMap(key: string): Record<string, string> {
    const map = this.field(key, 'object') as Record<string, unknown> | undefined;
    const entries = Object.entries(map ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [name, value] of entries) if (typeof value !== 'string') this.fail(`${key}.${name}`, 'a string', value);
    return Object.fromEntries(entries) as Record<string, string>;
  }

  /** A timestamp in RFC 3339 text, as nanoseconds since the epoch; absent reads as null. */
  time(key: string): bigint | null {
    const text = this.field(key, 'string') as string | undefined;
    if (text === undefined) return null;
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) this.fail(key, 'an RFC 3339 time', text);
    return BigInt(ms) * 1_000_000n;
  }

  private raw(key: string): unknown {
    if (this.value === undefined || this.value === null) return undefined;
    return (this.value as Record<string, unknown>)[key];
  }

  /** The value under `key` when it has the JSON type, undefined when absent or null; otherwise an error. */
  private field(key: string, type: 'object' | 'array' | 'string' | 'boolean' | 'number'): unknown {
    const value = this.raw(key);
    if (value === undefined || value === null) return undefined;
    const actual = Array.isArray(value) ? 'array' : typeof value;
    if (actual !== type) this.fail(key, type === 'object' || type === 'array' ? `an ${type}` : `a ${type}`, value);
    return value;
  }

  private join(key: string): string {
    return this.path === '' ? key : `${this.path}.${key}`;
  }

  private fail(key: string, expected: string, value: unknown): never {
    const field = this.join(key);
    throw new DecodeError(`${field}: expected ${expected}, got ${shown(value)}`, { field });
  }
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
