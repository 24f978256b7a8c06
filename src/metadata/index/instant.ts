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
