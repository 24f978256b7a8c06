/**
 * Times in the index's hot comparisons. A join compares the flow's time with interval bounds a few times; a bigint
 * comparison reads each bigint object, and a bound nobody touched lately is a cache miss. So each bound the joins
 * test is kept with its whole seconds as a small integer, in the object that holds the bound (V8 stores a small
 * integer inside the object: no read of another), and the seconds decide unless the two times are within two
 * seconds of each other, where the bigints do. Exact either way.
 */

/** Seconds since 2020-01-01: small integers until 2088 (later and earlier times are clamped; the bigints decide then). */
const SECONDS_TO_2020 = 1_577_836_800;
const LIMIT = 0x7fff_fffe;

/** A time's whole seconds, within one second of the truth (Number() rounds a nanosecond bigint). */
export function secondsOf(ns: bigint): number {
  const seconds = Math.floor(Number(ns) / 1e9) - SECONDS_TO_2020;
  return seconds > LIMIT ? LIMIT : seconds < -LIMIT ? -LIMIT : seconds;
}

/** Whether a <= b, given each time with its seconds. */
export function atOrBefore(a: bigint, aSeconds: number, b: bigint, bSeconds: number): boolean {
  if (aSeconds < bSeconds - 2) return true;
  if (aSeconds > bSeconds + 2) return false;
  return a <= b;
}

/** The time a join asks about, with its seconds: set once per flow event, read by every comparison of the join. */
export class Instant {
  ns = 0n;
  seconds = 0;

  set(ns: bigint): this {
    this.ns = ns;
    this.seconds = secondsOf(ns);
    return this;
  }

  /** Whether this instant falls in [from, to), given each bound with its seconds. */
  within(from: bigint, fromSeconds: number, to: bigint, toSeconds: number): boolean {
    return atOrBefore(from, fromSeconds, this.ns, this.seconds) && !atOrBefore(to, toSeconds, this.ns, this.seconds);
  }
}

/**
 * An answer a cache entry keeps in its own object (no read of another on a hit), with the interval it holds over:
 * the address book's latest holder's state, the cgroup table's pod state.
 */
export interface KeptAnswer<T> {
  kept: T | undefined;
  keptFrom: bigint;
  keptFromSeconds: number;
  keptTo: bigint;
  keptToSeconds: number;
}

/** Keeps `value` in `entry` over the overlap of [aFrom, aTo) and [bFrom, bTo). */
export function keepAnswer<T>(entry: KeptAnswer<T>, value: T, aFrom: bigint, aTo: bigint, bFrom: bigint, bTo: bigint): void {
  entry.kept = value;
  entry.keptFrom = aFrom > bFrom ? aFrom : bFrom;
  entry.keptFromSeconds = secondsOf(entry.keptFrom);
  entry.keptTo = aTo < bTo ? aTo : bTo;
  entry.keptToSeconds = secondsOf(entry.keptTo);
}

/** The kept answer when the instant falls in its interval. */
export function keptAt<T>(entry: KeptAnswer<T>, instant: Instant): T | undefined {
  const kept = entry.kept;
  return kept !== undefined && instant.within(entry.keptFrom, entry.keptFromSeconds, entry.keptTo, entry.keptToSeconds) ? kept : undefined;
}
