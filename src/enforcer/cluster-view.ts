/**
 * The cluster as compilation sees it (compile/cluster.ts), kept from metadata.v1 changes: namespaces with labels,
 * and pods that can be selected (neither host-network nor terminated) with labels, named ports and IPs. Tombstones
 * remove by key (an object's uid). Other kinds are ignored. Also which node each selectable pod runs on, by uid: the
 * enforcer of a node finds its pods' cgroups by the uid their names carry (src/common/cgroup-path.ts). Pure.
 */
import { normalizeAddress } from '../common/address.js';
import type { MetadataChange, MetadataEvent } from '../events/metadata.js';
import { podName, type ClusterPod, type ClusterView, type NamedPort } from './compile/cluster.js';
import type { Protocol } from '../events/networkpolicy/types.js';

const PROTOCOLS = new Set<string>(['TCP', 'UDP', 'SCTP']);

export class ClusterViewBuilder {
  private readonly namespaces = new Map<string, { name: string; labels: Record<string, string> }>();
  private readonly pods = new Map<string, ClusterPod>();
  /** Pod uid → its node, for the pods in `pods`. */
  private readonly nodes = new Map<string, string>();

  apply(change: MetadataChange): void {
    if ('deleted' in change) {
      this.namespaces.delete(change.key);
      this.pods.delete(change.key);
      this.nodes.delete(change.key);
      return;
    }
    const { event } = change;
    if (event.kind === 'Namespace') this.namespaces.set(change.key, { name: event.name, labels: event.labels });
    else if (event.kind === 'Pod') {
      const pod = selectablePod(event);
      if (pod === undefined) {
        this.pods.delete(change.key);
        this.nodes.delete(change.key);
      } else {
        this.pods.set(change.key, pod);
        this.nodes.set(change.key, event.pod!.k8s_node_name);
      }
    }
  }

  /** The selectable pods bound to `node`: uid → `namespace/name`. */
  podsOnNode(node: string): Map<string, string> {
    return new Map([...this.nodes].filter(([, on]) => on === node).map(([uid]) => [uid, podName(this.pods.get(uid)!)]));
  }

  view(): ClusterView {
    return { namespaces: new Map([...this.namespaces.values()].map((ns) => [ns.name, ns.labels])), pods: [...this.pods.values()] };
  }
}

function selectablePod(event: MetadataEvent): ClusterPod | undefined {
  const state = event.pod;
  if (state === null || state.host_network || state.phase === 'Succeeded' || state.phase === 'Failed') return undefined;
  const namedPorts: NamedPort[] = state.ports
    .filter((port) => port.name !== '' && PROTOCOLS.has(port.protocol))
    .map((port) => ({ name: port.name, protocol: port.protocol as Protocol, port: port.port }));
  return { namespace: event.k8s_namespace_name, name: event.name, labels: event.labels, namedPorts, ips: state.ips.map(normalizeAddress) };
}
