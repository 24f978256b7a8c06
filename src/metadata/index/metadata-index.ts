/**
 * The event-time metadata index: metadata.v1 applied as history, and both ends of a flow named as they were when
 * the connection started. Pure: no I/O; the enricher feeds it messages and asks it about events.
 *
 * What it keeps (each part's module says how):
 *   - per object key, the history of its states, each valid over [from, to) (history.ts): a state from its change
 *     time until the next state or the tombstone; the first from the object's creation (a cgroup's: from the end
 *     of the key's previous life). Joins read the state valid at the flow's start_time_ns.
 *   - per address, which object held it when (address-book.ts), in three books: pod IPs (a pod holds the IPs its
 *     state lists, unless it is host-network, whose IPs are the node's, or terminated: phase Succeeded or Failed
 *     pods keep their IPs in status after the kubelet has released them for reuse), Service ClusterIPs, and node
 *     addresses. A holder's interval is backfilled to the end of the previous holder's, but not before its
 *     creation; addresses are kept in canonical text (IPv4-mapped IPv6 as IPv4: src/common/address.ts).
 *   - per (node, cgroup id), from Cgroup events (key cgroup/<node>/<id>), the pod uid and container id: the
 *     history of that key.
 *   - which Service each pod backed when, from EndpointSlices (service-endpoints.ts).
 * Messages of one key arrive in order, of different keys in any order; every cross-key question (who held an
 * address, a pod's workload, its Service) is resolved from the whole history, so the answers do not depend on that
 * order.
 *
 * join (joinFlow: a flow at its start; an HTTP exchange at its request's start): the observing side is local to the
 * event's node: named by (k8s_node_name, cgroup_id) first, which also names host-network pods, whose address is
 * their node's; if the cgroup names no known pod at the time, by its address. The other side by its address only.
 * An address resolves, at the event's time, to a Service (its
 * ClusterIP: kind `service`, no pod), else a pod (kind `pod`: namespace, pod, workload (workload.ts), node, the
 * allow-listed labels; on the server side also the Service whose EndpointSlice held the pod on the server port),
 * else a node (kind `node`), else nothing: status `miss`, kind `unknown` for a private address (RFC 1918, ULA,
 * loopback), `external` otherwise. Statuses are `hit` or `miss`: whether the metadata was complete through the
 * event's time (else `late`) is the caller's to know.
 *
 * Cost (bench/enrich-join): a join is a few Map lookups and the check of the latest interval (earlier ones are
 * scanned back from it). What it is bound by is memory latency, so each step reads as few objects as it can: what a
 * join derives from a state is kept in that state (the workload with the owner state it came from, the Service with
 * the interval it holds over, the identities), a cgroup is one lookup that keeps the pod state it named
 * (cgroup-table.ts), an address keeps its latest interval and the state its holder had at the last join
 * (address-book.ts), each kept with the interval it holds over and forgotten when a history it rests on changes
 * (dependents.ts), IPv4 keys are integers (address-key.ts), and bounds are compared by their seconds first
 * (instant.ts). The identities it returns are shared frozen objects, built once per state, workload and Service
 * (identities.ts). Address text not in canonical form costs a second lookup and a normalisation (the collector and
 * Kubernetes both write canonical text).
 *
 * Memory: expire(now) drops every interval that ended before now - historyNs, and the histories of objects that
 * were deleted before then. Joins of times before that horizon may miss.
 */
import { isPrivateAddress, normalizeAddress } from '../../common/address.js';
import { RejectedValueError } from '../../common/errors.js';
import type { FlowEvent } from '../../events/flows.js';
import type { MetadataChange, MetadataEvent } from '../../events/metadata.js';
import { AddressBook } from './address-book.js';
import { CgroupTable } from './cgroup-table.js';
import { addressKey, type AddressKey } from './address-key.js';
import { History, type PodState, type State } from './history.js';
import { Identities, MISS_EXTERNAL, MISS_UNKNOWN } from './identities.js';
import { Instant } from './instant.js';
import type { ConnectionEnds, EndpointIdentity, FlowIdentities } from './identity.js';
import { ServiceEndpoints } from './service-endpoints.js';
import { workloadAt } from './workload.js';

export interface MetadataIndexOptions {
  /** Pod label keys copied into identities (enricher.labels), e.g. ['app', 'app.kubernetes.io/name', 'version']. */
  labels: readonly string[];
  /** History that ended longer ago than this (ns, relative to the `nowNs` given to expire) is dropped. */
  historyNs: bigint;
}

/** The part of an event each kind must carry. */
const REQUIRED_PART = {
  Pod: 'pod',
  Service: 'service',
  EndpointSlice: 'endpoint_slice',
  Node: 'node',
  Cgroup: 'cgroup',
} as const satisfies Partial<Record<MetadataEvent['kind'], keyof MetadataEvent>>;

/** Pods that ran to completion: the kubelet released their IPs (though their status still lists them). */
const TERMINATED_PHASES = new Set(['Succeeded', 'Failed']);

/** The port argument of an end that is not a server: it backs no Service. */
const NOT_A_SERVER = -1;

export class MetadataIndex {
  private readonly objects = new Map<string, History>();
  /** (node, cgroup id) → the history of that cgroup's key, and the pod it named at the last join's time. */
  private readonly cgroups = new CgroupTable();
  private readonly podAddresses = new AddressBook();
  private readonly serviceAddresses = new AddressBook();
  private readonly nodeAddresses = new AddressBook();
  private readonly serviceEndpoints = new ServiceEndpoints();
  private readonly identities: Identities;
  private readonly historyNs: bigint;
  /** The time of the flow being joined (one object, set per join: joins allocate no time). */
  private readonly instant = new Instant();
  /** A pod's history by uid (the cgroup table's way to the pod a cgroup names). */
  private readonly podHistory = (uid: string): History | undefined => this.objects.get(uid);

  constructor(options: MetadataIndexOptions) {
    this.identities = new Identities([...options.labels]);
    this.historyNs = options.historyNs;
  }

  /** One message of metadata.v1, in any order across keys (in order per key). Watermark events are ignored here. */
  apply(change: MetadataChange): void {
    if ('deleted' in change) {
      this.end(change.key, change.time_ns);
      return;
    }
    const event = change.event;
    if (event.kind === 'Watermark') return;
    checkParts(change.key, event);
    let history = this.objects.get(change.key);
    if (history === undefined) this.objects.set(change.key, (history = new History(change.key, event.kind)));
    else if (history.kind !== event.kind) {
      throw new RejectedValueError(`metadata key ${change.key} held a ${history.kind}, now a ${event.kind}: a key names one object`, { field: 'kind' });
    }
    const state = history.record(event);
    this.changed(history);
    this.derive(history, state);
  }

  /** Both ends of a flow event, as they were at event.start_time_ns (the connection's start). */
  joinFlow(event: FlowEvent): FlowIdentities {
    return this.join(event, event.start_time_ns);
  }

  /**
   * Both ends of an event of one connection, as they were at `atNs` (a flow's start, an HTTP request's start).
   * Statuses are only 'hit' or 'miss' ('late' is the caller's).
   */
  join(event: ConnectionEnds, atNs: bigint): FlowIdentities {
    const at = this.instant.set(atNs);
    if (event.observer_side === 'client') {
      return { client: this.local(event, event.client_address, NOT_A_SERVER, at), server: this.remote(event.server_address, event.server_port, at) };
    }
    return { client: this.remote(event.client_address, NOT_A_SERVER, at), server: this.local(event, event.server_address, event.server_port, at) };
  }

  /** Drops history intervals that ended before nowNs - historyNs; returns how many were dropped (the caller counts them). */
  expire(nowNs: bigint): number {
    const horizon = nowNs - this.historyNs;
    let dropped = 0;
    for (const [key, history] of this.objects) {
      const cgroup = history.states[0]?.event.cgroup;
      dropped += history.expire(horizon);
      if (history.states.length > 0) continue;
      this.objects.delete(key);
      if (cgroup) this.cgroups.delete(cgroup.k8s_node_name, cgroup.cgroup_id, history);
    }
    // The pod answers the cgroups keep may rest on states dropped above.
    this.cgroups.forgetAll();
    dropped += this.podAddresses.expire(horizon) + this.serviceAddresses.expire(horizon) + this.nodeAddresses.expire(horizon);
    // Derived from EndpointSlice states, which are counted above.
    this.serviceEndpoints.expire(horizon);
    return dropped;
  }

  /** Sizes for metrics: objects, ip intervals, cgroup intervals. */
  stats(): { objects: number; addressIntervals: number; cgroupIntervals: number } {
    const cgroups = this.cgroups.sizes();
    return {
      objects: this.objects.size - cgroups.histories,
      addressIntervals: this.podAddresses.size + this.serviceAddresses.size + this.nodeAddresses.size,
      cgroupIntervals: cgroups.intervals,
    };
  }

  /** What a new state changes beyond its own history. */
  private derive(history: History, state: State): void {
    const event = state.event;
    switch (history.kind) {
      case 'Pod': {
        const pod = event.pod!;
        const holds = !pod.host_network && !TERMINATED_PHASES.has(pod.phase);
        this.podAddresses.hold(history, holds ? pod.ips.map(keyOf) : [], state.from);
        break;
      }
      case 'Service':
        // Headless Services have no ClusterIP (the API shows "None").
        this.serviceAddresses.hold(history, event.service!.cluster_ips.filter((ip) => ip !== 'None').map(keyOf), state.from);
        break;
      case 'Node':
        this.nodeAddresses.hold(history, event.node!.addresses.map(keyOf), state.from);
        break;
      case 'EndpointSlice':
        this.serviceEndpoints.update(history.key, state.from, event.endpoint_slice!);
        break;
      case 'Cgroup': {
        const { k8s_node_name: node, cgroup_id: id } = event.cgroup!;
        this.cgroups.set(node, id, history);
        break;
      }
      default:
        break; // Namespaces and workload controllers: read through their history only.
    }
  }

  /** The key's history has a new state or ended: what the cgroup table and the address books kept from it is forgotten. */
  private changed(history: History): void {
    if (history.kind === 'Pod') this.podAddresses.changed(history);
    else if (history.kind === 'Service') this.serviceAddresses.changed(history);
    else if (history.kind === 'Node') this.nodeAddresses.changed(history);
    if (history.kind === 'Pod' || history.kind === 'Cgroup') this.cgroups.changed(history);
  }

  /** A tombstone: the key's object ends at `time`. */
  private end(key: string, time: bigint): void {
    const history = this.objects.get(key);
    const end = history?.end(time);
    if (history === undefined || end === undefined) return; // unknown, or already deleted
    this.changed(history);
    if (history.kind === 'Pod') this.podAddresses.release(key, end);
    else if (history.kind === 'Service') this.serviceAddresses.release(key, end);
    else if (history.kind === 'Node') this.nodeAddresses.release(key, end);
    else if (history.kind === 'EndpointSlice') this.serviceEndpoints.remove(key, end);
  }

  /** The observing side: its cgroup's pod, else its address. */
  private local(event: ConnectionEnds, address: string, serverPort: number, at: Instant): EndpointIdentity {
    const pod = this.cgroups.podAt(event.k8s_node_name, event.cgroup_id, at, this.podHistory);
    return pod === undefined ? this.remote(address, serverPort, at) : this.pod(pod, addressKey(address), serverPort, at);
  }

  /** An end named by its address alone. */
  private remote(address: string, serverPort: number, at: Instant): EndpointIdentity {
    const key = addressKey(address);
    const found = this.byAddress(key, serverPort, at);
    if (found !== undefined) return found;
    // Text in another form than the canonical one (IPv4-mapped, uppercase, uncompressed IPv6): once more, canonical.
    const canonical = typeof key === 'string' ? normalizeAddress(address) : address;
    const again = canonical === address ? undefined : this.byAddress(addressKey(canonical), serverPort, at);
    return again ?? (isPrivateAddress(canonical) ? MISS_UNKNOWN : MISS_EXTERNAL);
  }

  private byAddress(key: AddressKey, serverPort: number, at: Instant): EndpointIdentity | undefined {
    const service = this.serviceAddresses.stateAt(key, at);
    if (service !== undefined) return this.identities.service(service);
    const pod = this.podAddresses.stateAt(key, at);
    if (pod !== undefined) return this.pod(pod as PodState, key, serverPort, at);
    const node = this.nodeAddresses.stateAt(key, at);
    return node === undefined ? undefined : this.identities.node(node);
  }

  private pod(state: PodState, address: AddressKey, serverPort: number, at: Instant): EndpointIdentity {
    const workload = workloadAt(state, at, this.objects);
    const service = serverPort === NOT_A_SERVER ? '' : this.serviceEndpoints.serviceAt(state.event.object_key, address, serverPort, at, state);
    return this.identities.pod(state, workload, service);
  }
}

/** The key of address text from metadata, in canonical form. */
const keyOf = (text: string): AddressKey => addressKey(normalizeAddress(text));

function checkParts(key: string, event: MetadataEvent): void {
  if (!Object.hasOwn(REQUIRED_PART, event.kind)) return;
  const part = REQUIRED_PART[event.kind as keyof typeof REQUIRED_PART];
  if (event[part] === null) throw new RejectedValueError(`metadata key ${key}: a ${event.kind} event without its ${part} part (the source must fill it)`, { field: part });
}
