/** A NetworkPolicy back as a Kubernetes document (what `policy list -o yaml` prints; parsePolicies reads it back). */
import { AUDIT_ANNOTATION, type LabelSelector, type NetworkPolicy, type PolicyPeer, type PolicyPort, type PolicyRule } from './types.js';

const selector = (s: LabelSelector): Record<string, unknown> => ({
  ...(Object.keys(s.matchLabels).length > 0 && { matchLabels: s.matchLabels }),
  ...(s.matchExpressions.length > 0 && { matchExpressions: s.matchExpressions.map((e) => ({ key: e.key, operator: e.operator, ...(e.values.length > 0 && { values: e.values }) })) }),
});

const peer = (p: PolicyPeer): Record<string, unknown> => ({
  ...(p.podSelector !== null && { podSelector: selector(p.podSelector) }),
  ...(p.namespaceSelector !== null && { namespaceSelector: selector(p.namespaceSelector) }),
  ...(p.ipBlock !== null && { ipBlock: { cidr: p.ipBlock.cidr, ...(p.ipBlock.except.length > 0 && { except: p.ipBlock.except }) } }),
});

const port = (p: PolicyPort): Record<string, unknown> => ({ protocol: p.protocol, ...(p.port !== null && { port: p.port }), ...(p.endPort !== null && { endPort: p.endPort }) });

const rule = (r: PolicyRule, peersKey: 'from' | 'to'): Record<string, unknown> => ({
  ...(r.peers.length > 0 && { [peersKey]: r.peers.map(peer) }),
  ...(r.ports.length > 0 && { ports: r.ports.map(port) }),
});

export function policyDocument(policy: NetworkPolicy): Record<string, unknown> {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: policy.name, namespace: policy.namespace, ...(policy.audit && { annotations: { [AUDIT_ANNOTATION]: 'true' } }) },
    spec: {
      podSelector: selector(policy.spec.podSelector),
      policyTypes: policy.spec.policyTypes,
      ...(policy.spec.ingress.length > 0 && { ingress: policy.spec.ingress.map((r) => rule(r, 'from')) }),
      ...(policy.spec.egress.length > 0 && { egress: policy.spec.egress.map((r) => rule(r, 'to')) }),
    },
  };
}
