/** Unsigned 64-bit record fields read without allocating while they fit a double exactly. */

/** An unsigned 64-bit field: a number while it is a safe integer (no allocation), a bigint beyond. */
export type U64 = number | bigint;

const TWO_POW_32 = 0x1_0000_0000;
/** The high word of the smallest u64 that is not a safe integer (2^53). */
const UNSAFE_HIGH = 0x200000;

/** The little-endian u64 at `at`. */
export function readU64(view: DataView, at: number): U64 {
  const hi = view.getUint32(at + 4, true);
  return hi < UNSAFE_HIGH ? hi * TWO_POW_32 + view.getUint32(at, true) : view.getBigUint64(at, true);
}

/** The one form readU64 gives a value in, whichever form it comes in: fit for a Map key. */
export function canonicalU64(value: U64): U64 {
  return typeof value === 'bigint' && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}
