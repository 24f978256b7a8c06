/**
 * IP addresses and CIDR prefixes as 128-bit numbers, IPv4 mapped into IPv6 (`::ffff:a.b.c.d`, prefix length + 96),
 * the way the kernel maps will hold them (bpf/include/records.h stores every address v4-mapped in 16 bytes). An
 * IPv4 prefix therefore never contains an IPv6 address and vice versa, as NetworkPolicy means. Pure.
 */
import { isIPv6 } from 'node:net';
import { formatIPv6 } from '../../common/address.js';

export interface Prefix {
  /** The network address, host bits cleared, v4-mapped for IPv4. */
  address: bigint;
  /** Prefix length in the 128-bit space (an IPv4 /8 is 104). */
  length: number;
  family: 4 | 6;
}

const V4_MAPPED = 0xffffn << 32n;
const ALL = (1n << 128n) - 1n;

const mask = (length: number): bigint => (length === 0 ? 0n : (ALL << BigInt(128 - length)) & ALL);

function parseIPv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    // No leading zeros: Go's parser (the API server's) refuses them, since some read them as octal.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part) || Number(part) > 255) return null;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIPv6(text: string): bigint | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  const groups = (side: string): number[] => {
    if (side === '') return [];
    const out: number[] = [];
    for (const part of side.split(':')) {
      if (part.includes('.')) {
        const v4 = parseIPv4(part);
        if (v4 === null) return [NaN];
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else out.push(parseInt(part, 16));
    }
    return out;
  };
  const [head = '', tail] = text.split('::');
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  if (all.length !== 8 || all.some((group) => Number.isNaN(group))) return null;
  return all.reduce((value, group) => (value << 16n) | BigInt(group), 0n);
}

/** An address as a 128-bit number (IPv4 v4-mapped), or null if `text` is neither IPv4 dotted nor IPv6 text. */
export function parseAddress(text: string): { address: bigint; family: 4 | 6 } | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { address: V4_MAPPED | v4, family: 4 };
  const v6 = parseIPv6(text);
  return v6 === null ? null : { address: v6, family: 6 };
}

/** `a.b.c.d/n` or `x::y/n`; host bits set are accepted and cleared, as the API server's parser does. */
export function parseCidr(text: string): Prefix | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const parsed = parseAddress(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (parsed === null || !/^(0|[1-9][0-9]{0,2})$/.test(bits)) return null;
  const width = parsed.family === 4 ? 32 : 128;
  if (Number(bits) > width) return null;
  const length = Number(bits) + (128 - width);
  return { address: parsed.address & mask(length), length, family: parsed.family };
}

/** Whether `inner` lies inside `outer` (equal included). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  return inner.length >= outer.length && (inner.address & mask(outer.length)) === outer.address;
}

export function prefixContainsAddress(outer: Prefix, address: bigint): boolean {
  return (address & mask(outer.length)) === outer.address;
}

/** Canonical text: `10.0.0.0/8`, `2001:db8::/32`. */
export function formatPrefix(prefix: Prefix): string {
  if (prefix.family === 4) {
    const v4 = Number(prefix.address & 0xffffffffn);
    return `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}/${prefix.length - 96}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((prefix.address >> BigInt(112 - 16 * i)) & 0xffffn));
  return `${formatIPv6(groups)}/${prefix.length}`;
}
