/**
 * Kernel records carry CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns); events carry wall-clock nanoseconds since
 * the epoch. The offset between the two is measured once (and again on resync(), since NTP slews the wall clock
 * but not the monotonic one), so converting a record costs one addition.
 */
export class BootClock {
  private offsetNs: bigint;

  constructor() {
    this.offsetNs = measureOffset();
  }

  /** Wall-clock ns since the epoch of a kernel monotonic timestamp. */
  toWallNs(monotonicNs: bigint): bigint {
    return monotonicNs + this.offsetNs;
  }

  resync(): void {
    this.offsetNs = measureOffset();
  }
}

/**
 * Date.now() has millisecond resolution; catching the instant it ticks over and reading the monotonic clock
 * (process.hrtime, CLOCK_MONOTONIC on Linux, the clock bpf_ktime_get_ns reads) right then gives the offset to
 * within microseconds. Spins at most a couple of milliseconds.
 */
function measureOffset(): bigint {
  const start = Date.now();
  let wallMs = start;
  let monotonic = process.hrtime.bigint();
  while (wallMs === start) {
    monotonic = process.hrtime.bigint();
    wallMs = Date.now();
  }
  return BigInt(wallMs) * 1_000_000n - monotonic;
}
