/**
 * metadata.v1 messages and flow events built the way the metadata source and the collector write them, for the
 * index's tests and bench/enrich-join. Times are nanoseconds; `at` is the change time.
 */
import type { FlowEvent } from '../../src/events/flows.js';
import { cgroupKey, metadataEvent, type MetadataChange, type MetadataKind, type OwnerReference } from '../../src/events/metadata.js';

const SOURCE = 'kubernetes/test';

/** Seconds as nanoseconds. */
export const sec = (seconds: number): bigint => BigInt(seconds) * 1_000_000_000n;

export const ownerRef = (kind: string, name: string, uid: string): OwnerReference => ({ kind, name, uid });

export interface PodSpec {
  uid: string;
  name: string;
  namespace?: string;
  node?: string;
  ips?: string[];
  owner?: OwnerReference | null;
  labels?: Record<string, string>;
  created?: bigint | null;
  hostNetwork?: boolean;
  phase?: string;
  at: bigint;
}

export function podChange(spec: PodSpec): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind: 'Pod',
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created === undefined ? spec.at : spec.created,
      k8s_namespace_name: spec.namespace ?? 'shop',
      name: spec.name,
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
    }),
  };
}

/** A workload controller (ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob) or a Namespace. */
export function objectChange(kind: MetadataKind, spec: { uid: string; name: string; namespace?: string; owner?: OwnerReference | null; at: bigint; created?: bigint }): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind,
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created ?? spec.at,
      k8s_namespace_name: kind === 'Namespace' ? '' : (spec.namespace ?? 'shop'),
      name: spec.name,
      owner: spec.owner ?? null,
    }),
  };
}

export function serviceChange(spec: { uid: string; name: string; namespace?: string; clusterIps: string[]; at: bigint; created?: bigint }): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind: 'Service',
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created ?? spec.at,
      k8s_namespace_name: spec.namespace ?? 'shop',
      name: spec.name,
      service: { type: 'ClusterIP', cluster_ips: spec.clusterIps, selector: {}, ports: [] },
    }),
  };
}

export interface SliceEndpointSpec {
  podUid?: string;
  addresses: string[];
  ready?: boolean;
}

export function sliceChange(spec: { uid: string; service: string; namespace?: string; endpoints: SliceEndpointSpec[]; ports: number[]; at: bigint; created?: bigint }): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind: 'EndpointSlice',
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created ?? spec.at,
      k8s_namespace_name: spec.namespace ?? 'shop',
      name: `${spec.service}-${spec.uid}`,
      endpoint_slice: {
        service_name: spec.service,
        address_type: 'IPv4',
        endpoints: spec.endpoints.map((endpoint) => ({ addresses: endpoint.addresses, pod_uid: endpoint.podUid ?? null, ready: endpoint.ready ?? true })),
        ports: spec.ports.map((port) => ({ name: `p${port}`, port, protocol: 'TCP' })),
      },
    }),
  };
}

export function nodeChange(spec: { uid: string; name: string; addresses: string[]; at: bigint; created?: bigint }): MetadataChange {
  return {
    key: spec.uid,
    event: metadataEvent({
      object_key: spec.uid,
      kind: 'Node',
      source: SOURCE,
      change_time_ns: spec.at,
      created_time_ns: spec.created ?? spec.at,
      name: spec.name,
      node: { addresses: spec.addresses },
    }),
  };
}

export function cgroupChange(spec: { node: string; id: bigint; podUid: string | null; at: bigint }): MetadataChange {
  const key = cgroupKey(spec.node, spec.id);
  return {
    key,
    event: metadataEvent({
      object_key: key,
      kind: 'Cgroup',
      source: `collector/${spec.node}`,
      change_time_ns: spec.at,
      cgroup: {
        k8s_node_name: spec.node,
        cgroup_id: spec.id,
        cgroup_path: `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${spec.podUid ?? 'none'}.slice/cri-containerd-c${spec.id}.scope`,
        k8s_pod_uid: spec.podUid,
        container_id: `c${spec.id}`,
      },
    }),
  };
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
export function flowEvent(spec: FlowSpec): FlowEvent {
  return {
    connection_id: `${spec.node ?? 'n1'}/e1/${spec.start}`,
    k8s_node_name: spec.node ?? 'n1',
    record_kind: 'final',
    record_seq: 0,
    observer_side: spec.side,
    start_time_ns: spec.start,
    time_ns: spec.start + 1_000_000n,
    network_transport: 'tcp',
    network_type: spec.server.includes(':') ? 'ipv6' : 'ipv4',
    client_address: spec.client,
    client_port: 40_000,
    server_address: spec.server,
    server_port: spec.serverPort ?? 8080,
    bytes_client_to_server: 100n,
    bytes_server_to_client: 200n,
    segments_client_to_server: 2n,
    segments_server_to_client: 2n,
    rtt_us: 50,
    rtt_var_us: 10,
    retransmits: 0,
    syn_retransmits: 0,
    connect_latency_us: spec.side === 'client' ? 60 : null,
    handshake_completed: true,
    close_reason: 'normal',
    process_pid: 1000,
    thread_id: 1000,
    process_executable_name: 'curl',
    cgroup_id: spec.cgroup ?? 0n,
    network_namespace_inode: 4026531840n,
    sampling_rate: 1,
  };
}
