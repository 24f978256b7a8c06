/**
 * An independent reading of the NetworkPolicy spec (the API reference and the kubernetes.io concept page), written
 * without the compiler's code: it evaluates each connection straight from the policy documents and pods, pod by
 * pod, with its own selector and IPv4 CIDR matching. The truth-table suite compares the compiled maps with it.
 * IPv4 only (the suite's cluster is IPv4).
 */
import type { LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort } from '../../src/events/networkpolicy/types.js';

export interface OraclePod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Named container ports. */
  ports: Array<{ name: string; protocol: string; port: number }>;
  ip: string;
}

export interface OracleCluster {
  namespaces: Record<string, Record<string, string>>;
  pods: OraclePod[];
}

function matches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const key of Object.keys(selector.matchLabels)) if (labels[key] !== selector.matchLabels[key]) return false;
  for (const { key, operator, values } of selector.matchExpressions) {
    const has = key in labels;
    if (operator === 'In' && !(has && values.includes(labels[key]!))) return false;
    if (operator === 'NotIn' && has && values.includes(labels[key]!)) return false;
    if (operator === 'Exists' && !has) return false;
    if (operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function ipv4(text: string): number {
  return text.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [network, bits] = cidr.split('/');
  if (network!.includes(':')) return false;
  const size = 2 ** (32 - Number(bits));
  return Math.floor(ipv4(ip) / size) === Math.floor(ipv4(network!) / size);
}

function peerMatches(peer: PolicyPeer, policyNamespace: string, other: OraclePod, cluster: OracleCluster): boolean {
  if (peer.ipBlock) return inCidr(other.ip, peer.ipBlock.cidr) && !peer.ipBlock.except.some((except) => inCidr(other.ip, except));
  const namespaceOk = peer.namespaceSelector ? matches(peer.namespaceSelector, cluster.namespaces[other.namespace] ?? {}) : other.namespace === policyNamespace;
  const podOk = peer.podSelector ? matches(peer.podSelector, other.labels) : true;
  return namespaceOk && podOk;
}

function portMatches(spec: PolicyPort, destination: OraclePod, port: number, protocol: string): boolean {
  if (spec.protocol !== protocol) return false;
  if (spec.port === null) return true;
  if (typeof spec.port === 'string') return destination.ports.some((p) => p.name === spec.port && p.protocol === protocol && p.port === port);
  return spec.endPort === null ? spec.port === port : spec.port <= port && port <= spec.endPort;
}

/** Whether `subject`'s `direction` side lets the connection through. */
function sideAllows(direction: 'Ingress' | 'Egress', subject: OraclePod, peer: OraclePod, destination: OraclePod, port: number, protocol: string, policies: NetworkPolicy[], cluster: OracleCluster): boolean {
  const selecting = policies.filter((p) => p.namespace === subject.namespace && matches(p.spec.podSelector, subject.labels) && p.spec.policyTypes.includes(direction) && !p.audit);
  if (selecting.length === 0) return true;
  return selecting.some((policy) =>
    (direction === 'Ingress' ? policy.spec.ingress : policy.spec.egress).some(
      (rule) =>
        (rule.peers.length === 0 || rule.peers.some((p) => peerMatches(p, policy.namespace, peer, cluster))) &&
        (rule.ports.length === 0 || rule.ports.some((p) => portMatches(p, destination, port, protocol))),
    ),
  );
}

/** Whether `from`'s egress and `to`'s ingress let a connection on port/protocol through; it connects if both do. */
export function oracleSides(from: OraclePod, to: OraclePod, port: number, protocol: string, policies: NetworkPolicy[], cluster: OracleCluster): { egress: boolean; ingress: boolean } {
  return { egress: sideAllows('Egress', from, to, to, port, protocol, policies, cluster), ingress: sideAllows('Ingress', to, from, to, port, protocol, policies, cluster) };
}
