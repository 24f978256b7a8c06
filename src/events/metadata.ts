/**
 * The metadata topic (`metadata.v1`, compacted): Kubernetes objects as they change, the node-local identity of
 * cgroups, and each source's watermark (schemas/avro/metadata.v1.avsc, record dev.sidecarless.MetadataEvent). One
 * event per message, keyed by `object_key`, so compaction keeps each object's latest state; a deletion is a
 * tombstone (null value) whose Kafka message timestamp is the time of the deletion.
 *
 * Writers: `sidecarless metadata` (the API server's objects, or a file's), each collector (its node's cgroups).
 * Readers: the enricher (src/metadata/index/ builds the event-time history it joins with), the enforcer, anyone.
 *
 * Time: `change_time_ns` is when the source observed the state. A source publishes a Watermark event
 * (`watermark/<source>`) at time W = Q - lag when it has observed every change up to Q (its informers listed and
 * watching, for at least the lag since any of them returned from a gap) and only after every change it observed
 * up to Q has been acknowledged by Kafka; again every few seconds while nothing changes. The lag
 * (metadata.watermarkLagMs, default 2 s) is there because a state may take effect before the source observes it:
 * the index backfills a pod's IP to the pod's creation (the kubelet assigns it before the API server shows it). A
 * reader that has consumed the topic up to offsets fetched after it saw a watermark W therefore has every state the
 * source observed up to W + lag: it knows that source's state at every time up to W, including what took effect
 * before W but reached the source up to `lag` later (a status patch that arrived later still can label flows
 * before W on replay that a live reader past W did not). Watermarks of a source only increase, across restarts.
 * A deletion the source did not see happen (a relist's, a restart's) is timed 1 ns after the later of its last
 * watermark and the object's last state, so it contradicts no watermark.
 */
import type { Registry } from '../common/avro.js';
import { DecodeError } from '../common/errors.js';

export type MetadataKind =
  | 'Namespace'
  | 'Node'
  | 'Pod'
  | 'Service'
  | 'EndpointSlice'
  | 'ReplicaSet'
  | 'Deployment'
  | 'StatefulSet'
  | 'DaemonSet'
  | 'Job'
  | 'CronJob'
  | 'Cgroup'
  | 'Watermark';

export interface OwnerReference {
  kind: string;
  name: string;
  uid: string;
}

export interface ContainerPort {
  name: string;
  port: number;
  protocol: string;
}

export interface PodState {
  k8s_node_name: string;
  phase: string;
  host_network: boolean;
  ips: string[];
  container_ids: string[];
  ports: ContainerPort[];
}

export interface ServicePort {
  name: string;
  port: number;
  protocol: string;
  target_port: string;
}

export interface ServiceState {
  type: string;
  cluster_ips: string[];
  selector: Record<string, string>;
  ports: ServicePort[];
}

export interface Endpoint {
  addresses: string[];
  pod_uid: string | null;
  ready: boolean;
}

export interface EndpointSliceState {
  service_name: string;
  address_type: string;
  endpoints: Endpoint[];
  ports: ContainerPort[];
}

export interface NodeState {
  addresses: string[];
}

export interface CgroupState {
  k8s_node_name: string;
  cgroup_id: bigint;
  cgroup_path: string;
  k8s_pod_uid: string | null;
  container_id: string | null;
}

export interface MetadataEvent {
  object_key: string;
  kind: MetadataKind;
  source: string;
  change_time_ns: bigint;
  created_time_ns: bigint | null;
  resource_version: string;
  k8s_namespace_name: string;
  name: string;
  labels: Record<string, string>;
  owner: OwnerReference | null;
  pod: PodState | null;
  service: ServiceState | null;
  endpoint_slice: EndpointSliceState | null;
  node: NodeState | null;
  cgroup: CgroupState | null;
}

/** One message of the topic: the latest state under a key, or its deletion (a tombstone) at a time. */
export type MetadataChange =
  | { key: string; event: MetadataEvent }
  | { key: string; deleted: true; time_ns: bigint };

export const METADATA = {
  topic: 'metadata.v1',
  subject: 'sidecarless.metadata.v1',
  messageKey: 'object_key: the object uid, cgroup/<node>/<cgroup id>, or watermark/<source>',
} as const;

export const cgroupKey = (node: string, cgroupId: bigint): string => `cgroup/${node}/${cgroupId}`;
export const watermarkKey = (source: string): string => `watermark/${source}`;

/** An event with every optional part empty: sources fill in what their kind has. */
export function metadataEvent(fields: Pick<MetadataEvent, 'object_key' | 'kind' | 'source' | 'change_time_ns'> & Partial<MetadataEvent>): MetadataEvent {
  return {
    created_time_ns: null,
    resource_version: '',
    k8s_namespace_name: '',
    name: '',
    labels: {},
    owner: null,
    pod: null,
    service: null,
    endpoint_slice: null,
    node: null,
    cgroup: null,
    ...fields,
  };
}

export interface MetadataCodec {
  encode(event: MetadataEvent): Buffer;
  /**
   * One message → a change. `timestampMs` is the message's Kafka timestamp: a tombstone's deletion time (the
   * writer sets it; millisecond resolution is what Kafka keeps).
   */
  decode(key: Buffer | null, value: Buffer | null, timestampMs: string): MetadataChange;
}

export function bindMetadataCodec(registry: Registry): MetadataCodec {
  const codec = registry.codec<MetadataEvent>(METADATA.subject);
  return {
    encode: (event) => codec.encode(event),
    decode(key, value, timestampMs) {
      if (key === null) throw new DecodeError(`a ${METADATA.topic} message without a key`, { field: 'key' });
      const text = key.toString('utf8');
      if (value === null) return { key: text, deleted: true, time_ns: BigInt(timestampMs) * 1_000_000n };
      return { key: text, event: registry.resolve<MetadataEvent>(METADATA.subject, value).value };
    },
  };
}
