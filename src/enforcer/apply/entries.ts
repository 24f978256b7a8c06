/**
 * MapState (src/enforcer/compile/map-state.ts) as the kernel's map entries and back: addresses and prefixes as
 * 128-bit numbers, directions and protocols as numbers, each policy port range as its prefix blocks
 * (portRangeBlocks), and the reverse for reading the maps back (adjacent blocks of one group and flag merged into
 * ranges, which gives the compiler's ranges back because those are merged the same way).
 */
import { formatIPv6 } from '../../common/address.js';
import { PolicyDirection, PolicyFlag, type IsolationKey, type PolicyDirectionNumber, type PolicyKey, type PrefixKey } from '../../ebpf/records/policy-keys.js';
import { isolationKey, policyEntryKey, portRangeBlocks, PROTOCOL_NUMBERS, type Direction, type EntryProtocol, type IsolationEntry, type PolicyEntry } from '../compile/map-state.js';
import { formatPrefix, parseAddress, parseCidr } from '../../events/networkpolicy/cidr.js';

const V4_MAPPED_HIGH = 0xffffn;

export const directionNumber = (direction: Direction): PolicyDirectionNumber => PolicyDirection[direction];
export const directionName = (number: number): Direction => (number === PolicyDirection.ingress ? 'ingress' : 'egress');
export const flagsOf = (entry: { audit: boolean }): number => (entry.audit ? PolicyFlag.audit : 0);

const PROTOCOL_NAMES = new Map(Object.entries(PROTOCOL_NUMBERS).map(([name, number]) => [number, name as EntryProtocol]));

/** 128 bits, IPv4 v4-mapped, of an address's canonical text. */
export function addressNumber(text: string): bigint {
  const parsed = parseAddress(text);
  if (parsed === null) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  return parsed.address;
}

/** The canonical text (src/common/address.ts) of a 128-bit address. */
export function addressText(address: bigint): string {
  if (address >> 32n === V4_MAPPED_HIGH) {
    const v4 = Number(address & 0xffffffffn);
    return `${v4 >>> 24}.${(v4 >>> 16) & 255}.${(v4 >>> 8) & 255}.${v4 & 255}`;
  }
  return formatIPv6(Array.from({ length: 8 }, (_, i) => Number((address >> BigInt(112 - 16 * i)) & 0xffffn)));
}

export function prefixKey(text: string, generation: number): PrefixKey {
  const prefix = parseCidr(text);
  if (prefix === null) throw new RangeError(`not a CIDR prefix: ${JSON.stringify(text)}`);
  return { address: prefix.address, length: prefix.length, generation };
}

export function prefixText(key: PrefixKey): string {
  const v4 = key.length >= 96 && key.address >> 32n === V4_MAPPED_HIGH;
  return formatPrefix({ address: key.address, length: key.length, family: v4 ? 4 : 6 });
}

export const isolationKeyOf = (entry: IsolationEntry, generation: number): IsolationKey => ({
  subject: entry.subject,
  direction: directionNumber(entry.direction),
  generation,
});

/** The LPM keys of an entry: one per prefix block of its port range. */
export function policyKeys(entry: PolicyEntry, generation: number): PolicyKey[] {
  return portRangeBlocks(entry.portFirst, entry.portLast).map(({ port, bits }) => ({
    generation,
    direction: directionNumber(entry.direction),
    protocol: PROTOCOL_NUMBERS[entry.protocol],
    subject: entry.subject,
    peer: entry.peer,
    port,
    bits,
  }));
}

/** Policy entries back from the LPM keys and flags of one generation. */
export function policyEntries(keys: ReadonlyArray<[PolicyKey, number]>): Map<string, PolicyEntry> {
  const blocks = keys
    .map(([key, flags]) => ({ key, audit: (flags & PolicyFlag.audit) !== 0, first: key.port, last: key.port + 2 ** (16 - key.bits) - 1 }))
    .sort((a, b) => a.first - b.first);
  const open = new Map<string, PolicyEntry>();
  const entries = new Map<string, PolicyEntry>();
  const close = (entry: PolicyEntry) => entries.set(policyEntryKey(entry), entry);
  for (const { key, audit, first, last } of blocks) {
    const protocol = PROTOCOL_NAMES.get(key.protocol);
    if (protocol === undefined) throw new RangeError(`policy map: protocol ${key.protocol} is none the compiler writes`);
    const group = `${key.subject}/${key.direction}/${protocol}/${key.peer}/${audit}`;
    const current = open.get(group);
    if (current && current.portLast + 1 === first) {
      current.portLast = last;
      continue;
    }
    if (current) close(current);
    open.set(group, { subject: key.subject, direction: directionName(key.direction), protocol, peer: key.peer, portFirst: first, portLast: last, audit });
  }
  for (const entry of open.values()) close(entry);
  return entries;
}

export const isolationEntry = (key: IsolationKey, flags: number): [string, IsolationEntry] => {
  const direction = directionName(key.direction);
  return [isolationKey(key.subject, direction), { subject: key.subject, direction, audit: (flags & PolicyFlag.audit) !== 0 }];
};
