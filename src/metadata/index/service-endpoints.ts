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
import { addressKey, type AddressKey } from './address-key.js';
import { FOREVER } from './history.js';
import { secondsOf, type Instant } from './instant.js';

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

/**
 * Where a pod state keeps its last answer (PodState's fields): the Service on a port, valid over [from, to) while the
 * memberships are at that version (and, when some endpoint names no pod, for that address).
 */
export interface ServiceMemo {
  servicePort: number;
  service: string;
  serviceFrom: bigint;
  serviceFromSeconds: number;
  serviceTo: bigint;
  serviceToSeconds: number;
  serviceVersion: number;
  serviceAddress: AddressKey | undefined;
}

export class ServiceEndpoints {
  private readonly byPod = new Map<string, Membership[]>();
  private readonly byAddress = new Map<AddressKey, Membership[]>();
  /** Per slice key: its open memberships by pod uid (`pod/<uid>`) or address (`address/<address>`). */
  private readonly open = new Map<string, Map<string, OpenMembership>>();
  /** Changes with every change of memberships: an answer kept from an older version is asked again. */
  private version = 0;

  /** The slice's state from `at` on. */
  update(sliceKey: string, at: bigint, slice: EndpointSliceState): void {
    this.version++;
    const ports = portsOf(slice);
    const held = this.open.get(sliceKey) ?? new Map<string, OpenMembership>();
    const listed = new Map<string, { map: Map<AddressKey, Membership[]>; id: AddressKey }>();
    for (const endpoint of slice.endpoints) {
      if (endpoint.pod_uid !== null) listed.set(`pod/${endpoint.pod_uid}`, { map: this.byPod, id: endpoint.pod_uid });
      else for (const address of endpoint.addresses) listed.set(`address/${normalizeAddress(address)}`, { map: this.byAddress, id: addressKey(normalizeAddress(address)) });
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
    this.version++;
    this.open.delete(sliceKey);
    for (const open of held.values()) this.close(open, at);
  }

  /**
   * The Service the pod (or, for endpoints that name no pod, the address) backed on `port` at `time`; the
   * alphabetically first when several did; '' when none. The answer is kept in `memo` with the interval around
   * `time` over which the memberships do not change, and reused while the time falls in it.
   */
  serviceAt(podUid: string, address: AddressKey, port: number, instant: Instant, memo: ServiceMemo): string {
    if (
      memo.serviceVersion === this.version &&
      memo.servicePort === port &&
      (memo.serviceAddress === undefined || memo.serviceAddress === address) &&
      instant.within(memo.serviceFrom, memo.serviceFromSeconds, memo.serviceTo, memo.serviceToSeconds)
    ) {
      return memo.service;
    }
    const time = instant.ns;
    const around = { from: 0n, to: FOREVER };
    const byPod = firstService(this.byPod.get(podUid) ?? NONE, port, time, '', around);
    memo.service = firstService(this.byAddress.get(address) ?? NONE, port, time, byPod, around);
    memo.servicePort = port;
    memo.serviceFrom = around.from;
    memo.serviceFromSeconds = secondsOf(around.from);
    memo.serviceTo = around.to;
    memo.serviceToSeconds = secondsOf(around.to);
    memo.serviceVersion = this.version;
    memo.serviceAddress = this.byAddress.size === 0 ? undefined : address;
    return memo.service;
  }

  /** Drops the memberships that ended before `horizon`. */
  expire(horizon: bigint): void {
    this.version++;
    for (const map of [this.byPod, this.byAddress] as Array<Map<AddressKey, Membership[]>>) {
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

/** The first Service of the list on the port at the time, if before `best`; narrows `around` to the memberships' boundaries. */
function firstService(list: readonly Membership[], port: number, time: bigint, best: string, around: { from: bigint; to: bigint }): string {
  for (const membership of list) {
    for (const boundary of [membership.from, membership.to]) {
      if (boundary <= time) around.from = boundary > around.from ? boundary : around.from;
      else around.to = boundary < around.to ? boundary : around.to;
    }
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
