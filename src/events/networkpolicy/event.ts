/** NetworkPolicy ⇄ the policies topic's event (src/events/policies.ts): the same content, in the schema's names. */
import type { PolicyEvent, PolicyEventPeer, PolicyEventPort, PolicyEventRule, PolicyLabelSelector } from '../policies.js';
import { policyKey, type LabelSelector, type NetworkPolicy, type PolicyPeer, type PolicyPort, type PolicyRule } from './types.js';

const selectorToEvent = (s: LabelSelector): PolicyLabelSelector => ({ match_labels: { ...s.matchLabels }, match_expressions: s.matchExpressions.map((e) => ({ ...e, values: [...e.values] })) });
const selectorFromEvent = (s: PolicyLabelSelector): LabelSelector => ({
  matchLabels: Object.fromEntries(Object.entries(s.match_labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  matchExpressions: s.match_expressions.map((e) => ({ ...e, values: [...e.values] })),
});
const orNull = <A, B>(value: A | null, convert: (a: A) => B): B | null => (value === null ? null : convert(value));

const peerToEvent = (p: PolicyPeer): PolicyEventPeer => ({
  pod_selector: orNull(p.podSelector, selectorToEvent),
  namespace_selector: orNull(p.namespaceSelector, selectorToEvent),
  ip_block: orNull(p.ipBlock, (b) => ({ cidr: b.cidr, except: [...b.except] })),
});
const peerFromEvent = (p: PolicyEventPeer): PolicyPeer => ({
  podSelector: orNull(p.pod_selector, selectorFromEvent),
  namespaceSelector: orNull(p.namespace_selector, selectorFromEvent),
  ipBlock: orNull(p.ip_block, (b) => ({ cidr: b.cidr, except: [...b.except] })),
});
const portToEvent = (p: PolicyPort): PolicyEventPort => ({
  protocol: p.protocol,
  port: typeof p.port === 'number' ? p.port : null,
  port_name: typeof p.port === 'string' ? p.port : null,
  end_port: p.endPort,
});
const portFromEvent = (p: PolicyEventPort): PolicyPort => ({ protocol: p.protocol, port: p.port ?? p.port_name, endPort: p.end_port });
const ruleToEvent = (r: PolicyRule): PolicyEventRule => ({ peers: r.peers.map(peerToEvent), ports: r.ports.map(portToEvent) });
const ruleFromEvent = (r: PolicyEventRule): PolicyRule => ({ peers: r.peers.map(peerFromEvent), ports: r.ports.map(portFromEvent) });

export function policyToEvent(policy: NetworkPolicy, source: string, changeTimeNs: bigint, resourceVersion = ''): PolicyEvent {
  return {
    policy_key: policyKey(policy),
    k8s_namespace_name: policy.namespace,
    name: policy.name,
    source,
    change_time_ns: changeTimeNs,
    resource_version: resourceVersion,
    audit: policy.audit,
    pod_selector: selectorToEvent(policy.spec.podSelector),
    policy_types: [...policy.spec.policyTypes],
    ingress: policy.spec.ingress.map(ruleToEvent),
    egress: policy.spec.egress.map(ruleToEvent),
  };
}

export function policyFromEvent(event: PolicyEvent): NetworkPolicy {
  return {
    namespace: event.k8s_namespace_name,
    name: event.name,
    audit: event.audit,
    spec: {
      podSelector: selectorFromEvent(event.pod_selector),
      policyTypes: [...event.policy_types],
      ingress: event.ingress.map(ruleFromEvent),
      egress: event.egress.map(ruleFromEvent),
    },
  };
}
