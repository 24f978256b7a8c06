/**
 * What the event-time join says about one end of a connection: the Kubernetes identity of the address (or the
 * cgroup) at the time the connection started. Names, not ids, because the rows must keep meaning after the objects
 * are gone; the pod uid is kept beside the name to tell apart two pods that reused one name.
 */
export type EnrichmentStatus =
  /** The metadata named an owner. */
  | 'hit'
  /** Metadata was complete through the event's time and no object held the address (external, node-local, ...). */
  | 'miss'
  /** Written before the metadata caught up with the event (the hold expired): no owner known yet. */
  | 'late';

/** What an address or cgroup was at one time. */
export type EndpointKind = 'pod' | 'service' | 'node' | 'external' | 'unknown';

export interface EndpointIdentity {
  status: EnrichmentStatus;
  kind: EndpointKind;
  k8s_namespace_name: string;
  k8s_pod_name: string;
  k8s_pod_uid: string;
  /** The top controller: Deployment (through its ReplicaSet), StatefulSet, DaemonSet, CronJob (through its Job), Job, or Pod for a bare pod. */
  k8s_workload_kind: string;
  k8s_workload_name: string;
  /** The Service the address belongs to: its ClusterIP, or (for a pod) a Service whose endpoints held it on the port. */
  k8s_service_name: string;
  /** The node the pod ran on (or the node whose address it is). */
  k8s_node_name: string;
  /** The pod's labels on the configured allow-list (enricher.labels), as they were at the time. */
  labels: Record<string, string>;
}

/**
 * What the join reads of an event of one connection (a flow, an HTTP exchange): the node and cgroup of the observing
 * socket, which end it is, the addresses of both ends and the server port (which Service a pod backed).
 */
export interface ConnectionEnds {
  readonly observer_side: 'client' | 'server';
  readonly k8s_node_name: string;
  readonly cgroup_id: bigint;
  readonly client_address: string;
  readonly server_address: string;
  readonly server_port: number;
}

export interface FlowIdentities {
  client: EndpointIdentity;
  server: EndpointIdentity;
}

/** The identity of an address no metadata names. */
export function unnamed(status: EnrichmentStatus, kind: EndpointKind = 'unknown'): EndpointIdentity {
  return {
    status,
    kind,
    k8s_namespace_name: '',
    k8s_pod_name: '',
    k8s_pod_uid: '',
    k8s_workload_kind: '',
    k8s_workload_name: '',
    k8s_service_name: '',
    k8s_node_name: '',
    labels: {},
  };
}
