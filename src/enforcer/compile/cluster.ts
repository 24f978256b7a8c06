/**
 * What compilation needs of the cluster: namespaces with their labels, and the pods policies can select, each with
 * its namespace, labels, named container ports and IPs. Built from metadata.v1 (cluster-view.ts) or by hand in
 * tests. Pods on the host's network (their IP is the node's) and terminated pods are not in it: NetworkPolicy
 * leaves host-network pods undefined, and a terminated pod sends nothing and no longer holds its IP.
 */
import type { Protocol } from '../../events/networkpolicy/types.js';

export interface NamedPort {
  name: string;
  protocol: Protocol;
  port: number;
}

export interface ClusterPod {
  namespace: string;
  name: string;
  labels: Readonly<Record<string, string>>;
  /** Container ports that have a name (an unnamed port cannot be referred to by a policy). */
  namedPorts: readonly NamedPort[];
  /** Canonical text (src/common/address.ts). */
  ips: readonly string[];
}

export interface ClusterView {
  /** Namespace name → its labels. A pod whose namespace is missing is matched as if it had no labels. */
  namespaces: ReadonlyMap<string, Readonly<Record<string, string>>>;
  pods: readonly ClusterPod[];
}

export const podName = (pod: Pick<ClusterPod, 'namespace' | 'name'>): string => `${pod.namespace}/${pod.name}`;
