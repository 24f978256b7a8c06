/**
 * MapState: the desired contents of the kernel's policy maps, computed without touching the kernel (compile.ts),
 * compared with `diffMapStates`, and written by the apply step (the only one that imports src/ebpf, and the only
 * one that converts byte order). Four maps:
 *
 * - `endpoints` (hash, key: peer IP, 16 bytes v4-mapped → pod identity): every pod IP's identity (the "ipcache").
 * - `prefixes` (LPM trie, key: IP prefix v4-mapped → CIDR identity): every CIDR and `except` any policy names.
 *   Because every cidr and except is a prefix of the trie, all addresses whose longest match is one prefix p are
 *   in exactly the same ipBlocks (in a cidr c iff p ⊆ c, in an except e iff p ⊆ e): the compiler writes each rule's
 *   entries for every p that lies in its cidr and in none of its excepts, so one LPM lookup decides every ipBlock.
 * - `isolation` (hash, key: subject identity, direction → audit flag): present iff some policy selects the subject
 *   for that direction (default deny); the flag is set when only audit-mode policies do.
 * - `policy` (LPM trie, key: subject identity, direction, protocol, peer identity, port prefix → audit flag): what
 *   is allowed. Every entry is an allow; `audit` marks an entry that only audit-mode policies make (it never lets
 *   through what an enforcing policy denies). Ports are ranges here; apply writes each range as the prefix blocks of
 *   `portRangeBlocks` (at most 30). Protocol ANY (0) with the whole port range is a rule without ports. Within one
 *   (subject, direction, peer, protocol) the ranges are disjoint and merged: enforcing first, audit only where no
 *   enforcing range is.
 *
 * The lookup order a kernel program uses for a packet or connect() of subject S, direction D, peer address A,
 * protocol P, port N (explain.ts evaluates exactly this):
 *   1. S from the socket's cgroup (a node-local map the enforcer fills); no identity → allow (not a pod).
 *   2. isolation[S, D]: absent → allow.
 *   3. peers: endpoints[A] (exact; may be absent), prefixes[A] (LPM; may be absent), and ANY (0).
 *   4. for each peer of (endpoints[A], prefixes[A], ANY) and protocol of (P, ANY): policy LPM lookup of
 *      (S, D, protocol, peer, N) — at most 6 lookups; stop at the first entry without the audit flag: allow.
 *   5. otherwise: if isolation[S, D] has the audit flag → pass, reported as audit (allowed by an audit entry, or
 *      would-be denied); else deny.
 * A pod's own IP is in `endpoints` and may also lie in a prefix: both lookups run, so an ipBlock matches pod
 * addresses too (as the e2e suite expects).
 */

export type Direction = 'ingress' | 'egress';
export type EntryProtocol = 'TCP' | 'UDP' | 'SCTP' | 'ANY';

/** IANA protocol numbers, as the kernel keys hold them (ANY = 0). */
export const PROTOCOL_NUMBERS: Readonly<Record<EntryProtocol, number>> = { ANY: 0, TCP: 6, UDP: 17, SCTP: 132 };

export interface PolicyEntry {
  subject: bigint;
  direction: Direction;
  protocol: EntryProtocol;
  /** A pod identity, a CIDR identity, or ANY_PEER (0). */
  peer: bigint;
  portFirst: number;
  portLast: number;
  /** Only audit-mode policies allow this. */
  audit: boolean;
}

export interface IsolationEntry {
  subject: bigint;
  direction: Direction;
  /** Only audit-mode policies select the subject for this direction. */
  audit: boolean;
}

export interface MapState {
  /** Pod IP (canonical text) → pod identity. */
  endpoints: ReadonlyMap<string, bigint>;
  /** Prefix (canonical text, e.g. `10.0.0.0/8`) → CIDR identity. */
  prefixes: ReadonlyMap<string, bigint>;
  /** isolationKey → entry. */
  isolation: ReadonlyMap<string, IsolationEntry>;
  /** policyEntryKey → entry. */
  policy: ReadonlyMap<string, PolicyEntry>;
}

export const isolationKey = (subject: bigint, direction: Direction): string => `${subject}/${direction}`;

/** The (subject, direction, protocol, peer) an entry's port range belongs to. */
export const policyGroupKey = (subject: bigint, direction: Direction, protocol: EntryProtocol, peer: bigint): string => `${subject}/${direction}/${protocol}/${peer}`;

/** An entry's map key (without its value, the audit flag). */
export const policyEntryKey = (entry: Omit<PolicyEntry, 'audit'>): string =>
  `${policyGroupKey(entry.subject, entry.direction, entry.protocol, entry.peer)}/${entry.portFirst}-${entry.portLast}`;

export interface MapChanges<Value> {
  /** Keys to write (new, or with a different value), with their new values. */
  puts: Map<string, Value>;
  /** Keys to remove. */
  deletes: string[];
}

export interface MapStateDiff {
  endpoints: MapChanges<bigint>;
  prefixes: MapChanges<bigint>;
  isolation: MapChanges<IsolationEntry>;
  policy: MapChanges<PolicyEntry>;
}

function diffMap<Value>(before: ReadonlyMap<string, Value>, after: ReadonlyMap<string, Value>, equal: (a: Value, b: Value) => boolean): MapChanges<Value> {
  const puts = new Map<string, Value>();
  for (const [key, value] of after) {
    const old = before.get(key);
    if (old === undefined || !equal(old, value)) puts.set(key, value);
  }
  const deletes = [...before.keys()].filter((key) => !after.has(key));
  return { puts, deletes };
}

/**
 * The fewest writes that turn `before` into `after`: a put per key that is new or whose value changed, a delete per
 * key that is gone; nothing for what is equal.
 */
export function diffMapStates(before: MapState, after: MapState): MapStateDiff {
  return {
    endpoints: diffMap(before.endpoints, after.endpoints, (a, b) => a === b),
    prefixes: diffMap(before.prefixes, after.prefixes, (a, b) => a === b),
    isolation: diffMap(before.isolation, after.isolation, (a, b) => a.audit === b.audit),
    policy: diffMap(before.policy, after.policy, (a, b) => a.audit === b.audit),
  };
}

export const EMPTY_MAP_STATE: MapState = { endpoints: new Map(), prefixes: new Map(), isolation: new Map(), policy: new Map() };

/**
 * A port range as LPM blocks: each `{ port, bits }` covers the ports whose first `bits` bits equal `port`'s
 * (bits 16: one port, 0: all). The fewest blocks that cover exactly [first, last]: at most 30.
 */
export function portRangeBlocks(first: number, last: number): Array<{ port: number; bits: number }> {
  const blocks: Array<{ port: number; bits: number }> = [];
  let start = first;
  while (start <= last) {
    let size = start === 0 ? 1 << 16 : start & -start;
    while (start + size - 1 > last) size >>= 1;
    blocks.push({ port: start, bits: 16 - Math.log2(size) });
    start += size;
  }
  return blocks;
}
