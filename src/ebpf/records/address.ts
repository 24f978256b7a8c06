/**
 * 16-byte addresses from records (IPv4 stored v4-mapped) as text: IPv4 dotted when v4-mapped, otherwise the
 * RFC 5952 form (lowercase, longest zero run compressed): the canonical text of src/common/address.ts.
 * ClickHouse IPv6 columns and OTel `*.address` take both.
 */
import { formatIPv6 } from '../../common/address.js';

export function formatAddress(view: DataView, offset: number): string {
  if (isV4Mapped(view, offset)) {
    return `${view.getUint8(offset + 12)}.${view.getUint8(offset + 13)}.${view.getUint8(offset + 14)}.${view.getUint8(offset + 15)}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.getUint16(offset + 2 * i, false));
  return formatIPv6(groups);
}

function isV4Mapped(view: DataView, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (view.getUint8(offset + i) !== 0) return false;
  return view.getUint8(offset + 10) === 0xff && view.getUint8(offset + 11) === 0xff;
}
