/**
 * IP addresses as text, in one canonical form so that text from different writers compares equal: IPv4 dotted
 * (also for IPv4-mapped IPv6: `::ffff:10.0.0.1` is `10.0.0.1`), IPv6 in the RFC 5952 form (lowercase, no leading
 * zeros, the longest run of two or more zero groups compressed). The collector writes this form
 * (src/ebpf/records/address.ts), and so does Kubernetes (Go's net.IP String) for pod, service and node addresses.
 */

/** The longest RFC 5952 text: eight four-digit groups. */
const MAX_IPV6_TEXT = 39;
const scratch = Buffer.allocUnsafe(MAX_IPV6_TEXT);

/** The RFC 5952 text of eight 16-bit groups. */
export function formatIPv6(groups: ArrayLike<number>): string {
  return scratch.toString('latin1', 0, writeIPv6(groups, scratch, 0));
}

/** formatIPv6's text as ASCII bytes at `pos` (at most 39); returns the position after it. */
export function writeIPv6(groups: ArrayLike<number>, target: Uint8Array, pos: number): number {
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
  if (bestStart < 0) return writeGroups(groups, 0, 8, target, pos);
  pos = writeGroups(groups, 0, bestStart, target, pos);
  target[pos++] = 0x3a; // :
  target[pos++] = 0x3a;
  return writeGroups(groups, bestStart + bestLength, 8, target, pos);
}

const HEX = [...'0123456789abcdef'].map((digit) => digit.charCodeAt(0));

/** Groups `from` to `to` in lowercase hex without leading zeros, joined by colons. */
function writeGroups(groups: ArrayLike<number>, from: number, to: number, target: Uint8Array, pos: number): number {
  for (let i = from; i < to; i++) {
    if (i > from) target[pos++] = 0x3a; // :
    const group = groups[i]!;
    for (let shift = group >= 0x1000 ? 12 : group >= 0x100 ? 8 : group >= 0x10 ? 4 : 0; shift >= 0; shift -= 4) target[pos++] = HEX[(group >> shift) & 0xf]!;
  }
  return pos;
}

/** IPv4-mapped IPv6 (`::ffff:a.b.c.d`): the first 80 bits zero, the next 16 bits one. */
function isV4MappedGroups(groups: ArrayLike<number>): boolean {
  for (let i = 0; i < 5; i++) if (groups[i] !== 0) return false;
  return groups[5] === 0xffff;
}

/**
 * The canonical text of an address (see above). Text that is not an IPv6 address (IPv4, a host name) is returned
 * as it is; so is IPv6 text that does not parse.
 */
export function normalizeAddress(text: string): string {
  if (!text.includes(':')) return text;
  const groups = parseIPv6(text.toLowerCase());
  if (groups === undefined) return text;
  if (isV4MappedGroups(groups)) return `${groups[6]! >> 8}.${groups[6]! & 0xff}.${groups[7]! >> 8}.${groups[7]! & 0xff}`;
  return formatIPv6(groups);
}

/** Eight groups of IPv6 text (with `::` and an optional dotted IPv4 tail), or undefined when it does not parse. */
function parseIPv6(text: string): number[] | undefined {
  let body = text;
  let v4Tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    v4Tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    body = text.endsWith('::', lastColon + 1) ? text.slice(0, lastColon + 1) : text.slice(0, lastColon);
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const hexGroups = (part: string) => (part === '' ? [] : part.split(':').map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? parseInt(group, 16) : NaN)));
  const head = hexGroups(halves[0]!);
  const tail = [...(halves.length === 2 ? hexGroups(halves[1]!) : []), ...v4Tail];
  const explicit = head.length + tail.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - explicit).fill(0), ...tail];
  return groups.some(Number.isNaN) ? undefined : groups;
}

function parseIPv4(text: string): number[] | undefined {
  const octets = text.split('.');
  if (octets.length !== 4 || !octets.every((octet) => /^\d{1,3}$/.test(octet) && Number(octet) <= 255)) return undefined;
  return octets.map(Number);
}

/**
 * Whether canonical address text is private: RFC 1918 (10/8, 172.16/12, 192.168/16), loopback (127/8, ::1) or
 * IPv6 unique local (fc00::/7). Reads the text in place: no allocation (it runs on every address a join misses).
 */
export function isPrivateAddress(text: string): boolean {
  if (text.includes(':')) {
    if (text === '::1') return true;
    // fc00::/7: a first group of four hex digits starting fc or fd (canonical text has no leading zeros).
    const c0 = text.charCodeAt(0);
    const c1 = text.charCodeAt(1);
    return text.indexOf(':') === 4 && c0 === 102 && (c1 === 99 || c1 === 100);
  }
  const first = leadingNumber(text, 0);
  if (first === 10 || first === 127) return true;
  const dot = text.indexOf('.');
  const second = dot < 0 ? -1 : leadingNumber(text, dot + 1);
  return (first === 172 && second >= 16 && second <= 31) || (first === 192 && second === 168);
}

/** The decimal number at `from` in text, or -1 when none is there. */
function leadingNumber(text: string, from: number): number {
  let value = -1;
  for (let i = from; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) break;
    value = (value < 0 ? 0 : value * 10) + digit;
  }
  return value;
}
