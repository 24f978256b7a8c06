/**
 * The history of one object key on metadata.v1: its states, each valid over [from, to). A state is valid from its
 * change_time_ns until the next state's, or until the tombstone's time; the last state of a live object is open
 * (to = FOREVER). The first state of a life starts earlier than its change time, because the object existed before
 * the source saw it: from its created_time_ns when known (never later than the change time, never before the end
 * of the key's previous life); a cgroup, which has no creation time, from the end of the key's previous life, or
 * from the beginning of time when it has none (a flow can only carry a cgroup id while that cgroup exists).
 *
 * Messages of one key arrive in order. A change time earlier than the state before it (a source's clock stepped
 * back) is taken as that state's time: the new state replaces it.
 */
import type { MetadataEvent, MetadataKind, OwnerReference } from '../../events/metadata.js';
import type { AddressKey } from './address-key.js';
import type { EndpointIdentity } from './identity.js';
import { atOrBefore, secondsOf, type Instant } from './instant.js';

/** The end of an open interval: later than every nanosecond timestamp a long holds. */
export const FOREVER = (1n << 63n) - 1n;
export const FOREVER_SECONDS = secondsOf(FOREVER);

/**
 * One state of an object over [from, to). Besides the event, states hold what joins derived from them, so that
 * every later join finding the same state reuses it (metadata-index.ts, identities.ts). Every field is set in the
 * constructor: V8 then keeps them inside the object, where a field added later would cost a join a second read.
 */
export class State {
  /** The bounds' seconds (instant.ts): what joins compare first. */
  readonly fromSeconds: number;
  private end = FOREVER;
  private endSeconds = FOREVER_SECONDS;
  /** The identity this state gives an end: a Service's or a Node's; a pod's as a client. */
  identity: EndpointIdentity | undefined = undefined;

  constructor(
    readonly from: bigint,
    readonly event: MetadataEvent,
  ) {
    this.fromSeconds = secondsOf(from);
  }

  get to(): bigint {
    return this.end;
  }

  set to(time: bigint) {
    this.end = time;
    this.endSeconds = secondsOf(time);
  }

  /** Whether the state began at or before the instant. */
  begunBy(at: Instant): boolean {
    return atOrBefore(this.from, this.fromSeconds, at.ns, at.seconds);
  }

  /** Whether the state holds at the instant. */
  holds(at: Instant): boolean {
    return at.within(this.from, this.fromSeconds, this.end, this.endSeconds);
  }
}

/** A pod's state, with what joins derived from it. */
export class PodState extends State {
  /** Its workload, read from `workloadSource` (the owner's state, valid over its own interval) or from this state alone (null). */
  workload: Pick<OwnerReference, 'kind' | 'name'> | undefined = undefined;
  workloadSource: State | null = null;
  /** What its client identity (`identity`) was built with. */
  identityWorkload: Pick<OwnerReference, 'kind' | 'name'> | undefined = undefined;
  /** Its identity as a server end, with what it was built with; others (a pod serving several Services) by Service name. */
  server: EndpointIdentity | undefined = undefined;
  serverWorkload: Pick<OwnerReference, 'kind' | 'name'> | undefined = undefined;
  serverService = '';
  servers: Map<string, EndpointIdentity> | undefined = undefined;
  /** The Service it backed on `servicePort` over [serviceFrom, serviceTo) (service-endpoints.ts ServiceMemo). */
  servicePort = -1;
  service = '';
  serviceFrom = 0n;
  serviceFromSeconds = 0;
  serviceTo = 0n;
  serviceToSeconds = 0;
  serviceVersion = -1;
  serviceAddress: AddressKey | undefined = undefined;
}

/** A cgroup's state, with the history of the pod it names once a join found it. */
export class CgroupState extends State {
  pod: History | undefined = undefined;
}

export class History {
  readonly states: State[] = [];
  /** The last of the states (most joins ask about it): one read less than through the array. */
  private last: State | undefined = undefined;
  /** Where the current life began: the first state's from (what an address held by it is backfilled to). */
  lifeStart = 0n;

  constructor(
    readonly key: string,
    readonly kind: MetadataKind,
  ) {}

  /** The state valid at the instant, if any. Joins mostly ask about recent times, so the search starts at the end. */
  at(instant: Instant): State | undefined {
    const last = this.last;
    if (last !== undefined && last.begunBy(instant)) return last.holds(instant) ? last : undefined;
    const time = instant.ns;
    const states = this.states;
    for (let i = states.length - 2; i >= 0; i--) {
      const state = states[i]!;
      if (state.from <= time) return time < state.to ? state : undefined;
    }
    return undefined;
  }

  /** Adds the event's state (see above for when it starts); returns it. */
  record(event: MetadataEvent): State {
    const last = this.last;
    let state: State;
    if (last !== undefined && last.to === FOREVER) {
      state = this.newState(event.change_time_ns > last.from ? event.change_time_ns : last.from, event);
      // A replaced state ends where it began: what joins derived from it is never valid again.
      last.to = state.from;
      if (state.from === last.from) this.states[this.states.length - 1] = state;
      else this.states.push(state);
    } else {
      state = this.newState(this.birth(event, last?.to), event);
      this.lifeStart = state.from;
      this.states.push(state);
    }
    this.last = state;
    return state;
  }

  /** Ends the current life at a tombstone's time (never before its last state began); returns the end, or undefined when nothing lived. */
  end(time: bigint): bigint | undefined {
    const last = this.last;
    if (last === undefined || last.to !== FOREVER) return undefined;
    last.to = time > last.from ? time : last.from;
    return last.to;
  }

  /** Drops the states that ended before `horizon`; returns how many. */
  expire(horizon: bigint): number {
    let dropped = 0;
    while (dropped < this.states.length && this.states[dropped]!.to < horizon) dropped++;
    if (dropped > 0) this.states.splice(0, dropped);
    if (this.states.length === 0) this.last = undefined;
    return dropped;
  }

  private newState(from: bigint, event: MetadataEvent): State {
    if (this.kind === 'Pod') return new PodState(from, event);
    return this.kind === 'Cgroup' ? new CgroupState(from, event) : new State(from, event);
  }

  private birth(event: MetadataEvent, previousEnd: bigint | undefined): bigint {
    if (this.kind === 'Cgroup') return previousEnd ?? 0n;
    const created = event.created_time_ns;
    const from = created !== null && created < event.change_time_ns ? created : event.change_time_ns;
    return previousEnd !== undefined && previousEnd > from ? previousEnd : from;
  }
}
