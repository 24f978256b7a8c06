/**
 * The apply step: a node's desired policy state (the compiled MapState and its local pods' cgroup identities) made
 * the kernel's, atomically (bpf/policy.bpf.c, "Atomic changes").
 *
 * Steady state: both generations hold the applied state. apply(next):
 *   1. writes the diff from the applied state to `next` (diffMapStates: only what changed) into the inactive
 *      generation, deletes before puts (a changed port range's old blocks may overlap its new ones);
 *   2. activates that generation; when that returns, no program still runs with the other one;
 *   3. writes the same diff into the other generation, which is then equal again.
 * A connection is judged by one generation: the old state or the new, never a mix.
 *
 * open() reads the active generation back as the applied state (an enforcer restarted over its pinned maps, which
 * kept enforcing meanwhile), and first brings the other generation up to date if an apply was cut off between
 * steps 2 and 3 (or 1 and 2: the inactive generation is then rewritten to the active one).
 */
import { describeError, KernelError } from '../../common/errors.js';
import { diffMapStates, type MapState } from '../compile/map-state.js';
import {
  addressNumber,
  addressText,
  flagsOf,
  isolationEntry,
  isolationKeyOf,
  policyEntries,
  policyKeys,
  prefixKey,
  prefixText,
} from './entries.js';
import type { PolicyMaps } from './kernel.js';

/** What one node's kernel enforces. */
export interface NodeMapState {
  state: MapState;
  /** Cgroup id → pod identity: every container cgroup of the node's pods (the subjects of the node). */
  cgroups: ReadonlyMap<bigint, bigint>;
}

export const EMPTY_NODE_MAP_STATE: NodeMapState = {
  state: { endpoints: new Map(), prefixes: new Map(), isolation: new Map(), policy: new Map() },
  cgroups: new Map(),
};

export interface ApplyResult {
  /** The generation now active. */
  generation: number;
  /** Map entries written or deleted per generation (policy ranges count their blocks). */
  writes: number;
}

/** The cgroup entries to write (new or another identity) and to delete. */
function diffCgroups(before: ReadonlyMap<bigint, bigint>, after: ReadonlyMap<bigint, bigint>): { put: Map<bigint, bigint>; deleted: bigint[] } {
  const put = new Map([...after].filter(([id, identity]) => before.get(id) !== identity));
  const deleted = [...before.keys()].filter((id) => !after.has(id));
  return { put, deleted };
}

export class PolicyApplier {
  private applied: NodeMapState;

  private constructor(private readonly maps: PolicyMaps) {
    this.applied = readGeneration(maps, maps.activeGeneration());
  }

  /** Takes over the maps as they are: the active generation is the applied state; the other is made equal. */
  static open(maps: PolicyMaps): PolicyApplier {
    const applier = new PolicyApplier(maps);
    const other = 1 - maps.activeGeneration();
    writeDiff(maps, other, readGeneration(maps, other), applier.applied);
    return applier;
  }

  /** The state the kernel enforces. */
  get current(): NodeMapState {
    return this.applied;
  }

  /**
   * Makes `next` the enforced state. When the kernel refuses a write (a map is full), nothing of `next` is
   * enforced: the active generation was never touched, the inactive one is put back to the applied state, and
   * the error says which capacity to raise.
   */
  apply(next: NodeMapState): ApplyResult {
    const active = this.maps.activeGeneration();
    const inactive = 1 - active;
    let writes: number;
    try {
      writes = writeDiff(this.maps, inactive, this.applied, next);
    } catch (error) {
      writeDiff(this.maps, inactive, readGeneration(this.maps, inactive), this.applied);
      throw new KernelError(
        `policy: the new state was not applied, the last applied one is still enforced: ${describeError(error)}. ` +
          'A full map (E2BIG, ENOSPC) needs a larger capacity: maxPods, maxEndpoints, maxPrefixes or maxPolicyEntries',
        { cause: error, context: { component: 'enforcer.apply' } },
      );
    }
    this.maps.activate(inactive);
    writeDiff(this.maps, active, this.applied, next);
    this.applied = next;
    return { generation: inactive, writes };
  }

  /** What one generation of the maps holds (the active one by default), as a NodeMapState. */
  readBack(generation = this.maps.activeGeneration()): NodeMapState {
    return readGeneration(this.maps, generation);
  }
}

/** Turns generation `generation` from `before` into `after`; returns the entries written and deleted. */
function writeDiff(maps: PolicyMaps, generation: number, before: NodeMapState, after: NodeMapState): number {
  const diff = diffMapStates(before.state, after.state);
  const cgroups = diffCgroups(before.cgroups, after.cgroups);
  let writes = 0;
  const count = <T>(items: Iterable<T>, write: (item: T) => void) => {
    for (const item of items) {
      write(item);
      writes++;
    }
  };
  count(cgroups.deleted, (cgroupId) => maps.cgroupIdentity.delete({ cgroupId, generation }));
  count(diff.endpoints.deletes, (ip) => maps.endpoints.delete({ address: addressNumber(ip), generation }));
  count(diff.prefixes.deletes, (prefix) => maps.prefixes.delete(prefixKey(prefix, generation)));
  count(diff.isolation.deletes, (key) => maps.isolation.delete(isolationKeyOf(before.state.isolation.get(key)!, generation)));
  count(
    diff.policy.deletes.flatMap((key) => policyKeys(before.state.policy.get(key)!, generation)),
    (key) => maps.policy.delete(key),
  );
  count(cgroups.put, ([cgroupId, identity]) => maps.cgroupIdentity.update({ cgroupId, generation }, identity));
  count(diff.endpoints.puts, ([ip, identity]) => maps.endpoints.update({ address: addressNumber(ip), generation }, identity));
  count(diff.prefixes.puts, ([prefix, identity]) => maps.prefixes.update(prefixKey(prefix, generation), identity));
  count(diff.isolation.puts.values(), (entry) => maps.isolation.update(isolationKeyOf(entry, generation), flagsOf(entry)));
  count(
    [...diff.policy.puts.values()].flatMap((entry) => policyKeys(entry, generation).map((key) => [key, flagsOf(entry)] as const)),
    ([key, flags]) => maps.policy.update(key, flags),
  );
  return writes;
}

function readGeneration(maps: PolicyMaps, generation: number): NodeMapState {
  const of = <K extends { generation: number }, V>(entries: Array<[K, V]>) => entries.filter(([key]) => key.generation === generation);
  return {
    state: {
      endpoints: new Map(of(maps.endpoints.entries()).map(([key, identity]) => [addressText(key.address), identity])),
      prefixes: new Map(of(maps.prefixes.entries()).map(([key, identity]) => [prefixText(key), identity])),
      isolation: new Map(of(maps.isolation.entries()).map(([key, flags]) => isolationEntry(key, flags))),
      policy: policyEntries(of(maps.policy.entries())),
    },
    cgroups: new Map(of(maps.cgroupIdentity.entries()).map(([key, identity]) => [key.cgroupId, identity])),
  };
}
