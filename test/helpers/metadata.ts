/**
 * metadata.v1 messages and flow events built the way the metadata source and the collector write them, for the
 * index's tests and bench/enrich-join. Times are nanoseconds; `at` is the change time.
 */
import type { FlowEvent } from '../../src/events/flows.js';
import { cgroupKey, metadataEvent, type CgroupState, type MetadataChange, type MetadataEvent, type MetadataKind, type OwnerReference } from '../../src/events/metadata.js';
import { flowEvent } from './flows.js';
import { unnamed, type EndpointIdentity } from '../../src/metadata/index/identity.js';

const SOURCE = 'kubernetes/test';

/** Seconds as nanoseconds. */
export const sec = (seconds: number): bigint => BigInt(seconds) * 1_000_000_000n;

export const ownerRef = (kind: string, name: string, uid: string): OwnerReference => ({ kind, name, uid });

/** What every Kubernetes object's message carries: its uid (the key), name, namespace, creation and change times. */
export interface ObjectSpec {
  uid: string;
  name: string;
  namespace?: string;
  /** The creation time; the change time when not given (null: unknown). */
  created?: bigint | null;
  at: bigint;
}

/** A message of a Kubernetes object of `kind`, with the fields of its kind. */
function objectMessage(kind: MetadataKind, spec: ObjectSpec, fields: Partial<MetadataEvent>): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind,
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created === undefined ? spec.at : spec.created,
      k8s_namespace_name: kind === 'Namespace' || kind === 'Node' ? '' : (spec.namespace ?? 'shop'),
      name: spec.name,
      ...fields,
    }),
  };
}

export interface PodSpec extends ObjectSpec {
  node?: string;
  ips?: string[];
  owner?: OwnerReference | null;
  labels?: Record<string, string>;
  hostNetwork?: boolean;
  phase?: string;
}

export function podChange(spec: PodSpec): MetadataChange {
  return objectMessage('Pod', spec, {
    labels: spec.labels ?? {},
    owner: spec.owner ?? null,
    pod: {
      k8s_node_name: spec.node ?? 'n1',
      phase: spec.phase ?? 'Running',
      host_network: spec.hostNetwork ?? false,
      ips: spec.ips ?? [],
      container_ids: [],
      ports: [],
    },
  });
}

/** A workload controller (ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob) or a Namespace. */
export function objectChange(kind: MetadataKind, spec: ObjectSpec & { owner?: OwnerReference | null }): MetadataChange {
  return objectMessage(kind, spec, { owner: spec.owner ?? null });
}

export function serviceChange(spec: ObjectSpec & { clusterIps: string[] }): MetadataChange {
  return objectMessage('Service', spec, { service: { type: 'ClusterIP', cluster_ips: spec.clusterIps, selector: {}, ports: [] } });
}

export interface SliceEndpointSpec {
  podUid?: string;
  addresses: string[];
  ready?: boolean;
}

export function sliceChange(spec: Omit<ObjectSpec, 'name'> & { service: string; endpoints: SliceEndpointSpec[]; ports: number[] }): MetadataChange {
  return objectMessage('EndpointSlice', { ...spec, name: `${spec.service}-${spec.uid}` }, {
    endpoint_slice: {
      service_name: spec.service,
      address_type: 'IPv4',
      endpoints: spec.endpoints.map((endpoint) => ({ addresses: endpoint.addresses, pod_uid: endpoint.podUid ?? null, ready: endpoint.ready ?? true })),
      ports: spec.ports.map((port) => ({ name: `p${port}`, port, protocol: 'TCP' })),
    },
  });
}

export function nodeChange(spec: ObjectSpec & { addresses: string[] }): MetadataChange {
  return objectMessage('Node', spec, { node: { addresses: spec.addresses } });
}

/** The message a node's collector publishes for a cgroup's state observed at `at`. */
export function cgroupEvent(cgroup: CgroupState, at: bigint): { key: string; event: MetadataEvent } {
  const key = cgroupKey(cgroup.k8s_node_name, cgroup.cgroup_id);
  return { key, event: metadataEvent({ object_key: key, kind: 'Cgroup', source: `collector/${cgroup.k8s_node_name}`, change_time_ns: at, cgroup }) };
}

/** A container's cgroup, its path made up from the pod uid and the id. */
export function cgroupChange(spec: { node: string; id: bigint; podUid: string | null; at: bigint }): MetadataChange {
  return cgroupEvent(
    {
      k8s_node_name: spec.node,
      cgroup_id: spec.id,
      cgroup_path: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${spec.podUid ?? 'none'}.slice/cri-containerd-c${spec.id}.scope`,
      k8s_pod_uid: spec.podUid,
      container_id: `c${spec.id}`,
    },
    spec.at,
  );
}

export const tombstone = (key: string, at: bigint): MetadataChange => ({ key, deleted: true, time_ns: at });

export interface FlowSpec {
  side: 'client' | 'server';
  node?: string;
  cgroup?: bigint;
  client: string;
  server: string;
  serverPort?: number;
  start: bigint;
}

/** A final flow record of one observing side, as the collector writes it. */
export function observedFlow(spec: FlowSpec): FlowEvent {
  const node = spec.node ?? 'n1';
  return flowEvent(0, {
    connection_id: `${node}/e1/${spec.start}`,
    k8s_node_name: node,
    observer_side: spec.side,
    start_time_ns: spec.start,
    time_ns: spec.start + 1_000_000n,
    network_type: spec.server.includes(':') ? 'ipv6' : 'ipv4',
    client_address: spec.client,
    server_address: spec.server,
    server_port: spec.serverPort ?? 8080,
    connect_latency_us: spec.side === 'client' ? 60 : null,
    cgroup_id: spec.cgroup ?? 0n,
  });
}

/** A deterministic pseudo-random sequence in [0, 1) (mulberry32): the same scenario on every run. */
export function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A pod end as the join names it: `<workload>-1` of the Deployment `workload` in `namespace`, backing `service` if given. */
export function podIdentity(namespace: string, workload: string, service = ''): EndpointIdentity {
  return {
    ...unnamed('hit', 'pod'),
    k8s_namespace_name: namespace,
    k8s_pod_name: `${workload}-1`,
    k8s_workload_kind: 'Deployment',
    k8s_workload_name: workload,
    k8s_service_name: service,
  };
}
