/**
 * Observation times of one source: wall-clock nanoseconds, strictly increasing. Date.now() alone has millisecond
 * resolution, and two changes observed in one millisecond would share a time, leaving their order to the offsets
 * of two different partitions; a watermark at T would then be ambiguous about which of them it covers. The clock
 * interpolates between wall-clock milliseconds with the monotonic clock, re-anchors when the two drift more than a
 * millisecond apart (NTP adjusts the wall clock), and never returns the same value twice, nor a smaller one.
 */
export type Clock = () => bigint;

const MS = 1_000_000n;

export function observationClock(wallMs: () => number = Date.now, monotonicNs: () => bigint = process.hrtime.bigint): Clock {
  let originWall = BigInt(wallMs()) * MS;
  let originMono = monotonicNs();
  let last = 0n;
  return () => {
    const mono = monotonicNs();
    const wall = BigInt(wallMs()) * MS;
    let now = originWall + (mono - originMono);
    if (now < wall - MS || now > wall + MS) {
      originWall = wall;
      originMono = mono;
      now = wall;
    }
    last = now > last ? now : last + 1n;
    return last;
  };
}
