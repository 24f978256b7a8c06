/**
 * The verdicts topic (`verdicts.v1`, time-retained): policy decisions of each node's kernel
 * (schemas/avro/verdicts.v1.avsc, record dev.sidecarless.VerdictEvent), packed into VerdictBatch messages keyed by
 * the node. Written by the enforcer, which alone holds the compiled state that names the deciding policy; read by
 * anyone's consumers. The Avro schema is the contract; these types mirror it.
 */
import type { Registry } from '../common/avro.js';

export type VerdictName = 'allow' | 'deny' | 'audit_deny' | 'audit_allow';

export interface VerdictEvent {
  time_ns: bigint;
  k8s_node_name: string;
  verdict: VerdictName;
  direction: 'ingress' | 'egress';
  hook: 'connect' | 'sendmsg' | 'ingress';
  policies: string[];
  rules: string[];
  network_transport: string;
  network_type: 'ipv4' | 'ipv6';
  source_address: string;
  source_port: number;
  destination_address: string;
  destination_port: number;
  cgroup_id: bigint;
  subject_identity: bigint;
  subject_k8s_namespace_name: string | null;
  subject_k8s_pod_name: string | null;
  peer_identity: bigint;
  peer_prefix: string | null;
  peer_k8s_namespace_name: string | null;
  peer_k8s_pod_name: string | null;
  generation: number;
}

export interface VerdictBatch {
  events: VerdictEvent[];
}

export const VERDICTS = {
  topic: 'verdicts.v1',
  subject: 'sidecarless.verdicts.v1',
  messageKey: 'the node name of the enforcer that wrote the message',
} as const;

export interface VerdictsCodec {
  encode(events: VerdictEvent[]): Buffer;
  decode(value: Buffer): VerdictEvent[];
}

export function bindVerdictsCodec(registry: Registry): VerdictsCodec {
  const codec = registry.codec<VerdictBatch>(VERDICTS.subject);
  return {
    encode: (events) => codec.encode({ events }),
    decode: (value) => registry.resolve<VerdictBatch>(VERDICTS.subject, value).value.events,
  };
}
