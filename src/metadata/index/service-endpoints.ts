/**
 * Which Services a pod backed when: memberships derived from EndpointSlice states. An endpoint that names its pod
 * (targetRef uid) is a membership of that pod; one that does not, of each of its addresses. A membership lasts over
 * the consecutive states of one slice that list the endpoint under the same Service and ports; readiness does not
 * matter (a pod that is not ready still answers connections made to its address). A slice's ports are the ports
 * its endpoints serve (container ports, as a connection to the pod carries them); a slice without ports, or with
 * port 0 (unrestricted), matches every port.
 *
 * One slice's messages arrive in order, so memberships are built as they arrive; the question "which Service at
 * time t" is answered at lookup, so the answer does not depend on the order of different slices' messages.
 */
import type { EndpointSliceState } from '../../events/metadata.js';
import { normalizeAddress } from '../../common/address.js';
import { FOREVER } from './history.js';

interface Membership {
  readonly service: string;
  /** Port numbers the slice serves; empty: every port. */
  readonly ports: readonly number[];
  readonly from: bigint;
  to: bigint;
}

interface OpenMembership {
  membership: Membership;
  /** The pod uid or address it is filed under, and in which map. */
  list: Membership[];
}

const NONE: readonly Membership[] = [];

export class ServiceEndpoints {
  private readonly byPod = new Map<string, Membership[]>();
  private readonly byAddress = new Map<string, Membership[]>();
  /** Per slice key: its open memberships by pod uid (`pod/<uid>`) or address (`address/<address>`). */
  private readonly open = new Map<string, Map<string, OpenMembership>>();

  /** The slice's state from `at` on. */
  update(sliceKey: string, at: bigint, slice: EndpointSliceState): void {
    const ports = portsOf(slice);
    const held = this.open.get(sliceKey) ?? new Map<string, OpenMembership>();
    const listed = new Map<string, { map: Map<string, Membership[]>; id: string }>();
    for (const endpoint of slice.endpoints) {
      if (endpoint.pod_uid !== null) listed.set(`pod/${endpoint.pod_uid}`, { map: this.byPod, id: endpoint.pod_uid });
      else for (const address of endpoint.addresses) listed.set(`address/${normalizeAddress(address)}`, { map: this.byAddress, id: normalizeAddress(address) });
    }
    for (const [member, open] of held) {
      if (listed.has(member) && open.membership.service === slice.service_name && samePorts(open.membership.ports, ports)) continue;
      held.delete(member);
      this.close(open, at);
    }
    for (const [member, { map, id }] of listed) {
      if (held.has(member)) continue;
      let list = map.get(id);
      if (list === undefined) map.set(id, (list = []));
      const membership: Membership = { service: slice.service_name, ports, from: at, to: FOREVER };
      list.push(membership);
      held.set(member, { membership, list });
    }
    if (held.size > 0) this.open.set(sliceKey, held);
    else this.open.delete(sliceKey);
  }

  /** The slice's end (a tombstone) at `at`. */
  remove(sliceKey: string, at: bigint): void {
    const held = this.open.get(sliceKey);
    if (held === undefined) return;
    this.open.delete(sliceKey);
    for (const open of held.values()) this.close(open, at);
  }

  /**
   * The Service the pod (or, for endpoints that name no pod, the address) backed on `port` at `time`; the
   * alphabetically first when several did; '' when none.
   */
  serviceAt(podUid: string, address: string, port: number, time: bigint): string {
    const byPod = firstService(this.byPod.get(podUid) ?? NONE, port, time, '');
    return firstService(this.byAddress.get(address) ?? NONE, port, time, byPod);
  }

  /** Drops the memberships that ended before `horizon`. */
  expire(horizon: bigint): void {
    for (const map of [this.byPod, this.byAddress]) {
      for (const [id, list] of map) {
        const kept = list.filter((membership) => membership.to >= horizon);
        if (kept.length === 0) map.delete(id);
        else if (kept.length < list.length) list.splice(0, list.length, ...kept);
      }
    }
  }

  private close(open: OpenMembership, at: bigint): void {
    const membership = open.membership;
    membership.to = at > membership.from ? at : membership.from;
    // One that never lasted (replaced at the time it was made) is forgotten.
    if (membership.to === membership.from) open.list.splice(open.list.indexOf(membership), 1);
  }
}

function firstService(list: readonly Membership[], port: number, time: bigint, best: string): string {
  for (const membership of list) {
    if (membership.from > time || time >= membership.to || (best !== '' && membership.service >= best)) continue;
    if (membership.ports.length === 0 || membership.ports.includes(port)) best = membership.service;
  }
  return best;
}

function portsOf(slice: EndpointSliceState): readonly number[] {
  if (slice.ports.length === 0 || slice.ports.some((port) => port.port === 0)) return NO_PORTS;
  return [...new Set(slice.ports.map((port) => port.port))].sort((a, b) => a - b);
}

const NO_PORTS: readonly number[] = [];

function samePorts(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((port, i) => port === b[i]);
}
