/**
 * Which object held an address when: one book for pod IPs, one for Service ClusterIPs, one for node addresses.
 *
 * An object claims an address from the state that first lists it until a state without it, or its tombstone. The
 * interval a claim gets starts earlier than the state that listed it: at the end of the previous holder's interval
 * on that address, but never before the claimant's life began (for a pod its creation: the kubelet assigns the IP
 * before the API server shows it in the pod's status). A later claimant never takes the address from a holder that
 * has not released it: it starts when that holder ends. So an IP reused by pod p2 after p1's deletion names p1 up
 * to the deletion and p2 from then on.
 *
 * Messages of different keys arrive in any order (several partitions), so the intervals are not built as claims
 * arrive: each address keeps its claims sorted by the time they were made (then by holder key) and is resolved
 * again, in that order, whenever one of its claims changes. The answer therefore depends only on the set of claims,
 * never on the order they arrived in.
 *
 * Joins ask stateAt: the holder's state at a time. The state found in the latest interval is kept in the address's
 * history with the interval it holds over (the address interval's intersected with the state's), so that the next
 * join inside it reads neither the holder's history nor its states; a change of the address's claims, of the
 * holder's history (the index reports them: changed()) or expire() makes it forget.
 */
import type { AddressKey } from './address-key.js';
import { Dependents } from './dependents.js';
import { FOREVER, FOREVER_SECONDS, type History, type State } from './history.js';
import { atOrBefore, keepAnswer, keptAt, secondsOf, type Instant } from './instant.js';

interface Claim {
  readonly holder: History;
  /** The time of the state that first listed the address. */
  readonly from: bigint;
  /** The holder's life start: how far back the claim may reach. */
  readonly floor: bigint;
  to: bigint;
  /** Resolved: where the holder's interval on the address starts (>= to when a longer holder shadows it). */
  start: bigint;
}

class AddressHistory {
  /** Sorted by (from, holder key); resolved intervals are in the same order and do not overlap. */
  readonly claims: Claim[] = [];
  /** The latest end of the claims expire() dropped: where resolving starts, so that dropping changes no later answer. */
  releasedUntil = 0n;
  /**
   * The latest resolved interval, [latestStart, latestTo) of latestHolder, kept in this object (most joins ask about
   * it): a join reads no claim. latestStart is FOREVER when no claim has an interval.
   */
  latestHolder: History | undefined = undefined;
  latestStart = FOREVER;
  latestStartSeconds = FOREVER_SECONDS;
  latestTo = FOREVER;
  latestToSeconds = FOREVER_SECONDS;
  /** The latest holder's state the last join found, valid over [keptFrom, keptTo); undefined when none is kept. */
  kept: State | undefined = undefined;
  keptFrom = 0n;
  keptFromSeconds = 0;
  keptTo = 0n;
  keptToSeconds = 0;

  /** Sets the latest interval (and the seconds of its bounds: instant.ts). */
  latest(holder: History | undefined, start: bigint, to: bigint): void {
    this.latestHolder = holder;
    this.latestStart = start;
    this.latestStartSeconds = secondsOf(start);
    this.latestTo = to;
    this.latestToSeconds = secondsOf(to);
  }
}

export class AddressBook {
  private readonly addresses = new Map<AddressKey, AddressHistory>();
  /** Per holder key, its open claims by address. */
  private readonly open = new Map<string, Map<AddressKey, Claim>>();
  private claimCount = 0;
  /** Per holder, the addresses whose kept state is one of its states. */
  private readonly dependents = new Dependents<AddressHistory>();

  /** The holder's addresses from its state at `at` on: claims the new ones, releases at `at` those it no longer lists. */
  hold(holder: History, addresses: readonly AddressKey[], at: bigint): void {
    const held = this.open.get(holder.key) ?? new Map<AddressKey, Claim>();
    const listed = new Set(addresses);
    for (const [address, claim] of held) {
      if (listed.has(address)) continue;
      held.delete(address);
      this.close(address, claim, at);
    }
    for (const address of listed) {
      if (held.has(address)) continue;
      const claim: Claim = { holder, from: at, floor: holder.lifeStart, to: FOREVER, start: at };
      held.set(address, claim);
      this.insert(address, claim);
    }
    if (held.size > 0) this.open.set(holder.key, held);
    else this.open.delete(holder.key);
  }

  /** The holder's end (a tombstone): every address it holds is released at `at`. */
  release(holderKey: string, at: bigint): void {
    const held = this.open.get(holderKey);
    if (held === undefined) return;
    this.open.delete(holderKey);
    for (const [address, claim] of held) this.close(address, claim, at);
  }

  /** The state, at the instant, of the object whose interval on the address holds the instant. */
  stateAt(address: AddressKey, instant: Instant): State | undefined {
    const history = this.addresses.get(address);
    if (history === undefined) return undefined;
    const kept = keptAt(history, instant);
    if (kept !== undefined) return kept;
    if (atOrBefore(history.latestStart, history.latestStartSeconds, instant.ns, instant.seconds)) {
      if (!instant.within(history.latestStart, history.latestStartSeconds, history.latestTo, history.latestToSeconds)) return undefined;
      const holder = history.latestHolder!;
      const state = holder.at(instant);
      if (state !== undefined) this.keep(history, holder, state);
      return state;
    }
    const time = instant.ns;
    const claims = history.claims;
    for (let i = claims.length - 1; i >= 0; i--) {
      const claim = claims[i]!;
      if (claim.start >= claim.to || claim.start > time) continue; // shadowed, or later
      return time < claim.to ? claim.holder.at(instant) : undefined;
    }
    return undefined;
  }

  /** The holder's history changed (a new state, or its end): the states kept from it are found again. */
  changed(holder: History): void {
    for (const history of this.dependents.take(holder)) history.kept = undefined;
  }

  /** Drops the claims that ended before `horizon`; returns how many. Later intervals keep their starts. */
  expire(horizon: bigint): number {
    let dropped = 0;
    for (const [address, history] of this.addresses) {
      const kept = history.claims.filter((claim) => claim.to >= horizon);
      if (kept.length === history.claims.length) continue;
      for (const claim of history.claims) if (claim.to < horizon && claim.to > history.releasedUntil) history.releasedUntil = claim.to;
      dropped += history.claims.length - kept.length;
      if (kept.length === 0) this.addresses.delete(address);
      else history.claims.splice(0, history.claims.length, ...kept);
    }
    this.claimCount -= dropped;
    // The kept states may be among the holders' states dropped with them.
    for (const history of this.addresses.values()) history.kept = undefined;
    this.dependents.clear();
    return dropped;
  }

  /** Claims held (open or within the history). */
  get size(): number {
    return this.claimCount;
  }

  private insert(address: AddressKey, claim: Claim): void {
    let history = this.addresses.get(address);
    if (history === undefined) {
      history = new AddressHistory();
      this.addresses.set(address, history);
    }
    const claims = history.claims;
    let i = claims.length;
    while (i > 0 && compareClaims(claims[i - 1]!, claim) > 0) i--;
    claims.splice(i, 0, claim);
    this.claimCount++;
    this.resolve(history);
  }

  /** Ends a claim; one that never lasted (released at the time it was made) is forgotten. */
  private close(address: AddressKey, claim: Claim, at: bigint): void {
    claim.to = at > claim.from ? at : claim.from;
    const history = this.addresses.get(address)!;
    if (claim.to === claim.from) {
      history.claims.splice(history.claims.indexOf(claim), 1);
      this.claimCount--;
      if (history.claims.length === 0) this.addresses.delete(address);
    }
    this.resolve(history);
  }

  /** The address's intervals again; the state kept from its previous latest interval is forgotten. */
  private resolve(history: AddressHistory): void {
    this.forget(history);
    resolve(history);
  }

  private keep(history: AddressHistory, holder: History, state: State): void {
    this.forget(history);
    keepAnswer(history, state, state.from, state.to, history.latestStart, history.latestTo);
    this.dependents.add(holder, history);
  }

  private forget(history: AddressHistory): void {
    if (history.kept === undefined) return;
    history.kept = undefined;
    if (history.latestHolder !== undefined) this.dependents.remove(history.latestHolder, history);
  }
}

function compareClaims(a: Claim, b: Claim): number {
  if (a.from !== b.from) return a.from < b.from ? -1 : 1;
  return a.holder.key < b.holder.key ? -1 : a.holder.key > b.holder.key ? 1 : 0;
}

/** Each claim's interval starts where the previous holder's ended, backfilled no further than its floor. */
function resolve(history: AddressHistory): void {
  let cursor = history.releasedUntil;
  let latest: Claim | undefined;
  for (const claim of history.claims) {
    claim.start = claim.floor > cursor ? claim.floor : cursor;
    if (claim.to > cursor) cursor = claim.to;
    if (claim.start < claim.to) latest = claim;
  }
  if (latest === undefined) history.latest(undefined, FOREVER, FOREVER);
  else history.latest(latest.holder, latest.start, latest.to);
}
