/**
 * 16-byte addresses from records (IPv4 stored v4-mapped) as text: IPv4 dotted when v4-mapped, otherwise the
 * RFC 5952 form (lowercase, longest zero run compressed). ClickHouse IPv6 columns and OTel `*.address` take both.
 */
export function formatAddress(view: DataView, offset: number): string {
  if (isV4Mapped(view, offset)) {
    return `${view.getUint8(offset + 12)}.${view.getUint8(offset + 13)}.${view.getUint8(offset + 14)}.${view.getUint8(offset + 15)}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(offset + 2 * i, false));
  let bestStart = -1;
  let bestLength = 1; // RFC 5952: a single zero group is not compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((group) => group.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function isV4Mapped(view: DataView, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (view.getUint8(offset + i) !== 0) return false;
  return view.getUint8(offset + 10) === 0xff && view.getUint8(offset + 11) === 0xff;
}
