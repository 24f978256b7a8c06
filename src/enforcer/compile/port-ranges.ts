/** Sets of ports as sorted, disjoint, non-adjacent inclusive ranges. Pure. */

export interface PortRange {
  first: number;
  last: number;
}

/** The union of `ranges`, merged: sorted, disjoint, and adjacent ranges joined ([80-80] + [81-81] = [80-81]). */
export function mergeRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first || a.last - b.last);
  const merged: PortRange[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.first <= last.last + 1) last.last = Math.max(last.last, range.last);
    else merged.push({ ...range });
  }
  return merged;
}

/** `from` without the ports of `remove` (both merged). */
export function subtractRanges(from: readonly PortRange[], remove: readonly PortRange[]): PortRange[] {
  const out: PortRange[] = [];
  for (const range of from) {
    let first = range.first;
    for (const cut of remove) {
      if (cut.last < first || cut.first > range.last) continue;
      if (cut.first > first) out.push({ first, last: cut.first - 1 });
      first = cut.last + 1;
    }
    if (first <= range.last) out.push({ first, last: range.last });
  }
  return out;
}
