/**
 * The policies topic (`policies.v1`, compacted): Kubernetes NetworkPolicies, validated and defaulted by their
 * writer (schemas/avro/policies.v1.avsc, record dev.sidecarless.PolicyEvent; why typed fields and not the document's
 * text: the schema's doc). One event per message, keyed `namespace/name`, so compaction keeps each policy's latest
 * state; a deletion is a tombstone (null value) under that key.
 *
 * Writers: `sidecarless policy apply|delete` (src/cli/policy.ts), and the metadata role's NetworkPolicy watch
 * (src/metadata/watch/policy-watch.ts), both validating with src/events/networkpolicy/document.ts.
 * Readers: every enforcer, which replays the topic to its end for the current policies; `sidecarless policy list`.
 */
import type { Registry } from '../common/avro.js';
import { DecodeError } from '../common/errors.js';

export interface PolicyLabelSelector {
  match_labels: Record<string, string>;
  match_expressions: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values: string[] }>;
}

export interface PolicyEventPeer {
  pod_selector: PolicyLabelSelector | null;
  namespace_selector: PolicyLabelSelector | null;
  ip_block: { cidr: string; except: string[] } | null;
}

export interface PolicyEventPort {
  protocol: 'TCP' | 'UDP' | 'SCTP';
  port: number | null;
  port_name: string | null;
  end_port: number | null;
}

export interface PolicyEventRule {
  peers: PolicyEventPeer[];
  ports: PolicyEventPort[];
}

export interface PolicyEvent {
  policy_key: string;
  k8s_namespace_name: string;
  name: string;
  source: string;
  change_time_ns: bigint;
  resource_version: string;
  audit: boolean;
  pod_selector: PolicyLabelSelector;
  policy_types: Array<'Ingress' | 'Egress'>;
  ingress: PolicyEventRule[];
  egress: PolicyEventRule[];
}

/** One message of the topic: a policy's latest state, or its deletion. */
export type PolicyChange = { key: string; event: PolicyEvent } | { key: string; deleted: true };

export const POLICIES = {
  topic: 'policies.v1',
  subject: 'sidecarless.policies.v1',
  messageKey: 'policy_key: <namespace>/<name>',
} as const;

export interface PoliciesCodec {
  encode(event: PolicyEvent): Buffer;
  decode(key: Buffer | null, value: Buffer | null): PolicyChange;
}

export function bindPoliciesCodec(registry: Registry): PoliciesCodec {
  const codec = registry.codec<PolicyEvent>(POLICIES.subject);
  return {
    encode: (event) => codec.encode(event),
    decode(key, value) {
      if (key === null) throw new DecodeError(`a ${POLICIES.topic} message without a key`, { field: 'key' });
      const text = key.toString('utf8');
      if (value === null) return { key: text, deleted: true };
      const event = registry.resolve<PolicyEvent>(POLICIES.subject, value).value;
      if (event.policy_key !== text) throw new DecodeError(`a ${POLICIES.topic} message keyed ${text} holds ${event.policy_key}`, { field: 'policy_key' });
      return { key: text, event };
    },
  };
}
