/**
 * The identities a join returns, built once per state and shared: every join that finds the same pod state (with
 * the same workload and Service), Service state or Node state gets the very same frozen object, so a join
 * allocates no strings. Callers must not (and cannot) change them.
 */
import type { MetadataEvent } from '../../events/metadata.js';
import { unnamed, type EndpointIdentity } from './identity.js';
import type { State } from './history.js';
import type { WorkloadName } from './workload.js';

/** What a join says about an address nothing named: outside the private ranges, or inside them. */
export const MISS_EXTERNAL: EndpointIdentity = freeze(unnamed('miss', 'external'));
export const MISS_UNKNOWN: EndpointIdentity = freeze(unnamed('miss', 'unknown'));

export class Identities {
  constructor(private readonly labelKeys: readonly string[]) {}

  /** A pod state as one end of a flow: with the workload at the flow's time, and the Service it served ('' for none). */
  pod(state: State, workload: WorkloadName, service: string): EndpointIdentity {
    const cache = (state.identities ??= new Map());
    const cached = cache.get(service);
    if (cached !== undefined && cached.k8s_workload_kind === workload.kind && cached.k8s_workload_name === workload.name) return cached;
    const event = state.event;
    const identity = freeze({
      ...unnamed('hit', 'pod'),
      k8s_namespace_name: event.k8s_namespace_name,
      k8s_pod_name: event.name,
      k8s_pod_uid: event.object_key,
      k8s_workload_kind: workload.kind,
      k8s_workload_name: workload.name,
      k8s_service_name: service,
      k8s_node_name: event.pod?.k8s_node_name ?? '',
      // Shared by this state's identities: the same labels whatever the Service.
      labels: cached?.labels ?? cache.values().next().value?.labels ?? Object.freeze(this.labelsOf(event)),
    });
    cache.set(service, identity);
    return identity;
  }

  /** A Service state: the end is its ClusterIP. */
  service(state: State): EndpointIdentity {
    return this.single(state, () => ({ ...unnamed('hit', 'service'), k8s_namespace_name: state.event.k8s_namespace_name, k8s_service_name: state.event.name }));
  }

  /** A Node state: the end is one of its addresses. */
  node(state: State): EndpointIdentity {
    return this.single(state, () => ({ ...unnamed('hit', 'node'), k8s_node_name: state.event.name }));
  }

  private single(state: State, build: () => EndpointIdentity): EndpointIdentity {
    const cache = (state.identities ??= new Map());
    let identity = cache.get('');
    if (identity === undefined) cache.set('', (identity = freeze(build())));
    return identity;
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
