/**
 * Explain: the verdict for one connection and what decides it, read from a compiled MapState with the lookups a
 * kernel program makes (map-state.ts, "lookup order"), then named with the compiler's origins. Both sides count:
 * the source's egress and the destination's ingress. Pure.
 */
import { normalizeAddress } from '../../common/address.js';
import { parseAddress, parseCidr, prefixContainsAddress, type Prefix } from '../../events/networkpolicy/cidr.js';
import type { Protocol } from '../../events/networkpolicy/types.js';
import type { CompiledPolicies, RuleOrigin } from './compile.js';
import { ANY_PEER } from './identities.js';
import { isolationKey, policyGroupKey, type Direction, type EntryProtocol, type MapState, type PolicyEntry } from './map-state.js';

/** One end of a connection: its identity (from its cgroup; undefined: not a pod) and its address. */
export interface ConnectionEnd {
  identity: bigint | undefined;
  ip: string;
}

export type SideVerdict =
  /** No policy selects the subject for this direction. */
  | 'open'
  | 'allow'
  | 'deny'
  /** Selected only by audit-mode policies: passes; an audit rule allows it. */
  | 'audit-allow'
  /** Selected only by audit-mode policies: passes, but would be denied. */
  | 'audit-deny';

export interface MatchedEntry {
  entry: PolicyEntry;
  /** The rules behind the entry that cover the port. */
  rules: RuleOrigin[];
}

export interface SideExplanation {
  direction: Direction;
  subject: bigint | undefined;
  verdict: SideVerdict;
  /** Policies that select the subject for this direction (`namespace/name`). */
  isolatedBy: readonly string[];
  /** The peer identities looked up: from the endpoint map, from the prefix trie. */
  peerIdentity: bigint | undefined;
  peerPrefix: string | undefined;
  /** Entries the lookups found, in lookup order. */
  matches: MatchedEntry[];
}

export interface Explanation {
  allowed: boolean;
  egress: SideExplanation;
  ingress: SideExplanation;
}

/** The kernel's view of a MapState: the same lookups, by the same keys. */
export class MapLookup {
  private readonly groups = new Map<string, PolicyEntry[]>();
  private readonly prefixes: Array<{ prefix: Prefix; text: string; id: bigint }>;

  constructor(private readonly state: MapState) {
    for (const entry of state.policy.values()) {
      const key = policyGroupKey(entry.subject, entry.direction, entry.protocol, entry.peer);
      const list = this.groups.get(key) ?? [];
      list.push(entry);
      this.groups.set(key, list);
    }
    this.prefixes = [...state.prefixes].map(([text, id]) => ({ prefix: parseCidr(text)!, text, id })).sort((a, b) => b.prefix.length - a.prefix.length);
  }

  endpoint(ip: string): bigint | undefined {
    return this.state.endpoints.get(normalizeAddress(ip));
  }

  /** Longest prefix containing `ip`. */
  prefix(ip: string): { text: string; id: bigint } | undefined {
    const address = parseAddress(normalizeAddress(ip));
    if (address === null) return undefined;
    return this.prefixes.find(({ prefix }) => prefixContainsAddress(prefix, address.address));
  }

  isolation(subject: bigint, direction: Direction) {
    return this.state.isolation.get(isolationKey(subject, direction));
  }

  entry(subject: bigint, direction: Direction, protocol: EntryProtocol, peer: bigint, port: number): PolicyEntry | undefined {
    return this.groups.get(policyGroupKey(subject, direction, protocol, peer))?.find((entry) => entry.portFirst <= port && port <= entry.portLast);
  }
}

function explainSide(compiled: CompiledPolicies, lookup: MapLookup, direction: Direction, subject: bigint | undefined, peer: string, protocol: Protocol, port: number): SideExplanation {
  const peerIdentity = lookup.endpoint(peer);
  const peerPrefix = lookup.prefix(peer);
  const side = { direction, subject, peerIdentity, peerPrefix: peerPrefix?.text, matches: [] as MatchedEntry[] };
  const isolation = subject === undefined ? undefined : lookup.isolation(subject, direction);
  if (subject === undefined || isolation === undefined) return { ...side, verdict: 'open', isolatedBy: [] };
  const isolatedBy = compiled.isolatedBy.get(isolationKey(subject, direction)) ?? [];
  const peers = [peerIdentity, peerPrefix?.id, ANY_PEER].filter((id): id is bigint => id !== undefined);
  for (const peerId of peers) {
    for (const entryProtocol of [protocol, 'ANY'] as const) {
      const entry = lookup.entry(subject, direction, entryProtocol, peerId, port);
      if (entry === undefined) continue;
      const origins = compiled.origins.get(policyGroupKey(subject, direction, entryProtocol, peerId)) ?? [];
      side.matches.push({ entry, rules: origins.filter((origin) => origin.portFirst <= port && port <= origin.portLast && origin.audit === entry.audit) });
    }
  }
  const enforcing = side.matches.some((match) => !match.entry.audit);
  const verdict: SideVerdict = enforcing ? 'allow' : isolation.audit ? (side.matches.length > 0 ? 'audit-allow' : 'audit-deny') : 'deny';
  return { ...side, verdict, isolatedBy };
}

/** Whether `from` may connect to `to` on port/protocol, and why, per the compiled maps. */
export function explain(compiled: CompiledPolicies, from: ConnectionEnd, to: ConnectionEnd, port: number, protocol: Protocol, lookup = new MapLookup(compiled.state)): Explanation {
  const egress = explainSide(compiled, lookup, 'egress', from.identity, to.ip, protocol, port);
  const ingress = explainSide(compiled, lookup, 'ingress', to.identity, from.ip, protocol, port);
  const passes = (side: SideExplanation): boolean => side.verdict !== 'deny';
  return { allowed: passes(egress) && passes(ingress), egress, ingress };
}
