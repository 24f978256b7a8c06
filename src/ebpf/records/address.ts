/**
 * 16-byte addresses from records (IPv4 stored v4-mapped) as text: IPv4 dotted when v4-mapped, otherwise the
 * RFC 5952 form (lowercase, longest zero run compressed): the canonical text of src/common/address.ts.
 * ClickHouse IPv6 columns and OTel `*.address` take both. Written as bytes in place (writeAddress, for encoders
 * that read records straight into messages) or as a string (formatAddress); the first is the one implementation.
 */
import { writeIPv6 } from '../../common/address.js';

/** The longest text: an IPv6 address of eight four-digit groups. */
export const MAX_ADDRESS_TEXT = 39;
const scratch = Buffer.allocUnsafe(MAX_ADDRESS_TEXT);
const groups = new Uint16Array(8);

export function formatAddress(view: DataView, offset: number): string {
  return scratch.toString('latin1', 0, writeAddress(view, offset, scratch, 0));
}

/** Writes the address's text (ASCII, at most MAX_ADDRESS_TEXT bytes) at `pos`; returns the position after it. */
export function writeAddress(view: DataView, offset: number, target: Uint8Array, pos: number): number {
  if (isV4Mapped(view, offset)) {
    for (let i = 12; i < 16; i++) {
      if (i > 12) target[pos++] = 0x2e; // .
      pos = writeDecimalByte(view.getUint8(offset + i), target, pos);
    }
    return pos;
  }
  for (let i = 0; i < 8; i++) groups[i] = view.getUint16(offset + 2 * i, false);
  return writeIPv6(groups, target, pos);
}

export function isV4Mapped(view: DataView, offset: number): boolean {
  for (let i = 0; i < 10; i++) if (view.getUint8(offset + i) !== 0) return false;
  return view.getUint8(offset + 10) === 0xff && view.getUint8(offset + 11) === 0xff;
}

function writeDecimalByte(value: number, target: Uint8Array, pos: number): number {
  if (value >= 100) target[pos++] = 0x30 + Math.floor(value / 100);
  if (value >= 10) target[pos++] = 0x30 + (Math.floor(value / 10) % 10);
  target[pos++] = 0x30 + (value % 10);
  return pos;
}
