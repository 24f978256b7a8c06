/**
 * The identities a join returns, built once per state and shared: every join that finds the same pod state (with
 * the same workload and Service), Service state or Node state gets the very same frozen object, so a join
 * allocates no strings. Callers must not (and cannot) change them.
 */
import type { MetadataEvent } from '../../events/metadata.js';
import { unnamed, type EndpointIdentity } from './identity.js';
import type { PodState, State } from './history.js';
import type { WorkloadName } from './workload.js';

/** What a join says about an address nothing named: outside the private ranges, or inside them. */
export const MISS_EXTERNAL: EndpointIdentity = freeze(unnamed('miss', 'external'));
export const MISS_UNKNOWN: EndpointIdentity = freeze(unnamed('miss', 'unknown'));

export class Identities {
  constructor(private readonly labelKeys: readonly string[]) {}

  /**
   * A pod state as one end of a flow: with the workload at the flow's time, and the Service it served ('' for
   * none). The last identities are recognised by the very objects they were built from, so that a join reads no
   * identity (and the workload and Service strings need no comparison of their text).
   */
  pod(state: PodState, workload: WorkloadName, service: string): EndpointIdentity {
    if (service === '') {
      if (state.identityWorkload === workload && state.identity !== undefined) return state.identity;
    } else if (state.serverWorkload === workload && state.serverService === service && state.server !== undefined) {
      return state.server;
    }
    return this.rememberPod(state, workload, service);
  }

  /** A Service state: the end is its ClusterIP. */
  service(state: State): EndpointIdentity {
    return (state.identity ??= freeze({ ...unnamed('hit', 'service'), k8s_namespace_name: state.event.k8s_namespace_name, k8s_service_name: state.event.name }));
  }

  /** A Node state: the end is one of its addresses. */
  node(state: State): EndpointIdentity {
    return (state.identity ??= freeze({ ...unnamed('hit', 'node'), k8s_node_name: state.event.name }));
  }

  /** The pod state's identity with this workload and Service: one it had (a pod serving several Services has one per Service), or a new one. */
  private rememberPod(state: PodState, workload: WorkloadName, service: string): EndpointIdentity {
    const had = service === '' ? state.identity : state.serverService === service ? state.server : state.servers?.get(service);
    const identity = had !== undefined && had.k8s_workload_kind === workload.kind && had.k8s_workload_name === workload.name ? had : this.buildPod(state, workload, service);
    if (service === '') {
      state.identity = identity;
      state.identityWorkload = workload;
      return identity;
    }
    if (state.server !== undefined && state.serverService !== service) (state.servers ??= new Map()).set(state.serverService, state.server);
    state.server = identity;
    state.serverWorkload = workload;
    state.serverService = service;
    return identity;
  }

  private buildPod(state: PodState, workload: WorkloadName, service: string): EndpointIdentity {
    const event = state.event;
    return freeze({
      ...unnamed('hit', 'pod'),
      k8s_namespace_name: event.k8s_namespace_name,
      k8s_pod_name: event.name,
      k8s_pod_uid: event.object_key,
      k8s_workload_kind: workload.kind,
      k8s_workload_name: workload.name,
      k8s_service_name: service,
      k8s_node_name: event.pod?.k8s_node_name ?? '',
      // One labels object per state, whatever the Service.
      labels: (state.identity ?? state.server)?.labels ?? Object.freeze(this.labelsOf(event)),
    });
  }

  private labelsOf(event: MetadataEvent): Record<string, string> {
    const labels: Record<string, string> = {};
    for (const key of this.labelKeys) {
      if (Object.hasOwn(event.labels, key)) labels[key] = event.labels[key]!;
    }
    return labels;
  }
}

function freeze(identity: EndpointIdentity): EndpointIdentity {
  Object.freeze(identity.labels);
  return Object.freeze(identity);
}
