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
import type { MetadataEvent, MetadataKind } from '../../events/metadata.js';
import type { EndpointIdentity } from './identity.js';

/** The end of an open interval: later than every nanosecond timestamp a long holds. */
export const FOREVER = (1n << 63n) - 1n;

export interface State {
  readonly from: bigint;
  to: bigint;
  readonly event: MetadataEvent;
  /**
   * Identities built from this state, reused by every join that finds it (src/metadata/index/identities.ts): the
   * pod's per Service name, or the one of a Service or Node.
   */
  identities?: Map<string, EndpointIdentity>;
}

export class History {
  readonly states: State[] = [];
  /** Where the current life began: the first state's from (what an address held by it is backfilled to). */
  lifeStart = 0n;

  constructor(
    readonly key: string,
    readonly kind: MetadataKind,
  ) {}

  /** Whether the object lives: its last state is open. */
  get live(): boolean {
    return this.states.at(-1)?.to === FOREVER;
  }

  /** The state valid at `time`, if any. Joins mostly ask about recent times, so the search starts at the end. */
  at(time: bigint): State | undefined {
    const states = this.states;
    for (let i = states.length - 1; i >= 0; i--) {
      const state = states[i]!;
      if (state.from <= time) return time < state.to ? state : undefined;
    }
    return undefined;
  }

  /** Adds the event's state (see above for when it starts); returns it. */
  record(event: MetadataEvent): State {
    const last = this.states.at(-1);
    if (last !== undefined && last.to === FOREVER) {
      const from = event.change_time_ns > last.from ? event.change_time_ns : last.from;
      const state: State = { from, to: FOREVER, event };
      if (from === last.from) this.states[this.states.length - 1] = state;
      else {
        last.to = from;
        this.states.push(state);
      }
      return state;
    }
    const from = this.birth(event, last?.to);
    this.lifeStart = from;
    const state: State = { from, to: FOREVER, event };
    this.states.push(state);
    return state;
  }

  /** Ends the current life at a tombstone's time (never before its last state began); returns the end, or undefined when nothing lived. */
  end(time: bigint): bigint | undefined {
    const last = this.states.at(-1);
    if (last === undefined || last.to !== FOREVER) return undefined;
    last.to = time > last.from ? time : last.from;
    return last.to;
  }

  /** Drops the states that ended before `horizon`; returns how many. */
  expire(horizon: bigint): number {
    let dropped = 0;
    while (dropped < this.states.length && this.states[dropped]!.to < horizon) dropped++;
    if (dropped > 0) this.states.splice(0, dropped);
    return dropped;
  }

  private birth(event: MetadataEvent, previousEnd: bigint | undefined): bigint {
    if (this.kind === 'Cgroup') return previousEnd ?? 0n;
    const created = event.created_time_ns;
    const from = created !== null && created < event.change_time_ns ? created : event.change_time_ns;
    return previousEnd !== undefined && previousEnd > from ? previousEnd : from;
  }
}
